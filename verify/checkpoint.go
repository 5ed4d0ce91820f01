package verify

import (
	"errors"
	"fmt"
	"strings"

	"aigw/ledger"

	"golang.org/x/mod/sumdb/note"
)

// errNoVerifiers is returned when Options.Verifiers is nil: nothing can be trusted.
var errNoVerifiers = errors.New("verify: no trusted checkpoint keys (Options.Verifiers is nil)")

// openCheckpoint checks a signed checkpoint of log: a trusted key signed it,
// every signature by a trusted key is valid, its body is a canonical
// checkpoint, and its origin is origin (or, with origin empty, ends in
// "/"+log, the form ledger.Origin gives every log). It returns the
// checkpoint and the signers' key names (name+hash).
func openCheckpoint(log string, signed []byte, origin string, verifiers note.Verifiers) (ledger.Checkpoint, []string, *MismatchError) {
	var size uint64
	if body, err := ledger.SplitNote(signed); err == nil {
		if c, err := ledger.ParseCheckpointBody(body); err == nil {
			size = c.Size
		}
	}
	n, err := note.Open(signed, verifiers)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return ledger.Checkpoint{}, nil, mismatch(log, KindSignature, size, "a signature by a trusted key", "signatures by unknown keys only")
		case errors.As(err, &invalid):
			return ledger.Checkpoint{}, nil, mismatch(log, KindSignature, size, "a valid signature by "+invalid.Name, "an invalid signature")
		}
		return ledger.Checkpoint{}, nil, mismatch(log, KindParse, size, "a signed checkpoint note", err.Error())
	}
	c, err := ledger.ParseCheckpointBody([]byte(n.Text))
	if err != nil {
		return c, nil, mismatch(log, KindParse, size, "a checkpoint body", err.Error())
	}
	switch {
	case origin != "" && c.Origin != origin:
		return c, nil, mismatch(log, KindOrigin, c.Size, fmt.Sprintf("origin %q", origin), fmt.Sprintf("%q", c.Origin))
	case origin == "" && !strings.HasSuffix(c.Origin, "/"+log):
		return c, nil, mismatch(log, KindOrigin, c.Size, fmt.Sprintf("an origin ending in %q", "/"+log), fmt.Sprintf("%q", c.Origin))
	}
	names := make([]string, len(n.Sigs))
	for i, s := range n.Sigs {
		names[i] = fmt.Sprintf("%s+%08x", s.Name, s.Hash)
	}
	return c, names, nil
}
