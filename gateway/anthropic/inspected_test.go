package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"aigw/gateway"
	"aigw/gateway/providertest"
)

// pieces reads b in random pieces, as a network would deliver it.
type pieces struct {
	b   []byte
	rng *rand.Rand
}

func (p *pieces) Read(q []byte) (int, error) {
	if len(p.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p.b), len(q), 1+p.rng.IntN(48))
	copy(q, p.b[:n])
	p.b = p.b[n:]
	return n, nil
}

func (p *pieces) Close() error { return nil }

// inspected splits b into a head of n bytes and the rest, read in random
// pieces.
func inspected(b []byte, n int, rng *rand.Rand) *InspectedStream {
	n = min(n, len(b))
	return NewInspectedStream("anthropic", b[:n], &pieces{b: b[n:], rng: rng})
}

// drain reads s to its end, releasing each chunk as it comes (hold: all
// at the end, as an inspector that holds everything does), and returns
// the bytes released, then Rest's, and Next's last error.
func drain(s *InspectedStream, hold bool) ([]byte, error) {
	var out []byte
	var held []*gateway.ChatChunk
	for {
		c, err := s.Next()
		if err != nil {
			for _, h := range held {
				out = append(out, s.Release(h)...)
			}
			if errors.Is(err, io.EOF) {
				out = append(out, s.Rest()...)
			}
			return out, err
		}
		if hold {
			held = append(held, c)
			continue
		}
		out = append(out, s.Release(c)...)
	}
}

func TestInspectedStreamPassesBytes(t *testing.T) {
	text := providertest.Fixture(t, "anthropic/message_stream.sse")
	tool := providertest.Fixture(t, "anthropic/message_stream_tool_use.sse")
	odd := []byte("\xEF\xBB\xBF: a comment first\n\nevent: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"x\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"Hi\"}}\n\n" +
		"event: brand_new_event\ndata: {\"type\":\"brand_new_event\",\"x\":[1,2]}\n\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\n" +
		"data: \"delta\":{\"type\":\"text_delta\",\"text\":\" there\"}}\n\n" +
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":3}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	usage := func(in, out int) *gateway.Usage {
		return &gateway.Usage{PromptTokens: in, CompletionTokens: out, TotalTokens: in + out, PromptTokensDetails: &gateway.PromptTokensDetails{}}
	}
	for _, tc := range []struct {
		name   string
		stream []byte
		usage  *gateway.Usage
	}{
		{"thinking", text, usage(25, 15)},
		{"tool use", tool, usage(472, 89)},
		{"crlf", bytes.ReplaceAll(tool, []byte("\n"), []byte("\r\n")), usage(472, 89)},
		{"cr", bytes.ReplaceAll(text, []byte("\n"), []byte("\r")), usage(25, 15)},
		{"comments, unknown events, split data", odd, usage(5, 3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(2, uint64(len(tc.stream))))
			for round := range 40 {
				s := inspected(tc.stream, rng.IntN(200), rng)
				out, err := drain(s, round%2 == 1)
				if !errors.Is(err, io.EOF) {
					t.Fatalf("round %d: %v", round, err)
				}
				if !bytes.Equal(out, tc.stream) {
					t.Fatalf("round %d: passed\n%q\nreceived\n%q", round, out, tc.stream)
				}
				if u := s.Usage(); !reflect.DeepEqual(u, tc.usage) {
					t.Fatalf("round %d: usage %+v, want %+v", round, u, tc.usage)
				}
			}
		})
	}
}

func TestInspectedStreamChunks(t *testing.T) {
	s := inspected(providertest.Fixture(t, "anthropic/message_stream_tool_use.sse"), 0, rand.New(rand.NewPCG(1, 1)))
	var acc gateway.Accumulator
	texts := 0
	for {
		c, err := s.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Choices) > 0 && c.Choices[0].Delta.Content != nil {
			texts++
		}
		acc.Add(c)
	}
	r := acc.Response(nil)
	m := r.Choices[0].Message
	if got := m.Content.String(); got != "Okay, let's check the weather for San Francisco, CA:" || texts != 13 {
		t.Fatalf("text %q in %d chunks", got, texts)
	}
	if len(m.ToolCalls) != 1 || m.ToolCalls[0].ID != "toolu_01T1x1fJ34qAmk2tNTrN7Up6" || m.ToolCalls[0].Function.Name != "get_weather" ||
		m.ToolCalls[0].Function.Arguments != `{"location": "San Francisco, CA", "unit": "fahrenheit"}` || r.Choices[0].FinishReason != gateway.FinishToolCalls {
		t.Fatalf("answer %+v", r.Choices[0])
	}
}

