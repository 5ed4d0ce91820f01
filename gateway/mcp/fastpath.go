package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"aigw/gateway"
)

// session is an initialized MCP session of an agent, as the gateway
// tracks it beside the SDK: whose it is, and when it was last used.
type session struct {
	user string // the caller's tenant and key (userOf)
	ss   *sdk.ServerSession
	last atomic.Int64 // unix nanoseconds of the last POST's start or end
	// busy counts the POSTs in flight: a session is not idle while one
	// runs, however long (a tool call may outlast SessionTimeout).
	busy atomic.Int32

	pmu     sync.Mutex
	pending map[string]chan []byte // requests relayed to the agent, by id (JSON)
}

// userOf identifies a caller's sessions: its tenant and key.
func userOf(c *gateway.Caller) string { return c.Tenant + "\x00" + c.KeyID }

// addSession tracks a session once its initialize has succeeded, until it
// ends.
func (s *Server) addSession(c *gateway.Caller, ss *sdk.ServerSession) {
	id := ss.ID()
	if id == "" {
		return
	}
	sess := &session{user: userOf(c), ss: ss}
	sess.last.Store(time.Now().UnixNano())
	s.sessMu.Lock()
	if _, dup := s.sessions[id]; dup {
		s.sessMu.Unlock()
		return
	}
	s.sessions[id] = sess
	s.sessMu.Unlock()
	go func() {
		ss.Wait()
		s.sessMu.Lock()
		delete(s.sessions, id)
		s.sessMu.Unlock()
	}()
}

func (s *Server) sessionFor(id string) *session {
	s.sessMu.RLock()
	defer s.sessMu.RUnlock()
	return s.sessions[id]
}

// reap closes the sessions idle for SessionTimeout (the gateway, not the
// SDK, keeps time: calls it serves itself do not reach the SDK) and frees
// the servers of tenants idle for TenantIdleTimeout, until ctx ends, then
// closes every session.
func (s *Server) reap(ctx context.Context) {
	tick := time.NewTicker(min(max(min(s.cfg.SessionTimeout, s.cfg.TenantIdleTimeout)/8, 10*time.Millisecond), time.Minute))
	defer tick.Stop()
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			now = time.Now().Add(100 * 365 * 24 * time.Hour) // all of them
		case now = <-tick.C:
		}
		var idle []*sdk.ServerSession
		s.sessMu.RLock()
		for _, sess := range s.sessions {
			if sess.busy.Load() == 0 && now.Sub(time.Unix(0, sess.last.Load())) > s.cfg.SessionTimeout {
				idle = append(idle, sess.ss)
			}
		}
		s.sessMu.RUnlock()
		for _, ss := range idle {
			ss.Close()
		}
		if ctx.Err() != nil {
			return
		}
		s.freeIdle(now, false)
	}
}

// legacyVersions are the protocol versions of the initialize handshake,
// those a session the gateway serves speaks.
var legacyVersions = func() map[string]bool {
	m := map[string]bool{}
	for _, v := range sdk.SupportedProtocolVersions() {
		if v < "2026-07-28" {
			m[v] = true
		}
	}
	return m
}()

