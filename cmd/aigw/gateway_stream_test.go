package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	"aigw/ledger"
)

// sseChunk is one OpenAI chat.completion.chunk event with text content.
func sseChunk(text string) string {
	return fmt.Sprintf("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", text)
}

const (
	sseRole   = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
	sseFinish = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
	sseUsage  = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":9,\"total_tokens\":12}}\n\n"
	sseDone   = "data: [DONE]\n\n"
)

// rawStream posts a streamed chat completion of model on a raw connection
// and returns the response's headers and the HTTP chunks of the answer as
// they were framed (one per flush of the gateway), reading until the
// terminating chunk. each, if set, sees every chunk as it arrives.
func rawStream(t *testing.T, url, key, model string, each func(string)) (http.Header, []string) {
	t.Helper()
	body := fmt.Sprintf(`{"model":%q,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Tell me a story."}]}`, model)
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", key, len(body), body)
	tp := textproto.NewReader(bufio.NewReader(conn))
	status, err := tp.ReadLine()
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("status %q %v", status, err)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil || h.Get("Transfer-Encoding") != "chunked" {
		t.Fatalf("headers %v %v", h, err)
	}
	var chunks []string
	for {
		line, err := tp.ReadLine()
		if err != nil {
			t.Fatalf("chunk size: %v (after %q)", err, chunks)
		}
		n, err := strconv.ParseInt(line, 16, 32)
		if err != nil {
			t.Fatalf("chunk size %q", line)
		}
		b := make([]byte, n+2) // and its CRLF
		if _, err := io.ReadFull(tp.R, b); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return http.Header(h), chunks
		}
		chunks = append(chunks, string(b[:n]))
		if each != nil {
			each(string(b[:n]))
		}
	}
}

// TestGatewayStreamFlushes: chunks that arrive from the upstream together
// leave the gateway together (one write, as a bare proxy's), with the
// default guardrails inspecting the stream; and nothing written waits
// for the upstream: when the upstream pauses, whatever the inspector has
// released has reached the agent.
func TestGatewayStreamFlushes(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a long sentence of the answer, ", 12) // past the inspector's 256-character holdback
	paused := make(chan struct{}, 1)                              // the test saw the released text during the pause
	timedOut := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		if strings.Contains(r.Header.Get("Authorization"), "pause") {
			// The role, "Once upon a time", a long chunk, a short one and
			// the first half of the next, then a pause: the inspector can
			// release the first two when the long one comes, and holds the
			// rest back; the half event must not pass for a chunk that
			// has arrived.
			next := sseChunk(" the end.")
			io.WriteString(w, sseRole+sseChunk("Once upon a time")+sseChunk(long)+sseChunk("x")+next[:20])
			f.Flush()
			select {
			case <-paused:
			case <-time.After(5 * time.Second):
				timedOut <- struct{}{}
			}
			io.WriteString(w, next[20:]+sseFinish+sseUsage+sseDone)
			return
		}
		var b strings.Builder
		b.WriteString(sseRole)
		for i := range 8 {
			fmt.Fprintf(&b, "%s", sseChunk(fmt.Sprintf("word%d of a sentence long enough to pass the holdback ", i)))
		}
		b.WriteString(sseFinish + sseUsage + sseDone)
		io.WriteString(w, b.String()) // the whole answer in one write
		f.Flush()
	}))
	t.Cleanup(up.Close)
	g := startGW(t, fmt.Sprintf(`
gateway: {admin_key: %s}
providers:
  - {name: burst, type: openai-compatible, base_url: %s/v1}
  - {name: pausing, type: openai-compatible, base_url: %s/v1, api_key: pause}
routes:
  - {name: flush, targets: [{provider: burst, model: m}]}
  - {name: pause, targets: [{provider: pausing, model: m}]}
  - {name: flush-guarded, targets: [{provider: burst, model: m}]}
  - {name: pause-guarded, targets: [{provider: pausing, model: m}]}
guardrails:
  policies:
    - name: output
      routes: ["*-guarded"]
      holdback: 256
      checks: [{id: secrets, type: secrets, stages: [input, output], action: redact}]
`, testAdminKey, up.URL, up.URL))
	keys := map[string]string{"": g.newKey(t, "acme"), "-guarded": g.newKey(t, "guarded")}
	traces := map[string]bool{}
	for _, suffix := range []string{"", "-guarded"} {
		key := keys[suffix]
		// Every call is in its tenant's log; the guarded ones with the
		// guardrail's decisions (input and output) besides.
		expect := func(h http.Header) {
			if suffix == "" {
				g.expect(t, "acme", &http.Response{Header: h}, traceWant{attempts: 1, terminal: ledger.KindResponse, routed: true})
			} else {
				traces[h.Get("X-Aigw-Trace-Id")] = true
			}
		}
		// A burst: the role, eight chunks (more text than an inspector
		// holds back, so that it releases them one by one), the finish
		// and the usage chunk at once. One flush for all of them (the
		// ledger's acknowledgement then comes before the end), one for
		// [DONE]; before, under inspection, one per chunk released.
		h, chunks := rawStream(t, g.url(), key, "flush"+suffix, nil)
		expect(h)
		all := strings.Join(chunks, "")
		for i := range 8 {
			if !strings.Contains(all, fmt.Sprintf("word%d of", i)) {
				t.Fatalf("flush%s: word%d missing from %q", suffix, i, all)
			}
		}
		if !strings.HasSuffix(all, "data: [DONE]\n\n") || !strings.Contains(all, `"total_tokens":12`) {
			t.Fatalf("flush%s: stream %q", suffix, all)
		}
		if len(chunks) > 3 {
			t.Fatalf("flush%s: %d writes for one burst of the upstream; want at most 3: %q", suffix, len(chunks), chunks)
		}

		// A pause: what was released before it reaches the agent during
		// it.
		seen := ""
		h, chunks = rawStream(t, g.url(), key, "pause"+suffix, func(c string) {
			seen += c
			if strings.Contains(seen, "Once upon a time") {
				select {
				case paused <- struct{}{}:
				default:
				}
			}
		})
		select {
		case <-timedOut:
			t.Fatalf("pause%s: the released text did not reach the agent while the upstream paused (got %q)", suffix, chunks)
		default:
		}
		expect(h)
		all = strings.Join(chunks, "")
		if !strings.Contains(all, long) || !strings.Contains(all, " the end.") || !strings.HasSuffix(all, "data: [DONE]\n\n") {
			t.Fatalf("pause%s: stream %q", suffix, all)
		}
	}
	g.checkLedger(t, "acme")
	cp := waitSize(t, g.serveProc, "guarded", 12)
	body, _ := ledger.SplitNote(cp)
	c, _ := ledger.ParseCheckpointBody(body)
	kinds := map[string]int{}
	for _, ev := range g.entries(t, "guarded", c.Size) {
		if !traces[ev.TraceID] {
			t.Fatalf("guarded: an event of trace %s", ev.TraceID)
		}
		kinds[ev.Kind]++
	}
	if c.Size != 12 || kinds[ledger.KindRequest] != 2 || kinds[ledger.KindResponse] != 2 || kinds["guardrail"] != 4 {
		t.Fatalf("guarded: %d events %v; want 2 calls of request, route, attempt, 2 guardrail decisions, response", c.Size, kinds)
	}
}
