package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Methods of the requests an upstream may make of the agent during a
// tool call, which the gateway relays.
const (
	methodCreateMessage = "sampling/createMessage"
	methodElicit        = "elicitation/create"
	methodListRoots     = "roots/list"
)

// relayedIDPrefix begins the ids of the requests relayed to agents (as
// JSON strings): the SDK's own are numbers.
const relayedIDPrefix = `"aigw-r-`

// relay carries to an agent, on the event stream that answers its
// tools/call, what the upstream sends about the call before its result:
// progress notifications (under the agent's own progress token), log
// messages, and the requests the upstream makes of the agent, whose
// answers go back to the upstream (see ask). The response becomes an
// event stream with the first message relayed; a call with nothing to
// relay is answered application/json, as before.
type relay struct {
	s    *Server
	rq   *request
	u    *upstream
	tool string // the upstream's name of the tool
	sess *session
	w    http.ResponseWriter
	// token is the agent's progress token (JSON; nil: it asked for no
	// progress), upToken the one the upstream got for the call (the
	// upstream session is shared by all agents).
	token   json.RawMessage
	upToken string

	mu        sync.Mutex
	streaming bool // the event stream has begun
	closed    bool // the call is answered: nothing more goes out
	notes     int  // notifications relayed
	requests  int  // requests relayed
}

// send writes a message to the agent's event stream, beginning it if
// need be; it reports whether the message went out.
func (rl *relay) send(msg []byte, request bool) bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.closed {
		return false
	}
	if !rl.streaming {
		rl.streaming = true
		h := rl.w.Header()
		h.Set("Cache-Control", "no-cache, no-transform")
		h.Set("Content-Type", "text/event-stream")
		rl.w.WriteHeader(http.StatusOK)
	}
	if request {
		rl.requests++
	} else {
		rl.notes++
	}
	writeSSE(rl.w, msg)
	return true
}

// finish ends the relay: once it returns, nothing more is written to the
// agent. If the event stream has begun, it writes the call's response
// (out) as its last event and returns true; otherwise the caller answers
// application/json.
func (rl *relay) finish(out []byte) bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	rl.closed = true
	if rl.streaming {
		writeSSE(rl.w, bytes.TrimSuffix(out, []byte("\n")))
	}
	return rl.streaming
}

// counts returns the numbers of notifications and requests relayed.
func (rl *relay) counts() (notes, requests int) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.notes, rl.requests
}

// writeSSE writes data as one "message" event and flushes it. Each line
// of data gets a data field of its own: what is relayed as the upstream
// sent it (a JSON message whose events had several data lines, which
// readEvents joins with "\n") may span lines.
//
// SPEC: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
func writeSSE(w http.ResponseWriter, data []byte) {
	b := make([]byte, 0, len(data)+24)
	b = append(b, "event: message\n"...)
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			break
		}
		b = append(b, "data: "...)
		b = append(b, data[:i]...)
		b = append(b, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	b = append(b, "data: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	w.Write(b)
	http.NewResponseController(w).Flush()
}

// rpcMessage is a JSON-RPC request or notification of an upstream.
type rpcMessage struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// upstreamMessage handles a message of the upstream, on the event stream
// of a call, that is not the call's response. Notifications are relayed
// (rl non-nil) or dropped; a request is relayed and answered (see ask),
// or refused with a JSON-RPC error, never left unanswered.
func (u *upstream) upstreamMessage(ctx context.Context, cs *sdk.ClientSession, rl *relay, data []byte) {
	var m rpcMessage
	if json.Unmarshal(data, &m) != nil || m.Method == "" {
		return // a response to another request, or not JSON-RPC
	}
	if len(m.ID) == 0 || string(m.ID) == "null" {
		if rl != nil {
			rl.notification(m.Method, m.Params, data)
		}
		return
	}
	var res json.RawMessage
	var je *jsonrpc.Error
	switch {
	case m.Method == "ping":
		res = json.RawMessage("{}")
	case m.Method != methodCreateMessage && m.Method != methodElicit && m.Method != methodListRoots:
		je = &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: fmt.Sprintf("method %q is not supported by the aigw gateway", clean(m.Method, 64))}
	case rl == nil:
		je = notRelayed(m.Method)
	default:
		res, je = rl.ask(ctx, &m)
	}
	if err := u.reply(ctx, cs, m.ID, res, je); err != nil {
		u.s.log.Warn("mcp upstream: answering its request failed", "upstream", u.cfg.Name, "method", clean(m.Method, 64), "err", u.errString(err))
	}
}

