package loadgen

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// FuzzReadStream feeds arbitrary bodies to the SSE verdict: it must never
// panic, call a stream OK only if "[DONE]" was dispatched, and agree with
// itself when the body arrives in one piece or byte by byte.
func FuzzReadStream(f *testing.F) {
	fake := NewFakeUpstream(FakeConfig{Chunks: 2})
	f.Add(fake.stream)
	f.Add(fake.streamUsage)
	f.Add([]byte("data: [DONE]\n\n"))
	f.Add([]byte("event: error\ndata: {\"error\":1}\n\ndata: [DONE]\n\n"))
	f.Add([]byte(": c\r\n\r\ndata:[DONE]\r\n\r\n"))
	f.Add([]byte("data: [DONE]\ndata: x\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		w := newWorker(&runner{}, 0)
		whole := outcome{ttfb: time.Now()}
		w.readStream(bytes.NewReader(body), &whole)
		if whole.kind == kindOK && !bytes.Contains(body, []byte("[DONE]")) {
			t.Fatalf("OK without [DONE]: %q", body)
		}
		if whole.bytes != int64(len(body)) {
			t.Fatalf("read %d of %d bytes", whole.bytes, len(body))
		}
		split := outcome{ttfb: time.Now()}
		w.readStream(&oneByteReader{body}, &split)
		if split.kind != whole.kind || split.reason != whole.reason {
			t.Fatalf("byte by byte: %d %q; whole: %d %q", split.kind, split.reason, whole.kind, whole.reason)
		}
	})
}

type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}
