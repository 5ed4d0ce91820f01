package a2a

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"

	"aigw/gateway"
)

// upstreamRequest sends one JSON-RPC request to an agent. The agent gets
// the hop's token (header and, for messages, metadata), the trace, and its
// configured headers; nothing of the caller's request headers.
func (p *Proxy) upstreamRequest(ctx context.Context, ag *agentState, hop *Hop, trace, method string, id json.RawMessage, params []byte, stream bool) (*http.Response, *RPCError) {
	body := make([]byte, 0, 64+len(method)+len(params))
	body = append(body, `{"jsonrpc":"2.0","id":`...)
	body = append(body, id...)
	body = append(body, `,"method":`...)
	mb, _ := json.Marshal(method)
	body = append(body, mb...)
	body = append(body, `,"params":`...)
	body = append(body, params...)
	body = append(body, '}')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ag.URL, bytes.NewReader(body))
	if err != nil {
		return nil, rpcErr(CodeInternal, ReasonInternal, "Internal error.")
	}
	req.Header.Set("Content-Type", "application/json")
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	for k, v := range ag.Headers {
		req.Header.Set(k, v)
	}
	if hop != nil {
		req.Header.Set(HeaderDelegation, hop.Token)
	}
	if trace != "" {
		req.Header.Set("traceparent", "00-"+trace+"-"+randomHex(8)+"-01")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		var ue *url.Error // its message holds the agent's URL
		if errors.As(err, &ue) {
			err = ue.Err
		}
		p.log.Warn("a2a: agent unreachable", "agent", ag.Name, "method", method, "err", err)
		if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, rpcErr(CodeUpstreamUnavailable, ReasonUpstreamUnavailable, "Agent %q did not answer in time.", ag.Name)
		}
		return nil, rpcErr(CodeUpstreamUnavailable, ReasonUpstreamUnavailable, "Agent %q is unreachable.", ag.Name)
	}
	if resp.StatusCode/100 != 2 {
		gateway.DrainBody(resp.Body)
		return nil, rpcErr(CodeUpstreamUnavailable, ReasonUpstreamUnavailable, "Agent %q answered HTTP %d.", ag.Name, resp.StatusCode)
	}
	return resp, nil
}

// isEventStream reports whether a response is text/event-stream.
func isEventStream(h http.Header) bool {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return mt == "text/event-stream"
}

// decodeResponse reads an agent's JSON-RPC response.
func (p *Proxy) decodeResponse(ag *agentState, resp *http.Response) (*Response, *RPCError) {
	defer gateway.DrainBody(resp.Body)
	b, err := readLimited(resp.Body, p.cfg.MaxResponseBytes)
	if errors.Is(err, errTooLarge) {
		return nil, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q answered more than %d bytes.", ag.Name, p.cfg.MaxResponseBytes)
	}
	if err != nil {
		return nil, rpcErr(CodeUpstreamUnavailable, ReasonUpstreamUnavailable, "Agent %q's answer was cut.", ag.Name)
	}
	return parseResponse(ag, b)
}

func parseResponse(ag *agentState, b []byte) (*Response, *RPCError) {
	if res, ok := fastResponse(b); ok && len(res.Result) > 0 {
		return &res, nil
	}
	var res Response
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q answered something that is not a JSON-RPC response.", ag.Name)
	}
	if res.Error == nil && len(res.Result) == 0 {
		return nil, rpcErr(CodeInvalidAgentResponse, ReasonInvalidAgentResponse, "Agent %q answered a JSON-RPC response without result or error.", ag.Name)
	}
	return &res, nil
}

// resultHead is what the proxy reads of a result: its kind, the task it
// names and its state.
type resultHead struct {
	Kind      string          `json:"kind"`
	ID        string          `json:"id"`
	TaskID    string          `json:"taskId"`
	ContextID string          `json:"contextId"`
	Status    json.RawMessage `json:"status"`
	Final     bool            `json:"final"`
}

func (h *resultHead) task() string {
	if h.Kind == KindTask {
		return h.ID
	}
	return h.TaskID
}

func (h *resultHead) state() TaskState {
	if isNull(h.Status) {
		return ""
	}
	if st, ok := fastState(h.Status); ok {
		return st
	}
	return h.slowState()
}

// slowState is state with encoding/json.
func (h *resultHead) slowState() TaskState {
	var st struct {
		State TaskState `json:"state"`
	}
	if isNull(h.Status) || json.Unmarshal(h.Status, &st) != nil {
		return ""
	}
	return st.State
}

// statusPayload is the status as the caller sees it: the payload of a
// state event (its message is committed, not recorded in clear).
func (h *resultHead) statusPayload(up, gw string) []byte {
	if isNull(h.Status) {
		return nil
	}
	out, err := translate(h.Status, up, gw, false)
	if err != nil {
		return nil
	}
	return out
}

