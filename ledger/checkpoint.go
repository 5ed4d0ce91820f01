package ledger

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is the body of a C2SP tlog-checkpoint: origin, tree size and root hash.
//
// SPEC: https://c2sp.org/tlog-checkpoint
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   Hash
}

// Origin returns the checkpoint origin line of a log, given the deployment's origin prefix.
func Origin(prefix, log string) string { return prefix + "/" + log }

// LogFromOrigin returns the log name of an origin made by [Origin] with prefix.
func LogFromOrigin(prefix, origin string) (string, bool) {
	log, ok := strings.CutPrefix(origin, prefix+"/")
	return log, ok && ValidLogName(log)
}

// Marshal returns the checkpoint body: three lines, each ending in a newline.
func (c Checkpoint) Marshal() []byte {
	return []byte(c.Origin + "\n" + strconv.FormatUint(c.Size, 10) + "\n" + c.Root.String() + "\n")
}

// ErrInvalidCheckpoint is wrapped by every checkpoint parsing or signature error.
var ErrInvalidCheckpoint = errors.New("invalid checkpoint")

// ParseCheckpointBody parses a checkpoint body (the note text). Extension
// lines are refused: aigw writes none, and an auditor's tools cannot check them.
func ParseCheckpointBody(text []byte) (Checkpoint, error) {
	var c Checkpoint
	s := string(text)
	if !strings.HasSuffix(s, "\n") {
		return c, fmt.Errorf("%w: body does not end in a newline", ErrInvalidCheckpoint)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) != 3 {
		return c, fmt.Errorf("%w: want 3 lines (origin, size, root), got %d", ErrInvalidCheckpoint, len(lines))
	}
	c.Origin = lines[0]
	if c.Origin == "" || strings.ContainsAny(c.Origin, " +\t") {
		return c, fmt.Errorf("%w: bad origin %q", ErrInvalidCheckpoint, c.Origin)
	}
	if lines[1] == "" || len(lines[1]) > 1 && lines[1][0] == '0' || strings.Trim(lines[1], "0123456789") != "" {
		return c, fmt.Errorf("%w: bad tree size %q", ErrInvalidCheckpoint, lines[1])
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return c, fmt.Errorf("%w: bad tree size %q", ErrInvalidCheckpoint, lines[1])
	}
	c.Size = size
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != HashSize {
		return c, fmt.Errorf("%w: bad root hash %q", ErrInvalidCheckpoint, lines[2])
	}
	copy(c.Root[:], root)
	return c, nil
}

// SignCheckpoint returns the signed note of c.
func SignCheckpoint(c Checkpoint, signers ...note.Signer) ([]byte, error) {
	return note.Sign(&note.Note{Text: string(c.Marshal())}, signers...)
}

// OpenCheckpoint verifies a signed checkpoint note with the given verifiers
// and parses it. It fails unless at least one known key signed it and every
// signature by a known key is valid, and unless its origin is origin (when
// origin is not empty). It returns the names of the keys that signed.
func OpenCheckpoint(signed []byte, origin string, verifiers note.Verifiers) (Checkpoint, []string, error) {
	n, err := note.Open(signed, verifiers)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("%w: %w", ErrInvalidCheckpoint, err)
	}
	c, err := ParseCheckpointBody([]byte(n.Text))
	if err != nil {
		return c, nil, err
	}
	if origin != "" && c.Origin != origin {
		return c, nil, fmt.Errorf("%w: origin %q, want %q", ErrInvalidCheckpoint, c.Origin, origin)
	}
	var names []string
	for _, s := range n.Sigs {
		names = append(names, s.Name+"+"+fmt.Sprintf("%08x", s.Hash))
	}
	return c, names, nil
}

// SplitNote returns the text of a signed note without checking any signature,
// for tools that only need the body (never for trust decisions).
func SplitNote(signed []byte) ([]byte, error) {
	i := bytes.LastIndex(signed, []byte("\n\n"))
	if i < 0 {
		return nil, fmt.Errorf("%w: no signature block", ErrInvalidCheckpoint)
	}
	return signed[:i+1], nil
}
