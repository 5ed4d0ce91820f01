package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"aigw/gateway"
	"aigw/gateway/anthropic"

	"github.com/gin-gonic/gin"
)

// anthropicKey marks a request of the Anthropic-compatible API: its errors
// are written in Anthropic's shape.
const anthropicKey = "aigw.anthropic"

// messages serves Anthropic's /v1/messages. When the route's target is
// Anthropic the request and the answer pass through byte for byte (only
// the model name is rewritten when the route maps it), thinking blocks,
// cache control and signatures included, also when a guardrail inspects
// the answer, streamed or not (only text it redacts is encoded again);
// for any other provider, and for a request a guardrail redacted, they are
// translated to and from the OpenAI shape.
func (s *server) messages(c *gin.Context) {
	const endpoint = "messages"
	c.Set(anthropicKey, true)
	caller, req, body, ok := admit(s, c, endpoint, func(b []byte) (*anthropic.Request, string, *gateway.Error) {
		req, err := anthropic.ParseRequest(b)
		if err != nil {
			var re *anthropic.RequestError
			if errors.As(err, &re) {
				return nil, "", &gateway.Error{Status: re.Status, Type: re.Type, Message: re.Message}
			}
			return nil, "", &gateway.Error{Status: 400, Type: anthropic.TypeInvalidRequest, Message: err.Error()}
		}
		return req, req.Model, nil
	})
	if !ok {
		return
	}
	tid := traceID(c)
	call, err := s.p.Begin(c.Request.Context(), caller, endpoint, req.Model, req.Stream, body, tid)
	if err != nil {
		s.stats.add(endpoint, 503)
		writeError(c, err)
		return
	}
	m := &messagesCall{s: s, c: c, call: call, req: req, body: body}
	status := m.run()
	s.stats.add(endpoint, status)
}

type messagesCall struct {
	s    *server
	c    *gin.Context
	call *gateway.Call
	req  *anthropic.Request
	body []byte
	// chat is req in the OpenAI shape (nil if it does not translate), for
	// targets other than Anthropic.
	chatReq *gateway.ChatRequest
	// what the winning attempt left to stream
	raw    *http.Response
	stream gateway.Stream
	first  *gateway.ChatChunk
	chat   *gateway.ChatResponse
	native []byte // a native answer, or the first bytes of a native stream
	tap    *anthropic.StreamTap
	sent   []byte // native stream bytes written to the agent
	// provider names the Anthropic provider a native request went to
	provider string
}

