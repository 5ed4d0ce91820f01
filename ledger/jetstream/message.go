package jetstream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"aigw/ledger"
)

// envelopeMagic starts a body that carries a payload (see the package
// documentation); a bare entry starts with '{'.
var envelopeMagic = [2]byte{0x00, 0x01}

// envelopeOverhead is the size of the envelope around entry, salt and payload.
const envelopeOverhead = 2 + 4 + 1

// bodySize is about the size of an event's body: its envelope, the
// payload, its attributes when given raw and ~320 bytes of other members.
func bodySize(ev *ledger.Event, payload []byte) int {
	return envelopeOverhead + ledger.SaltSize + 320 + len(ev.RawAttrs) + len(payload)
}

// appendBody appends the message body of an event to dst: its entry, or,
// with a payload (non-nil, possibly empty), the envelope of the entry
// committing to the payload under a fresh salt, the salt and the payload.
// It returns the commitment ("" without a payload). The event is
// validated as [ledger.Event.Entry] does, and not changed.
func appendBody(dst []byte, ev *ledger.Event, payload []byte) ([]byte, string, error) {
	if payload == nil {
		out, err := ev.AppendEntry(dst)
		return out, "", err
	}
	commitment, salt := ledger.Commit(payload, nil)
	e := *ev
	e.PayloadSHA256 = commitment
	out := append(dst, envelopeMagic[:]...)
	lenAt := len(out)
	out = append(out, 0, 0, 0, 0)
	out, err := e.AppendEntry(out)
	if err != nil {
		return nil, "", err
	}
	binary.BigEndian.PutUint32(out[lenAt:], uint32(len(out)-lenAt-4))
	out = append(out, byte(len(salt)))
	out = append(out, salt...)
	return append(out, payload...), commitment, nil
}

// errBody is wrapped by every error of decodeBody.
var errBody = errors.New("malformed message body")

// decodeBody splits a message body into the entry and, for an envelope, the
// salt and payload (both non-nil then, the payload possibly empty). The
// returned slices alias body. It checks the framing only; sequencer.Check
// checks the contents.
func decodeBody(body []byte) (entry, salt, payload []byte, err error) {
	if len(body) == 0 {
		return nil, nil, nil, fmt.Errorf("%w: empty", errBody)
	}
	if body[0] == '{' {
		return body, nil, nil, nil
	}
	if len(body) < envelopeOverhead || body[0] != envelopeMagic[0] || body[1] != envelopeMagic[1] {
		return nil, nil, nil, fmt.Errorf("%w: neither an entry nor an envelope", errBody)
	}
	n := binary.BigEndian.Uint32(body[2:6])
	rest := body[6:]
	if uint64(n) >= uint64(len(rest)) { // the salt length byte must follow
		return nil, nil, nil, fmt.Errorf("%w: entry length %d past the end of a %d-byte body", errBody, n, len(body))
	}
	entry, rest = rest[:n:n], rest[n:]
	s := int(rest[0])
	rest = rest[1:]
	if s > len(rest) {
		return nil, nil, nil, fmt.Errorf("%w: salt length %d past the end of a %d-byte body", errBody, s, len(body))
	}
	salt, payload = rest[:s:s], rest[s:]
	if payload == nil {
		payload = []byte{}
	}
	return entry, salt, payload, nil
}

// batchMagic starts a body that carries several events of one log.
var batchMagic = [2]byte{0x00, 0x02}

// encodeBatch returns the body of a batch of event bodies.
func encodeBatch(bodies [][]byte) []byte {
	n := 2
	for _, b := range bodies {
		n += 4 + len(b)
	}
	out := make([]byte, 0, n)
	out = append(out, batchMagic[:]...)
	for _, b := range bodies {
		out = binary.BigEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	return out
}

// appendBatch appends to dst the body of a batch of events of one log (the
// framing of encodeBatch), each event's body (appendBody) in place:
// payload(i) is event i's payload, nil for none.
func appendBatch(dst []byte, events []*ledger.Event, payload func(i int) []byte) ([]byte, error) {
	n := 2
	for i, ev := range events {
		if ev == nil {
			return nil, &ledger.EventError{Reason: fmt.Sprintf("nil event %d", i)}
		}
		n += 4 + bodySize(ev, payload(i))
	}
	out := slices.Grow(dst, n)
	out = append(out, batchMagic[:]...)
	for i, ev := range events {
		if ev.Tenant != events[0].Tenant {
			return nil, &ledger.EventError{Field: "tenant", Reason: fmt.Sprintf("a batch holds events of one log; event %d is of %q", i, ev.Tenant)}
		}
		lenAt := len(out)
		out = append(out, 0, 0, 0, 0)
		var err error
		if out, _, err = appendBody(out, ev, payload(i)); err != nil {
			return nil, err
		}
		binary.BigEndian.PutUint32(out[lenAt:], uint32(len(out)-lenAt-4))
	}
	return out, nil
}

// isBatch reports whether a body is a batch.
func isBatch(body []byte) bool {
	return len(body) >= 2 && body[0] == batchMagic[0] && body[1] == batchMagic[1]
}

// splitBatch calls fn with each event body of a batch (aliasing body).
func splitBatch(body []byte, fn func(b []byte) error) error {
	rest := body[2:]
	if len(rest) == 0 {
		return fmt.Errorf("%w: empty batch", errBody)
	}
	for len(rest) > 0 {
		if len(rest) < 4 {
			return fmt.Errorf("%w: truncated batch", errBody)
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(n) > uint64(len(rest)) || n == 0 {
			return fmt.Errorf("%w: batch member of %d bytes past the end", errBody, n)
		}
		if err := fn(rest[:n:n]); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}
