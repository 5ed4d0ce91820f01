package httpapi

import (
	"errors"
	"net/http"

	"aigw/gateway"
	"aigw/gateway/anthropic"

	"github.com/gin-gonic/gin"
)

// inspectStream passes an Anthropic stream through while the guard
// inspects its output: the pipeline runs the stream inspector (hold-back
// window, redaction, blocks) on the stream's chunks, and the events behind
// each chunk it releases are written as the upstream sent them (see
// anthropic.InspectedStream). A block ends the stream with an error event
// naming the guardrail; message_stop waits for the ledger's
// acknowledgement of the response event, as in copyStream.
func (m *messagesCall) inspectStream() int {
	w := &passedEvents{c: m.c, header: m.raw.Header}
	w.st = anthropic.NewInspectedStream(m.provider, m.native, m.raw.Body)
	m.s.p.Pump(m.call, m.chatReq, w.st, w)
	if w.failed != 0 && !w.began {
		return w.failed
	}
	return 200
}

// passedEvents writes the events of an inspected stream (a
// gateway.ChunkWriter of the chunks it made).
type passedEvents struct {
	c      *gin.Context
	st     *anthropic.InspectedStream
	header http.Header // the upstream's
	began  bool
	failed int
	// unflushed: bytes were written without a flush (more followed).
	unflushed bool
}

func (p *passedEvents) flush() {
	if p.unflushed {
		p.c.Writer.Flush()
		p.unflushed = false
	}
}

func (p *passedEvents) begin() {
	if p.began {
		return
	}
	beginEvents(p.c.Writer, p.header)
	p.began = true
}

// write sends b (nothing when empty), flushed unless more follows at once.
func (p *passedEvents) write(b []byte, more bool) error {
	if len(b) > 0 {
		p.begin()
		if _, err := p.c.Writer.Write(b); err != nil {
			return err
		}
		p.unflushed = true
	}
	if !more {
		p.flush()
	}
	return p.c.Request.Context().Err()
}

// WriteChunk writes the events up to a chunk the inspector released;
// chunks the stream did not make (the pipeline's own end and usage
// chunks) have none.
func (p *passedEvents) WriteChunk(ch *gateway.ChatChunk, more bool) error {
	return p.write(p.st.Release(ch), more)
}

// Flush sends what was written unflushed.
func (p *passedEvents) Flush() error {
	p.flush()
	return p.c.Request.Context().Err()
}

// Finish writes what is left: message_stop, once the call is recorded.
func (p *passedEvents) Finish(*gateway.Usage) error {
	p.begin()
	return p.write(p.st.Rest(), false)
}

// Fail ends the stream with an error event: the upstream's own, as it
// came, when that ended the stream; otherwise one of Anthropic's shape
// with the gateway's error (a guardrail's block names it). Before any
// byte, a failure the pipeline did not start the stream for is an error
// answer instead.
func (p *passedEvents) Fail(e *gateway.Error, started bool) error {
	if !started && !p.began {
		p.failed = e.Status
		writeError(p.c, e)
		return e
	}
	p.begin()
	if raw := p.st.ErrorEvent(); raw != nil && errors.Is(e, p.st.Err()) {
		p.c.Writer.Write(raw)
		p.c.Writer.Flush()
		return e
	}
	writeAnthropicEvent(p.c.Writer, anthropicType(e), e.Message)
	return e
}
