package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"

	"aigw/gateway"
)

// UsageFromBody reads the usage and stop reason of a Message body passed
// through unchanged. An error body returns a *gateway.ProviderError; a
// body that does not parse, an error wrapping gateway.ErrStreamMalformed.
func UsageFromBody(body []byte) (*gateway.Usage, string, error) {
	var r struct {
		Type       string       `json:"type"`
		StopReason string       `json:"stop_reason"`
		Usage      *Usage       `json:"usage"`
		Error      *ErrorDetail `json:"error"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, "", fmt.Errorf("anthropic: message body: %w: %v", gateway.ErrStreamMalformed, err)
	}
	if r.Type == "error" {
		return nil, "", eventError(r.Error)
	}
	if r.Usage == nil {
		return nil, r.StopReason, nil
	}
	u := chatUsage(*r.Usage)
	return &u, r.StopReason, nil
}

// eventError is the *gateway.ProviderError of an error body or event.
func eventError(d *ErrorDetail) error {
	pe := &gateway.ProviderError{Provider: DefaultName, Status: StatusOverloaded, Type: TypeOverloaded}
	if d != nil && d.Type != "" {
		pe.Type, pe.Message, pe.Status = d.Type, d.Message, StatusForType(d.Type)
	}
	return pe
}

// maxTapLine bounds a line the tap keeps; longer lines are skipped.
const maxTapLine = gateway.DefaultSSEMaxEvent

// StreamTap reads a Messages event stream as it is copied to a client
// unchanged (use it as an io.Writer beside the client, e.g. with
// io.TeeReader): the bytes may come in any chunking. It decodes only the
// events that carry usage and state (message_start, message_delta,
// message_stop, error), never fails a Write, and is not safe for
// concurrent use.
type StreamTap struct {
	line    []byte
	skip    bool // the current line is over maxTapLine
	cr      bool // the last byte was '\r'
	event   string
	data    []byte
	hasData bool
	lost    bool // a data line of the current event was skipped

	usage    usageAcc
	stop     string
	complete bool
	err      error
}

// NewStreamTap returns an empty tap.
func NewStreamTap() *StreamTap { return &StreamTap{} }

// Write parses p; it always returns len(p), nil.
func (t *StreamTap) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if t.cr {
			t.cr = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			t.keep(p)
			break
		}
		t.keep(p[:i])
		t.cr = p[i] == '\r'
		p = p[i+1:]
		t.endLine()
	}
	return n, nil
}

func (t *StreamTap) keep(b []byte) {
	if t.skip {
		return
	}
	if len(t.line)+len(b) > maxTapLine {
		t.skip = true
		t.line = t.line[:0]
		return
	}
	t.line = append(t.line, b...)
}

// endLine interprets a complete line.
//
// SPEC: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
func (t *StreamTap) endLine() {
	line, skipped := t.line, t.skip
	t.line, t.skip = t.line[:0], false
	if skipped {
		t.lost = true
		return
	}
	if len(line) == 0 {
		t.dispatch()
		return
	}
	if line[0] == ':' {
		return
	}
	field, value := gateway.SSEField(line)
	switch string(field) {
	case "event":
		t.event = string(value)
	case "data":
		if t.hasData {
			t.data = append(t.data, '\n')
		}
		t.hasData = true
		if !tapSkips(t.event) {
			t.data = append(t.data, value...)
		}
	}
}

// tapSkips says whether the tap ignores the data of an event.
func tapSkips(event string) bool {
	switch event {
	case EventContentBlockDelta, EventContentBlockStart, EventContentBlockStop, EventPing:
		return true
	}
	return false
}

func (t *StreamTap) dispatch() {
	event, data, hasData, lost := t.event, t.data, t.hasData, t.lost
	t.event, t.data, t.hasData, t.lost = "", t.data[:0], false, false
	if tapSkips(event) || !hasData && !lost {
		return
	}
	var e StreamEvent
	if lost || json.Unmarshal(data, &e) != nil {
		if t.err == nil {
			t.err = fmt.Errorf("anthropic: %s event: %w", event, gateway.ErrStreamMalformed)
		}
		return
	}
	if e.Type == "" {
		e.Type = event
	}
	switch e.Type {
	case EventMessageStart:
		if e.Message != nil {
			t.usage.start(e.Message.Usage)
		}
	case EventMessageDelta:
		t.usage.delta(e.Usage)
		if e.Delta != nil && e.Delta.StopReason != "" {
			t.stop = e.Delta.StopReason
		}
	case EventMessageStop:
		t.complete = true
	case EventError:
		if t.err == nil {
			t.err = eventError(e.Error)
		}
	}
}

// Usage is the usage reported so far (message_start, then message_delta),
// nil if none; it is final once Complete.
func (t *StreamTap) Usage() *gateway.Usage { return t.usage.usage() }

// StopReason is the stop reason of message_delta, "" before it.
func (t *StreamTap) StopReason() string { return t.stop }

// Complete reports whether message_stop was seen: the stream ended
// properly.
func (t *StreamTap) Complete() bool { return t.complete }

// Err is the stream's error event as a *gateway.ProviderError, or an error
// wrapping gateway.ErrStreamMalformed for an event that did not parse; nil
// if neither was seen.
func (t *StreamTap) Err() error { return t.err }