// notRelayed is the answer to a request an upstream makes when the
// gateway cannot relay it to an agent.
func notRelayed(method string) *jsonrpc.Error {
	return &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: fmt.Sprintf("method %q is not supported by the aigw gateway here: "+
		"it relays requests to the agent only on the event stream of a tool call over streamable HTTP", method)}
}

// notification relays an upstream notification about the call: progress
// (when the agent asked for it, under its token), log messages, and the
// completion of a URL elicitation.
func (rl *relay) notification(method string, params json.RawMessage, data []byte) {
	switch method {
	case "notifications/progress":
		if msg := rl.progress(params); msg != nil {
			rl.send(msg, false)
		}
	case "notifications/message", "notifications/elicitation/complete":
		rl.send(data, false)
	}
}

// progress returns the agent's progress notification for the upstream's
// (nil when it is not about the call).
func (rl *relay) progress(params json.RawMessage) []byte {
	if rl.token == nil {
		return nil
	}
	var p map[string]json.RawMessage
	if json.Unmarshal(params, &p) != nil {
		return nil
	}
	var tok string
	if json.Unmarshal(p["progressToken"], &tok) != nil || tok != rl.upToken {
		return nil
	}
	p["progressToken"] = rl.token
	b, err := json.Marshal(p)
	if err != nil {
		return nil
	}
	return append(append([]byte(`{"jsonrpc":"2.0","method":"notifications/progress","params":`), b...), '}')
}

// ask relays a request of the upstream to the agent and returns the
// agent's answer, once the ledger has acknowledged the exchange's event
// (kind "mcp", method the request's, with the call's server and tool;
// payload {"request","answer","salt"}). It refuses what the agent did not
// declare it can do, and, from an upstream whose injections are blocked,
// a request that looks like a prompt injection.
func (rl *relay) ask(ctx context.Context, m *rpcMessage) (json.RawMessage, *jsonrpc.Error) {
	s := rl.s
	start := time.Now()
	attrs := map[string]any{"method": m.Method, "server": rl.u.cfg.Name, "tool": rl.tool}
	params := m.Params
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	done := func(outcome string, answer []byte, je *jsonrpc.Error) (json.RawMessage, *jsonrpc.Error) {
		attrs["outcome"] = outcome
		attrs["duration_us"] = time.Since(start).Microseconds()
		if je != nil {
			attrs["error"] = truncate(je.Message, 256)
			answer, _ = json.Marshal(je)
		}
		payload, salt := saltedPayload("request", params, "answer", answer)
		attrs["request_sha256"] = saltedHash(salt[:], params)
		attrs["answer_sha256"] = saltedHash(salt[:], answer)
		if lerr := s.record(ctx, rl.rq, KindMCP, attrs, payload); lerr != nil {
			return nil, lerr
		}
		if je != nil {
			return nil, je
		}
		return answer, nil
	}
	if why := rl.unsupported(m.Method, params); why != "" {
		return done(OutcomeError, nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: why})
	}
	if m.Method != methodListRoots {
		var b strings.Builder
		collectStrings(&b, params, 0)
		if fs := s.cfg.Detector.Scan(b.String(), nil); len(fs) > 0 {
			attrs["verdicts"] = []any{injectionVerdict(fs, rl.u.block)}
			if rl.u.block {
				return done(OutcomeBlocked, nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest,
					Message: "the aigw gateway withheld this request from the agent: it looks like a prompt injection"})
			}
		}
	}

	id := relayedIDPrefix + strconv.FormatUint(s.relayID.Add(1), 10) + `"`
	ch := rl.sess.await(id)
	defer rl.sess.forget(id)
	msg := make([]byte, 0, len(params)+len(m.Method)+64)
	msg = append(msg, `{"jsonrpc":"2.0","id":`...)
	msg = append(msg, id...)
	msg = append(msg, `,"method":`...)
	msg = strconv.AppendQuote(msg, m.Method)
	msg = append(msg, `,"params":`...)
	msg = append(msg, params...)
	msg = append(msg, '}')
	if !rl.send(msg, true) {
		return done(OutcomeError, nil, notRelayed(m.Method))
	}
	var answer []byte
	select {
	case answer = <-ch:
	case <-ctx.Done():
		return done(OutcomeError, nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the agent did not answer before the call ended"})
	}
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  *jsonrpc.Error  `json:"error"`
	}
	if json.Unmarshal(answer, &r) != nil || (r.Result == nil && r.Error == nil) {
		return done(OutcomeError, nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the agent answered a malformed response"})
	}
	if r.Error != nil {
		return done(OutcomeError, nil, r.Error)
	}
	return done(OutcomeOK, r.Result, nil)
}