func (m *messagesCall) run() int {
	chatReq, terr := anthropic.ToChat(m.req)
	m.chatReq = chatReq
	// Guardrails inspect the request in the OpenAI shape (nil: it does not
	// translate, and a guard with checks for the call refuses it). A
	// redacted request is sent translated (its bytes as received hold what
	// was redacted).
	if block := m.call.GuardInput(chatReq); block != nil {
		return m.fail(block)
	}
	// Budgets: the prompt estimated in the OpenAI shape, or from its bytes
	// (about 3 a token) when it does not translate.
	prompt := len(m.body) / 3
	if chatReq != nil {
		prompt = gateway.EstimatePromptTokens(chatReq)
	}
	if refused := m.call.Reserve(prompt, m.req.MaxTokens); refused != nil {
		return m.fail(refused)
	}
	// The guard reads a native answer in the OpenAI shape, so one it
	// inspects needs the request in that shape too.
	native := !m.call.GuardModified() && (chatReq != nil || !m.call.GuardsOutput())
	err := m.s.p.Router().Do(m.call.Context(), m.req.Model, func(ctx context.Context, t gateway.Target) error {
		if rp, ok := t.Upstream.(gateway.RawProvider); ok && rp.Native() == "anthropic.messages" && native {
			return m.forward(ctx, rp, t)
		}
		if terr != nil {
			var re *anthropic.RequestError
			if errors.As(terr, &re) {
				return &gateway.Error{Status: re.Status, Type: re.Type, Message: re.Message, Err: terr}
			}
			return terr
		}
		r := *chatReq
		r.Model = t.Model
		if !m.req.Stream {
			resp, err := t.Upstream.Chat(ctx, &r)
			m.chat = resp
			return err
		}
		st, err := t.Upstream.ChatStream(ctx, &r)
		if err != nil {
			return err
		}
		first, err := st.Next() // fallback is still possible until the first chunk
		if err != nil {
			st.Close()
			if errors.Is(err, io.EOF) {
				err = gateway.ErrStreamCut
			}
			return err
		}
		m.stream, m.first = st, first
		return nil
	})
	if err != nil {
		return m.fail(err)
	}
	if m.raw != nil && !m.req.Stream && m.call.GuardsOutput() {
		// Inspect the native answer in the OpenAI shape; answer it
		// translated if the guard changed it.
		resp, perr := anthropic.ChatResponseOf(m.native)
		if perr != nil {
			return m.fail(perr)
		}
		if block := m.call.GuardOutput(chatReq, resp); block != nil {
			return m.fail(block)
		}
		if resp.Raw == nil {
			m.raw, m.chat = nil, resp
		}
	} else if m.chat != nil {
		if block := m.call.GuardOutput(chatReq, m.chat); block != nil {
			return m.fail(block)
		}
	}
	switch {
	case m.raw != nil && m.req.Stream && m.call.GuardsOutput():
		return m.inspectStream()
	case m.raw != nil && m.req.Stream:
		return m.copyStream()
	case m.raw != nil:
		usage, stop, _ := anthropic.UsageFromBody(m.native)
		if err := m.call.Respond(gateway.Outcome{Status: 200, Usage: usage, FinishReason: stop, Body: m.native}); err != nil {
			writeError(m.c, err)
			return 503
		}
		copyHeaders(m.c.Writer.Header(), m.raw.Header)
		m.c.Data(200, "application/json", m.native)
		return 200
	case m.stream != nil:
		return m.translateStream()
	default:
		out, _ := json.Marshal(anthropic.FromChat(m.chat, m.req.Model))
		finish := ""
		if len(m.chat.Choices) > 0 {
			finish = m.chat.Choices[0].FinishReason
		}
		if err := m.call.Respond(gateway.Outcome{Status: 200, Usage: m.chat.Usage, FinishReason: finish, Body: out}); err != nil {
			writeError(m.c, err)
			return 503
		}
		m.c.Data(200, "application/json", out)
		return 200
	}
}

// fail records the call's failure and answers it.
func (m *messagesCall) fail(err error) int {
	e := gateway.AsError(m.call.Fail(err, gateway.Outcome{Status: gateway.AsError(err).Status}))
	writeError(m.c, e)
	return e.Status
}

// forward sends the request to an Anthropic target unchanged but for the
// model, and reads enough of the answer to know it succeeded: all of it
// when not streamed, the first event when streamed (an overloaded_error
// there still falls back).
func (m *messagesCall) forward(ctx context.Context, rp gateway.RawProvider, t gateway.Target) error {
	body := m.body
	if t.Model != m.req.Model {
		body = withModel(m.body, t.Model)
	}
	hdr := http.Header{}
	for _, h := range []string{"anthropic-version", "anthropic-beta"} {
		for _, v := range m.c.Request.Header.Values(h) {
			hdr.Add(h, v)
		}
	}
	resp, err := rp.Forward(ctx, &gateway.RawRequest{Model: t.Model, Stream: m.req.Stream, Body: body, Header: hdr})
	if err != nil {
		return err
	}
	m.provider = t.Provider
	if resp.StatusCode >= 300 {
		defer gateway.DrainBody(resp.Body)
		return anthropicStatusError(t.Provider, resp)
	}
	if !m.req.Stream {
		defer gateway.DrainBody(resp.Body)
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err != nil {
			return err
		}
		m.raw, m.native = resp, b
		return nil
	}
	tap := anthropic.NewStreamTap()
	var head []byte
	buf := make([]byte, 32<<10)
	for !tap.Complete() && tap.Err() == nil && !bytes.Contains(head, []byte("\n\n")) {
		n, err := resp.Body.Read(buf)
		head = append(head, buf[:n]...)
		tap.Write(buf[:n])
		if errors.Is(err, io.EOF) && (tap.Complete() || tap.Err() != nil) {
			break // the whole stream (or its error) came with these bytes
		}
		if err != nil {
			resp.Body.Close()
			if errors.Is(err, io.EOF) {
				err = gateway.ErrStreamCut
			}
			return err
		}
	}
	if err := tap.Err(); err != nil {
		resp.Body.Close()
		return err
	}
	m.raw, m.native = resp, head
	m.tap = tap
	return nil
}