func TestInspectedStreamEnds(t *testing.T) {
	text := providertest.Fixture(t, "anthropic/message_stream.sse")
	cut := text[:bytes.Index(text, []byte("event: content_block_stop"))]
	errEvent := []byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n")
	cutErr := func(err error) bool { return errors.Is(err, gateway.ErrStreamCut) }
	for _, tc := range []struct {
		name   string
		stream []byte
		check  func(error) bool
		// the output tokens: as message_delta reported them, else (0)
		// the thinking read, estimated (83 characters: 21 tokens)
		output int
	}{
		{"cut between events", cut, cutErr, 0},
		{"cut in an event", text[:len(cut)+10], cutErr, 0},
		{"no blank line after message_stop", bytes.TrimSuffix(text, []byte("\n")), cutErr, 15},
		{"malformed", append(bytes.Clone(cut), "event: content_block_delta\ndata: {\"type\":\n\n"...), func(err error) bool { return errors.Is(err, gateway.ErrStreamMalformed) }, 0},
		{"error event", append(bytes.Clone(cut), errEvent...), func(err error) bool {
			var pe *gateway.ProviderError
			return errors.As(err, &pe) && pe.Status == StatusOverloaded && pe.Message == "Overloaded"
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := inspected(tc.stream, 100, rand.New(rand.NewPCG(3, 3)))
			out, err := drain(s, false)
			if !tc.check(err) || s.Err() != err {
				t.Fatalf("error %v", err)
			}
			if !bytes.HasPrefix(tc.stream, out) || bytes.Contains(out, []byte("message_stop")) || bytes.Contains(out, []byte("event: error")) {
				t.Fatalf("passed %q", out)
			}
			if tc.name == "error event" && !bytes.Equal(s.ErrorEvent(), errEvent) || tc.name != "error event" && s.ErrorEvent() != nil {
				t.Fatalf("error event %q", s.ErrorEvent())
			}
			want := &gateway.Usage{PromptTokens: 25, CompletionTokens: tc.output, TotalTokens: 25 + tc.output, PromptTokensDetails: &gateway.PromptTokensDetails{}}
			if tc.output == 0 {
				want.CompletionTokens, want.TotalTokens, want.Estimated = 21, 46, true
			}
			if u := s.Usage(); !reflect.DeepEqual(u, want) {
				t.Fatalf("usage %+v, want %+v", u, want)
			}
		})
	}
}

// textStream is a stream whose one text block has the given deltas.
func textStream(deltas ...string) []byte {
	var b bytes.Buffer
	b.WriteString("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n")
	b.WriteString("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
	for _, d := range deltas {
		q, _ := json.Marshal(d)
		b.WriteString("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":" + string(q) + "}}\n\n")
	}
	b.WriteString("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n")
	b.WriteString("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":20}}\n\n")
	b.WriteString("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	return b.Bytes()
}

// holder holds chunks and redacts the text it holds as the guard engine's
// stream inspector does: the redacted whole in the first text chunk held,
// the others emptied.
type holder struct{ held []*gateway.ChatChunk }

func chunkText(c *gateway.ChatChunk) *string {
	if len(c.Choices) == 0 {
		return nil
	}
	return c.Choices[0].Delta.Content
}

func (h *holder) redact(old, new string) {
	var all strings.Builder
	var texts []*string
	for _, c := range h.held {
		if t := chunkText(c); t != nil {
			all.WriteString(*t)
			texts = append(texts, t)
		}
	}
	for i, t := range texts {
		*t = ""
		if i == 0 {
			*t = strings.ReplaceAll(all.String(), old, new)
		}
	}
}

// release releases the first n chunks held.
func (h *holder) release(s *InspectedStream, n int) []byte {
	var out []byte
	for _, c := range h.held[:n] {
		out = append(out, s.Release(c)...)
	}
	h.held = h.held[n:]
	return out
}

// events splits a stream into its events, without their blank line.
func events(b []byte) []string {
	return strings.Split(strings.TrimSuffix(string(b), "\n\n"), "\n\n")
}

// deltaText is the text of a text_delta event, or "-" for another event.
func deltaText(t *testing.T, ev string) string {
	if !strings.HasPrefix(ev, "event: content_block_delta\ndata: ") {
		return "-"
	}
	var e StreamEvent
	if err := json.Unmarshal([]byte(strings.TrimPrefix(ev, "event: content_block_delta\ndata: ")), &e); err != nil || e.Delta == nil || e.Delta.Type != DeltaText || e.Index != 0 {
		t.Fatalf("event %q does not parse as a text delta", ev)
	}
	return e.Delta.Text
}

// redactStep is a step of TestInspectedStreamRedaction: after pushing the
// first at chunks (2 are message_start and content_block_start), replace
// old by new in the text held, then release `release` chunks (-1: all).
type redactStep struct {
	at       int
	old, new string
	release  int
}