// unsupported says why the agent cannot take a request ("" if it can):
// it did not declare the capability at initialize.
func (rl *relay) unsupported(method string, params json.RawMessage) string {
	var caps *sdk.ClientCapabilities
	if ip := rl.sess.ss.InitializeParams(); ip != nil {
		caps = ip.Capabilities
	}
	if caps == nil {
		caps = &sdk.ClientCapabilities{}
	}
	switch method {
	case methodCreateMessage:
		if caps.Sampling == nil {
			return "the agent does not support sampling (it did not declare the capability)"
		}
	case methodListRoots:
		if caps.RootsV2 == nil {
			return "the agent does not support roots (it did not declare the capability)"
		}
	case methodElicit:
		e := caps.Elicitation
		if e == nil {
			return "the agent does not support elicitation (it did not declare the capability)"
		}
		var p struct {
			Mode string `json:"mode"`
			URL  string `json:"url"`
		}
		json.Unmarshal(params, &p)
		if p.Mode == "url" || (p.Mode == "" && p.URL != "") {
			if e.URL == nil {
				return `the agent does not support "url" elicitation`
			}
		} else if e.Form == nil && e.URL != nil {
			return `the agent does not support "form" elicitation`
		}
	}
	return ""
}

// await registers a request relayed to the agent of the session: its
// answer (a JSON-RPC response the agent POSTs) comes on the channel.
func (sess *session) await(id string) chan []byte {
	ch := make(chan []byte, 1)
	sess.pmu.Lock()
	if sess.pending == nil {
		sess.pending = make(map[string]chan []byte)
	}
	sess.pending[id] = ch
	sess.pmu.Unlock()
	return ch
}

func (sess *session) forget(id string) {
	sess.pmu.Lock()
	delete(sess.pending, id)
	sess.pmu.Unlock()
}

// answered hands the agent's answer to the relayed request it is for.
func (sess *session) answered(id string, msg []byte) bool {
	sess.pmu.Lock()
	ch, ok := sess.pending[id]
	delete(sess.pending, id)
	sess.pmu.Unlock()
	if ok {
		ch <- msg
	}
	return ok
}

// reply answers a request the upstream made on its session: one POST of
// the JSON-RPC response.
func (u *upstream) reply(ctx context.Context, cs *sdk.ClientSession, id, result json.RawMessage, je *jsonrpc.Error) error {
	body := appendResponse(make([]byte, 0, len(result)+len(id)+64), id, result, je)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.s.cfg.ConnectTimeout)
	defer cancel()
	req, err := u.newRequest(rctx, cs, body)
	if err != nil {
		return err
	}
	resp, err := u.direct.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// refuseOutsideCall is the upstream client's middleware: a request of the
// upstream that reaches the SDK's client is not on a call's event stream
// (an upstream answering application/json sends them on its session's
// own stream, and over stdio nothing ties them to a call), so it cannot
// be relayed to an agent: it is refused with a JSON-RPC error (method
// not found, which the SDK words `method not found: "<method>"`).
func refuseOutsideCall(next sdk.MethodHandler) sdk.MethodHandler {
	return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
		switch method {
		case methodCreateMessage, methodElicit, methodListRoots:
			return nil, notRelayed(method)
		}
		return next(ctx, method, req)
	}
}

// progressTo relays the progress notifications of a stdio upstream's call
// (the SDK's client reads them) to the call's agent. The SDK hands
// notifications over on a goroutine of their own, and the call's result
// without waiting for them: one it hands over after the result is not
// relayed.
func (u *upstream) progressTo(_ context.Context, req *sdk.ProgressNotificationClientRequest) {
	if req.Params == nil {
		return
	}
	tok, ok := req.Params.ProgressToken.(string)
	if !ok {
		return
	}
	v, ok := u.progress.Load(tok)
	if !ok {
		return
	}
	rl := v.(*relay)
	if b, err := json.Marshal(req.Params); err == nil {
		if msg := rl.progress(b); msg != nil {
			rl.send(msg, false)
		}
	}
}