// fastCall serves a POST that carries one tools/call of an upstream tool
// on an initialized session of the caller, without the SDK's server: it
// decodes the request and encodes the response itself, as the SDK would
// (application/json; JSONResponse), and passes the upstream's result
// bytes through. What the upstream sends about the call before its
// result is relayed (see relay): the response is then an event stream.
// It also takes the agent's answers to the requests relayed to it. It
// returns false, with the body restored, for anything else, which the SDK
// then serves (the same call included, only slower, and without relay).
func (s *Server) fastCall(w http.ResponseWriter, r *http.Request, c *gateway.Caller, sess *session) bool {
	start := time.Now()
	if len(r.Header.Values("Last-Event-ID")) > 0 {
		return false
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		return false
	}
	if j, e := accepts(r.Header.Values("Accept")); !j || !e {
		return false
	}
	if v := r.Header.Get("Mcp-Protocol-Version"); v != "" && !legacyVersions[v] {
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, fmt.Sprintf("request body exceeds %d bytes", mbe.Limit), http.StatusRequestEntityTooLarge)
			return true
		}
		http.Error(w, "failed to read body", http.StatusBadRequest)
		return true
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if b := bytes.TrimLeft(body, " \t\r\n"); len(b) == 0 || b[0] != '{' {
		return false // a batch, or not JSON
	}
	var m struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Result  json.RawMessage `json:"result"`
		Error   json.RawMessage `json:"error"`
		Params  *struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
			Meta      json.RawMessage `json:"_meta"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &m) != nil || m.JSONRPC != "2.0" {
		return false
	}
	if m.Method == "" && (m.Result != nil || m.Error != nil) && bytes.HasPrefix(m.ID, []byte(relayedIDPrefix)) {
		// The agent's answer to a request relayed to it (one that came too
		// late is dropped: the SDK would not know its id either).
		sess.answered(string(m.ID), body)
		w.WriteHeader(http.StatusAccepted)
		return true
	}
	if m.Method != "tools/call" || m.Params == nil || !validID(m.ID) {
		return false
	}
	var token json.RawMessage
	if meta := m.Params.Meta; len(meta) > 0 && string(meta) != "null" && string(meta) != "{}" {
		var keys map[string]json.RawMessage
		if json.Unmarshal(meta, &keys) != nil {
			return false
		}
		for k, v := range keys {
			if k != "progressToken" {
				return false // per-request protocol metadata (SEP-2575) and the like: the SDK's
			}
			if validID(v) {
				token = v // a string or a number, as ids are
			}
		}
	}
	server, tool, ok := strings.Cut(m.Params.Name, "__")
	u := s.byName[server]
	if !ok || u == nil || !u.tenants[c.Tenant] {
		return false
	}
	f := &struct { // one allocation
		rq request
		rl relay
	}{rq: request{caller: c, start: start, traceID: gateway.TraceIDFrom(r.Header.Get("traceparent"))}}
	rq, rl := &f.rq, &f.rl
	if rq.traceID == "" {
		rq.traceID = gateway.NewTraceID()
	}
	*rl = relay{s: s, rq: rq, u: u, tool: tool, sess: sess, w: w, token: token}
	res, je := s.invoke(r.Context(), rq, u, tool, m.Params.Name, m.Params.Arguments, rl)
	out := append(appendResponse(make([]byte, 0, len(res)+len(m.ID)+64), m.ID, res, je), '\n')
	if rl.finish(out) {
		return true
	}
	h := w.Header()
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(out)
	return true
}

// appendResponse appends the JSON-RPC response to the request id: its
// error je, or else its result.
func appendResponse(dst []byte, id, result json.RawMessage, je *jsonrpc.Error) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = append(dst, id...)
	if je != nil {
		eb, _ := json.Marshal(je)
		dst = append(dst, `,"error":`...)
		dst = append(dst, eb...)
	} else {
		dst = append(dst, `,"result":`...)
		dst = append(dst, result...)
	}
	return append(dst, '}')
}

// validID reports whether a JSON-RPC request id is a number or a string.
func validID(id json.RawMessage) bool {
	if len(id) == 0 {
		return false
	}
	c := id[0]
	return c == '"' || c == '-' || c >= '0' && c <= '9'
}

// accepts reports whether Accept values take JSON and event streams (the
// SDK's check).
func accepts(values []string) (jsonOK, streamOK bool) {
	for _, v := range values {
		for _, raw := range strings.Split(v, ",") {
			base, _, _ := strings.Cut(strings.TrimSpace(raw), ";")
			switch strings.ToLower(strings.TrimSpace(base)) {
			case "application/json", "application/*":
				jsonOK = true
			case "text/event-stream", "text/*":
				streamOK = true
			case "*/*":
				jsonOK, streamOK = true, true
			}
		}
	}
	return jsonOK, streamOK
}
