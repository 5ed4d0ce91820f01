package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// maxResultBytes bounds an upstream's answer to one call.
const maxResultBytes = 16 << 20

// drainWait bounds the wait for the end of an event stream after the
// call's response.
const drainWait = 100 * time.Millisecond

// errSessionGone: the upstream no longer knows the session (it
// restarted); the gateway reconnects.
var errSessionGone = errors.New("the upstream no longer knows the session")

// forward calls a tool of the upstream on the session and returns the
// result's JSON; an error may wrap the upstream's *jsonrpc.Error. rl,
// when not nil, relays to the agent what the upstream sends about the
// call before its result.
//
// Over streamable HTTP, the call is one POST on the session the SDK's
// client opened, written and read here: the result's bytes pass through
// untouched (they are what the ledger commits to) without the SDK's
// decoding and re-encoding, which cost more than the rest of the
// gateway. The session itself (initialize, keepalive pings, tool list
// changes, reconnection) stays the SDK's. Over stdio, the SDK's client
// makes the call (and only its progress is relayed).
func (u *upstream) forward(ctx context.Context, cs *sdk.ClientSession, tool string, args []byte, rl *relay) ([]byte, error) {
	if rl != nil && rl.token != nil {
		rl.upToken = "aigw-p-" + strconv.FormatUint(u.seq.Add(1), 10)
	}
	if u.cfg.URL == "" {
		p := &sdk.CallToolParams{Name: tool, Arguments: json.RawMessage(args)}
		if rl != nil && rl.upToken != "" {
			p.Meta = sdk.Meta{"progressToken": rl.upToken}
			u.progress.Store(rl.upToken, rl)
			defer u.progress.Delete(rl.upToken)
		}
		res, err := cs.CallTool(ctx, p)
		if err != nil {
			return nil, err
		}
		if res.Content == nil {
			res.Content = []sdk.Content{}
		}
		return json.Marshal(res)
	}
	b, err := u.post(ctx, cs, tool, args, rl)
	if errors.Is(err, errSessionGone) {
		cs.Close() // the run loop reconnects
	}
	return b, err
}

// newRequest makes a POST of body on the upstream's session.
func (u *upstream) newRequest(ctx context.Context, cs *sdk.ClientSession, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range u.cfg.Headers {
		req.Header.Set(k, v)
	}
	if sid := cs.ID(); sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
	}
	if ir := cs.InitializeResult(); ir != nil && ir.ProtocolVersion != "" {
		req.Header.Set("Mcp-Protocol-Version", ir.ProtocolVersion)
	}
	return req, nil
}

// post makes a tools/call on the upstream's session over streamable HTTP
// and returns the result of the JSON-RPC response, which may come as
// application/json or in a text/event-stream; the other messages of the
// stream are the upstream's about the call (upstreamMessage).
func (u *upstream) post(ctx context.Context, cs *sdk.ClientSession, tool string, args []byte, rl *relay) ([]byte, error) {
	id := `"aigw-` + strconv.FormatUint(u.seq.Add(1), 10) + `"` // never one of the SDK's numeric ids
	body := make([]byte, 0, len(args)+len(tool)+96)
	body = append(body, `{"jsonrpc":"2.0","id":`...)
	body = append(body, id...)
	body = append(body, `,"method":"tools/call","params":{"name":`...)
	body = strconv.AppendQuote(body, tool) // [A-Za-z0-9_.-]: the same in JSON
	if rl != nil && rl.upToken != "" {
		body = append(body, `,"_meta":{"progressToken":"`...)
		body = append(body, rl.upToken...) // aigw-p-<n>: the same in JSON
		body = append(body, `"}`...)
	}
	body = append(body, `,"arguments":`...)
	body = append(body, args...)
	body = append(body, `}}`...)
	// The request outlives the call by the end of its event stream (see
	// below): its context is the call's until the response is read.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	unlink := context.AfterFunc(ctx, cancel)
	drained := false
	defer func() {
		if !drained {
			unlink()
			cancel()
		}
	}()
	req, err := u.newRequest(rctx, cs, body)
	if err != nil {
		return nil, err
	}
	if tp, _ := ctx.Value(traceKey{}).(string); tp != "" {
		req.Header.Set("traceparent", tp)
	}
	resp, err := u.direct.Do(req) // headers set: no clone in upstreamTransport
	if err != nil {
		return nil, err
	}
	defer func() {
		if !drained {
			resp.Body.Close()
		}
	}()
	body = nil
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, errSessionGone
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if r, err := decodeResponse(b, id); err == nil && r.Error != nil {
			return nil, r.Error
		}
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxResultBytes+1))
		if err != nil {
			return nil, err
		}
		if len(b) > maxResultBytes {
			return nil, fmt.Errorf("answer longer than %d bytes", maxResultBytes)
		}
		return resultOf(b, id)
	case "text/event-stream":
		res, err := readEvents(resp.Body, id, func(data []byte) { u.upstreamMessage(ctx, cs, rl, data) })
		if err == nil && unlink() {
			// The server ends the stream after the response: read to its
			// end, after the call, so that the connection is reused (a
			// body closed early closes it), for drainWait at most.
			drained = true
			go func() {
				t := time.AfterFunc(drainWait, cancel)
				io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				t.Stop()
				resp.Body.Close()
				cancel()
			}()
		}
		return res, err
	}
	return nil, fmt.Errorf("answer of content type %q", ct)
}

// scanBufs are the first buffers of event-stream scanners.
var scanBufs = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// rpcResponse is a JSON-RPC response.
type rpcResponse struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *jsonrpc.Error  `json:"error"`
}

func decodeResponse(b []byte, id string) (*rpcResponse, error) {
	var r rpcResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if string(r.ID) != id || (r.Result == nil && r.Error == nil) {
		return nil, errNotOurs
	}
	return &r, nil
}

var errNotOurs = errors.New("not the response to the call")

func resultOf(b []byte, id string) ([]byte, error) {
	r, err := decodeResponse(b, id)
	if err != nil {
		return nil, fmt.Errorf("decode answer: %w", err)
	}
	if r.Error != nil {
		return nil, r.Error
	}
	return r.Result, nil
}

// readEvents reads a text/event-stream until the response to the call;
// other messages (progress notifications, requests of the upstream) go to
// other, one at a time, as they come.
//
// SPEC: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
func readEvents(r io.Reader, id string, other func(data []byte)) ([]byte, error) {
	bp := scanBufs.Get().(*[]byte)
	defer scanBufs.Put(bp)
	sc := bufio.NewScanner(r)
	sc.Buffer((*bp)[:0], maxResultBytes)
	var data []byte
	dispatch := func() ([]byte, bool, error) {
		if len(data) == 0 {
			return nil, false, nil
		}
		res, err := resultOf(data, id)
		if errors.Is(err, errNotOurs) {
			other(data)
			data = data[:0]
			return nil, false, nil
		}
		data = data[:0]
		return res, true, err
	}
	for sc.Scan() {
		line := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		if len(line) == 0 {
			if res, done, err := dispatch(); done {
				return res, err
			}
			continue
		}
		if v, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			v = bytes.TrimPrefix(v, []byte(" "))
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, v...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read event stream: %w", err)
	}
	if res, done, err := dispatch(); done {
		return res, err
	}
	return nil, errors.New("the event stream ended without the call's response")
}