// beginEvents starts an Anthropic event stream: its status and headers,
// with the ids of the upstream's answer (upstream nil: none).
func beginEvents(w gin.ResponseWriter, upstream http.Header) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	copyHeaders(h, upstream)
	w.WriteHeader(200)
}

func copyHeaders(dst, src http.Header) {
	for _, h := range []string{"request-id", "anthropic-organization-id"} {
		if v := src.Get(h); v != "" {
			dst.Set(h, v)
		}
	}
}

// anthropicStatusError reads an Anthropic error answer.
func anthropicStatusError(provider string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	pe := &gateway.ProviderError{Provider: provider, Status: resp.StatusCode, RetryAfter: gateway.ParseRetryAfter(resp.Header, time.Now())}
	var eb anthropic.ErrorBody
	if json.Unmarshal(b, &eb) == nil {
		pe.Type, pe.Message = eb.Error.Type, eb.Error.Message
	}
	if pe.Message == "" {
		pe.Message = http.StatusText(resp.StatusCode)
	}
	return pe
}

// withModel returns body with its top-level "model" replaced, every other
// byte unchanged.
func withModel(body []byte, model string) []byte {
	d := json.NewDecoder(bytes.NewReader(body))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return body
	}
	for d.More() {
		k, err := d.Token()
		if err != nil {
			return body
		}
		start := d.InputOffset()
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return body
		}
		end := d.InputOffset()
		if k == "model" {
			// start is just after the key; skip the colon and spaces.
			i := int(start)
			for i < int(end) && (body[i] == ':' || body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r') {
				i++
			}
			q, _ := json.Marshal(model)
			out := make([]byte, 0, len(body)+len(q))
			out = append(out, body[:i]...)
			out = append(out, q...)
			return append(out, body[end:]...)
		}
	}
	return body
}

// copyStream passes an Anthropic stream through byte for byte. Its first
// bytes wait for the ledger's acknowledgement of the call so far; its
// message_stop waits for the response event's.
func (m *messagesCall) copyStream() int {
	defer m.raw.Body.Close()
	start := time.Now()
	if err := m.call.Ready(); err != nil {
		m.call.Fail(err, gateway.Outcome{Status: 503})
		writeError(m.c, err)
		return 503
	}
	w := m.c.Writer
	beginEvents(w, m.raw.Header)
	ttfb := time.Since(start)
	stopMark := []byte("event: message_stop")
	pending := m.native
	buf := make([]byte, 32<<10)
	var readErr error
	for {
		if i := bytes.Index(pending, stopMark); i >= 0 {
			// The clean end: everything before it, then the ledger, then it.
			w.Write(pending[:i])
			w.Flush()
			m.sent = append(m.sent, pending[:i]...)
			rest := pending[i:]
			for readErr == nil {
				var n int
				n, readErr = m.raw.Body.Read(buf)
				m.tap.Write(buf[:n])
				rest = append(rest, buf[:n]...)
			}
			if !m.tap.Complete() {
				break
			}
			if err := m.call.Respond(gateway.Outcome{Status: 200, Usage: m.tap.Usage(), FinishReason: m.tap.StopReason(), TTFB: ttfb, Body: m.tapped(rest)}); err != nil {
				writeAnthropicEvent(w, "api_error", "The audit ledger did not acknowledge this call; the answer is withheld.")
				return 200
			}
			w.Write(rest)
			w.Flush()
			return 200
		}
		if len(pending) > 0 {
			if _, err := w.Write(pending); err != nil {
				m.call.Fail(&gateway.Error{Status: 499, Type: gateway.TypeInvalidRequest, Code: "client_closed_request", Message: "The client stopped reading the stream.", Err: err}, gateway.Outcome{Status: 200, Usage: m.tap.Usage(), TTFB: ttfb})
				return 200
			}
			w.Flush()
			m.sent = append(m.sent, pending...)
		}
		if readErr != nil {
			break
		}
		var n int
		n, readErr = m.raw.Body.Read(buf)
		m.tap.Write(buf[:n])
		pending = buf[:n]
	}
	// The stream ended without message_stop, or with an error event.
	err := m.tap.Err()
	if err == nil {
		err = gateway.ErrStreamCut
	}
	ferr := m.call.Fail(err, gateway.Outcome{Status: 200, Usage: m.tap.Usage(), TTFB: ttfb, Body: m.sent})
	if m.tap.Err() == nil { // the upstream's own error event already reached the agent
		writeAnthropicEvent(w, "api_error", gateway.AsError(ferr).Message)
	}
	return 200
}

