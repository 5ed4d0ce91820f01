package ledger

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// HashSize is the size of every hash in a log.
const HashSize = sha256.Size

// Hash is a SHA-256 hash.
type Hash [HashSize]byte

func (h Hash) String() string { return base64.StdEncoding.EncodeToString(h[:]) }

// HashFromBytes converts a 32-byte slice to a Hash.
func HashFromBytes(b []byte) (Hash, error) {
	var h Hash
	if len(b) != HashSize {
		return h, fmt.Errorf("hash is %d bytes, want %d", len(b), HashSize)
	}
	copy(h[:], b)
	return h, nil
}

// EmptyRoot is the root of the empty tree, SHA-256 of the empty string (RFC 6962 §2.1).
var EmptyRoot = Hash(sha256.Sum256(nil))

// LeafHash is the RFC 6962 leaf hash of an entry: SHA-256(0x00 ‖ entry).
//
// SPEC: https://www.rfc-editor.org/rfc/rfc6962#section-2.1
func LeafHash(entry []byte) Hash {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(entry)
	var out Hash
	h.Sum(out[:0])
	return out
}

// NodeHash is the RFC 6962 interior node hash: SHA-256(0x01 ‖ left ‖ right).
func NodeHash(left, right Hash) Hash {
	var buf [1 + 2*HashSize]byte
	buf[0] = 1
	copy(buf[1:], left[:])
	copy(buf[1+HashSize:], right[:])
	return sha256.Sum256(buf[:])
}

// HashChildren is [NodeHash] on slices, the shape transparency-dev/merkle's
// compact ranges and proofs take. It allocates once, against three times for
// rfc6962.DefaultHasher.HashChildren.
func HashChildren(left, right []byte) []byte {
	var buf [1 + 2*HashSize]byte
	buf[0] = 1
	copy(buf[1:], left)
	copy(buf[1+HashSize:], right)
	h := sha256.Sum256(buf[:])
	return h[:]
}

// ChainHash is the hash-chain link of an entry: SHA-256(prev ‖ leaf), where
// prev is the chain hash of the previous entry and, for index 0, 32 zero bytes.
// The chain and the tree commit to the same leaf hash.
func ChainHash(prev, leaf Hash) Hash {
	var buf [2 * HashSize]byte
	copy(buf[:], prev[:])
	copy(buf[HashSize:], leaf[:])
	return sha256.Sum256(buf[:])
}