func TestInspectedStreamRedaction(t *testing.T) {
	for _, tc := range []struct {
		name   string
		deltas []string
		steps  []redactStep
		want   []string // the deltas as sent ("" for one not sent)
	}{
		{
			name:   "across two deltas",
			deltas: []string{"Mail me at bob@exa", "mple.com today.", " Thanks!"},
			steps:  []redactStep{{4, "bob@example.com", "<EMAIL_1>", -1}},
			want:   []string{"Mail me at <EMAIL_1>", " today.", " Thanks!"},
		},
		{
			name:   "a delta wholly redacted",
			deltas: []string{"ab 41", "11-1111-", "1111-1111 cd"},
			steps:  []redactStep{{5, "4111-1111-1111-1111", "<CARD_1>", -1}},
			want:   []string{"ab <CARD_1>", "", " cd"},
		},
		{
			name:   "twice, the second head emptied by the first",
			deltas: []string{"x secret1 ", "y ", "z ", "secret2 w"},
			steps: []redactStep{
				{4, "secret1", "[R]", 3}, // message_start, block start, the head
				{6, "secret2", "[R]", -1},
			},
			want: []string{"x [R] ", "y ", "z ", "[R] w"},
		},
		{
			name:   "a change within a character's bytes",
			deltas: []string{"pré", "fix"},
			steps:  []redactStep{{4, "é", "è", -1}},
			want:   []string{"prè", "fix"},
		},
		{
			name:   "multibyte characters at the edges",
			deltas: []string{"é€ sécr", "et1 ü"},
			steps:  []redactStep{{4, "sécret1", "ß", -1}},
			want:   []string{"é€ ß", " ü"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := textStream(tc.deltas...)
			s := inspected(in, 0, rand.New(rand.NewPCG(4, 4)))
			h := &holder{}
			var out []byte
			pushed := 0
			for _, st := range tc.steps {
				for pushed < st.at {
					c, err := s.Next()
					if err != nil {
						t.Fatal(err)
					}
					h.held = append(h.held, c)
					pushed++
				}
				h.redact(st.old, st.new)
				n := st.release
				if n < 0 {
					n = len(h.held)
				}
				out = append(out, h.release(s, n)...)
			}
			o, err := drain(s, false)
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			out = append(out, o...)
			// Every event as received, but the text deltas redacted.
			got, orig := events(out), events(in)
			var sent []string
			j := 0
			for i, ev := range orig {
				d := deltaText(t, ev)
				if d == "-" {
					if got[j] != ev {
						t.Fatalf("event %d: %q, want %q", i, got[j], ev)
					}
					j++
					continue
				}
				w := tc.want[i-2]
				if w == "" {
					sent = append(sent, "")
					continue
				}
				if w == d && got[j] != ev {
					t.Fatalf("unchanged event %d re-encoded: %q", i, got[j])
				}
				sent = append(sent, deltaText(t, got[j]))
				j++
			}
			if j != len(got) || !reflect.DeepEqual(sent, tc.want) {
				t.Fatalf("deltas sent %q, want %q (%d of %d events)", sent, tc.want, j, len(got))
			}
		})
	}
}

// FuzzInspectedStream checks that an inspected stream passes the bytes it
// reads through unchanged, whatever they are: all of a stream that ends
// cleanly, a prefix of one that fails, and never panics.
func FuzzInspectedStream(f *testing.F) {
	f.Add(providertest.Fixture(f, "anthropic/message_stream.sse"), uint64(1))
	f.Add(providertest.Fixture(f, "anthropic/message_stream_tool_use.sse"), uint64(2))
	f.Add(textStream("a", "b\r\n"), uint64(3))
	f.Add([]byte("data: {}\r\r: x\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"), uint64(4))
	f.Fuzz(func(t *testing.T, b []byte, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, seed))
		s := inspected(b, rng.IntN(64), rng)
		out, _ := drain(s, seed%2 == 0)
		if !bytes.HasPrefix(b, out) {
			t.Fatalf("passed %q of %q", out, b)
		}
		s.Usage()
	})
}

// BenchmarkStreamPassing compares what a streamed /v1/messages answer
// costs the gateway per stream (400 text deltas, no guard work): copied
// with only the tap reading it (no output inspection), passed through an
// InspectedStream (native inspection), and translated to chunks and
// written again as events (what an inspected stream cost before).
func BenchmarkStreamPassing(b *testing.B) {
	deltas := make([]string, 400)
	for i := range deltas {
		deltas[i] = fmt.Sprintf(" word%d", i%10)
	}
	in := textStream(deltas...)
	b.Run("copy", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			tap := NewStreamTap()
			for p := in; len(p) > 0; p = p[min(len(p), 4096):] {
				io.Discard.Write(p[:min(len(p), 4096)])
				tap.Write(p[:min(len(p), 4096)])
			}
			if !tap.Complete() {
				b.Fatal("incomplete")
			}
		}
	})
	b.Run("inspected", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			s := NewInspectedStream("anthropic", nil, io.NopCloser(bytes.NewReader(in)))
			for {
				c, err := s.Next()
				if err != nil {
					break
				}
				io.Discard.Write(s.Release(c))
			}
			io.Discard.Write(s.Rest())
		}
	})
	b.Run("translated", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			s := newStream("anthropic", io.NopCloser(bytes.NewReader(in)), plan{}, 1)
			w := NewStreamWriter(io.Discard, nil, "claude", "msg_1")
			for {
				c, err := s.Next()
				if err != nil {
					break
				}
				w.WriteChunk(c)
			}
			w.Finish(s.Usage())
		}
	})
}
