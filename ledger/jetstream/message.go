package jetstream

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// envelopeMagic starts a body that carries a payload (see the package
// documentation); a bare entry starts with '{'.
var envelopeMagic = [2]byte{0x00, 0x01}

// envelopeOverhead is the size of the envelope around entry, salt and payload.
const envelopeOverhead = 2 + 4 + 1

// encodeBody returns the message body of an entry; with hasPayload, the
// envelope of entry, salt and payload.
func encodeBody(entry, salt, payload []byte, hasPayload bool) []byte {
	if !hasPayload {
		return entry
	}
	b := make([]byte, 0, envelopeOverhead+len(entry)+len(salt)+len(payload))
	b = append(b, envelopeMagic[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(entry)))
	b = append(b, entry...)
	b = append(b, byte(len(salt)))
	b = append(b, salt...)
	return append(b, payload...)
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