// translate replaces the agent's task id up with the gateway's gw in a
// result: every "taskId" member, and the top-level "id" of a task. It
// scans the JSON once without decoding it (task says whether it is a
// task); results that do not contain up are returned as they are.
func translate(raw json.RawMessage, up, gw string, task bool) (json.RawMessage, error) {
	if up == "" || up == gw {
		return raw, nil
	}
	q, _ := json.Marshal(up)
	if !bytes.Contains(raw, q) {
		return raw, nil
	}
	gq, _ := json.Marshal(gw)
	var stack []byte // '{' or '[' of the open containers
	var out []byte
	expectKey, idKey, last := false, false, 0
	for i := 0; i < len(raw); {
		switch c := raw[i]; c {
		case '{', '[':
			stack = append(stack, c)
			expectKey = c == '{'
			i++
		case '}', ']':
			if len(stack) == 0 {
				return nil, errors.New("unbalanced JSON")
			}
			stack = stack[:len(stack)-1]
			expectKey = false
			i++
		case ',':
			expectKey = len(stack) > 0 && stack[len(stack)-1] == '{'
			i++
		case ':':
			expectKey = false
			i++
		case '"':
			end, ok := stringEnd(raw, i)
			if !ok {
				return nil, errors.New("unterminated JSON string")
			}
			str := raw[i:end]
			switch {
			case expectKey:
				k := string(str[1 : len(str)-1])
				idKey = k == "taskId" || k == "id" && len(stack) == 1 && task
			case idKey && bytes.Equal(str, q) && stack[len(stack)-1] == '{':
				if out == nil {
					out = make([]byte, 0, len(raw)+4*(len(gq)-len(q)))
				}
				out = append(out, raw[last:i]...)
				out = append(out, gq...)
				last = end
			}
			i = end
		default:
			i++
		}
	}
	if out == nil {
		return raw, nil
	}
	return append(out, raw[last:]...), nil
}

// stringEnd returns the index after the JSON string starting at raw[i].
func stringEnd(raw []byte, i int) (int, bool) {
	for j := i + 1; j < len(raw); j++ {
		switch raw[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

// snapshot keeps the latest picture of a streamed task (as the caller
// sees it): the task, its last status, its artifacts.
type snapshot struct {
	task map[string]any
}

func newSnapshot(result json.RawMessage) *snapshot {
	s := &snapshot{}
	if len(result) > 0 {
		var m map[string]any
		if json.Unmarshal(result, &m) == nil && m["kind"] == KindTask {
			s.task = m
		}
	}
	return s
}

// add folds a translated streamed result into the snapshot.
func (s *snapshot) add(kind string, result json.RawMessage, gwTask, contextID string) {
	var m map[string]any
	if json.Unmarshal(result, &m) != nil {
		return
	}
	if kind == KindTask {
		s.task = m
		return
	}
	if s.task == nil {
		s.task = map[string]any{"kind": KindTask, "id": gwTask, "contextId": contextID, "status": map[string]any{"state": string(StateSubmitted)}}
	}
	switch kind {
	case KindStatusUpdate:
		if st, ok := m["status"]; ok {
			s.task["status"] = st
		}
	case KindArtifactUpdate:
		art, ok := m["artifact"].(map[string]any)
		if !ok {
			return
		}
		arts, _ := s.task["artifacts"].([]any)
		for i, a := range arts {
			if old, ok := a.(map[string]any); ok && old["artifactId"] == art["artifactId"] {
				if m["append"] == true {
					parts, _ := old["parts"].([]any)
					more, _ := art["parts"].([]any)
					old["parts"] = append(parts, more...)
				} else {
					arts[i] = art
				}
				return
			}
		}
		s.task["artifacts"] = append(arts, art)
	}
}

func (s *snapshot) bytes() json.RawMessage {
	if s.task == nil {
		return nil
	}
	b, err := json.Marshal(s.task)
	if err != nil {
		return nil
	}
	return b
}

// sseWriter writes JSON-RPC responses as server-sent events.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
	trace   string
	buf     []byte
}

func (s *sseWriter) write(id json.RawMessage, result json.RawMessage, e *RPCError) error {
	if !s.started {
		h := s.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		h.Set(HeaderTraceID, s.trace)
		s.w.WriteHeader(http.StatusOK)
		s.started = true
	}
	s.buf = append(s.buf[:0], "data: "...)
	s.buf = appendResponse(s.buf, id, result, e)
	s.buf = append(s.buf, "\n\n"...)
	if _, err := s.w.Write(s.buf); err != nil {
		return err
	}
	return s.rc.Flush()
}

// callbackURL is where an agent posts the push notifications of a hop.
func (p *Proxy) callbackURL(ag *agentState, hopID string) string {
	return p.cfg.BaseURL + p.cfg.PathPrefix + "/" + ag.Name + "/push/" + url.PathEscape(hopID)
}

// upstreamPush is the push config the gateway gives an agent for a hop
// (nil when the gateway has no public URL or the agent cannot push).
func (p *Proxy) upstreamPush(ctx context.Context, ag *agentState, hop *Hop) *PushNotificationConfig {
	if p.cfg.BaseURL == "" {
		return nil
	}
	if caps, known := p.capabilities(ctx, ag); !known || !caps.PushNotifications {
		return nil
	}
	return &PushNotificationConfig{ID: "aigw", URL: p.callbackURL(ag, hop.ID()), Token: hop.CallbackToken}
}

// decodeHead reads a result's head (with encoding/json when fastResultHead
// cannot).
func decodeHead(result []byte) (resultHead, error) {
	if h, ok := fastResultHead(result); ok {
		return h, nil
	}
	var h resultHead
	err := json.Unmarshal(result, &h)
	return h, err
}