// tapped is the whole stream as the agent receives it.
func (m *messagesCall) tapped(rest []byte) []byte {
	return append(append([]byte(nil), m.sent...), rest...)
}

func writeAnthropicEvent(w gin.ResponseWriter, typ, message string) {
	b, _ := json.Marshal(anthropic.ErrorBody{Type: "error", Error: anthropic.ErrorDetail{Type: typ, Message: message}})
	w.Write([]byte("event: error\ndata: "))
	w.Write(b)
	w.Write([]byte("\n\n"))
	w.Flush()
}

// translateStream writes a translated stream as Anthropic events.
func (m *messagesCall) translateStream() int {
	w := &anthropicChunks{c: m.c}
	w.sw = anthropic.NewStreamWriter(m.c.Writer, func() {
		if !w.more {
			m.c.Writer.Flush()
		}
	}, m.req.Model, "msg_"+m.call.TraceID[:24])
	m.s.p.Pump(m.call, m.chatReq, &replayStream{Stream: m.stream, first: m.first}, w)
	if w.failed != 0 && !w.started {
		return w.failed
	}
	return 200
}

// replayStream yields a chunk already read, then the rest of the stream.
type replayStream struct {
	gateway.Stream
	first *gateway.ChatChunk
}

func (r *replayStream) Next() (*gateway.ChatChunk, error) {
	if c := r.first; c != nil {
		r.first = nil
		return c, nil
	}
	return r.Stream.Next()
}

// anthropicChunks writes a stream as Anthropic's events.
type anthropicChunks struct {
	c       *gin.Context
	sw      *anthropic.StreamWriter
	started bool
	failed  int
	more    bool // the next chunk is already here: hold the flush
}

func (a *anthropicChunks) begin() {
	if a.started {
		return
	}
	beginEvents(a.c.Writer, nil)
	a.started = true
}

func (a *anthropicChunks) WriteChunk(ch *gateway.ChatChunk, more bool) error {
	a.begin()
	a.more = more
	defer func() { a.more = false }()
	if err := a.sw.WriteChunk(ch); err != nil {
		return err
	}
	return a.c.Request.Context().Err()
}

func (a *anthropicChunks) Flush() error {
	if a.started {
		a.c.Writer.Flush()
	}
	return a.c.Request.Context().Err()
}

func (a *anthropicChunks) Finish(u *gateway.Usage) error {
	a.begin()
	return a.sw.Finish(u)
}

func (a *anthropicChunks) Fail(e *gateway.Error, started bool) error {
	if !a.started {
		a.failed = e.Status
		writeError(a.c, e)
		return e
	}
	a.sw.Fail(anthropicType(e), e.Message)
	return e
}

// anthropicType is the Anthropic error type of an error.
func anthropicType(e *gateway.Error) string {
	switch e.Type {
	case "authentication_error", "permission_error", "not_found_error", "request_too_large", "rate_limit_error", "api_error", "overloaded_error":
		return e.Type
	}
	switch {
	case e.Status == 401:
		return "authentication_error"
	case e.Status == 403:
		return "permission_error"
	case e.Status == 404:
		return "not_found_error"
	case e.Status == 413:
		return "request_too_large"
	case e.Status == 429:
		return "rate_limit_error"
	case e.Status == 503 || e.Status == 529:
		return "overloaded_error"
	case e.Status >= 500:
		return "api_error"
	}
	return anthropic.TypeInvalidRequest
}
