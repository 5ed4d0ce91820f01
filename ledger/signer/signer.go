// Package signer holds checkpoint keys behind the sigstore signer/verifier
// interfaces and adapts them to signed notes (golang.org/x/mod/sumdb/note),
// so that a KMS key can replace the file key without the ledger noticing.
//
// Ed25519 keys produce C2SP signature type 0x01, which stock note verifiers
// (and the public witness network) accept; ECDSA P-256 keys (typical of KMS)
// produce type 0x02, verifiable with transparency-dev/formats/note.
//
// SPEC: https://c2sp.org/signed-note
package signer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	"github.com/sigstore/sigstore/pkg/signature/options"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// C2SP signed-note signature types.
const (
	algEd25519 = 0x01
	algECDSA   = 0x02
)

// DefaultName is the default key name; C2SP recommends the log origin, and
// aigw's origins all start with it.
const DefaultName = "aigw.local/ledger"

// Signer is a checkpoint signer: a note.Signer backed by a sigstore signer.
type Signer struct {
	name string
	hash uint32
	sv   signature.Signer
	vkey string
}

var _ note.Signer = (*Signer)(nil)

func (s *Signer) Name() string    { return s.name }
func (s *Signer) KeyHash() uint32 { return s.hash }

// Sign signs msg (the note text). Ed25519 signs the raw message, as C2SP
// type 0x01 requires; ECDSA signs its SHA-256 digest, returning ASN.1 DER.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	return s.sv.SignMessage(bytes.NewReader(msg), options.WithContext(context.Background()))
}

// VerifierKey returns the note verifier key, name+hash+base64(type‖key), that
// auditors pass to `aigw verify` and standard note tools.
func (s *Signer) VerifierKey() string { return s.vkey }

// Verifier returns a note verifier for the signer's public key.
func (s *Signer) Verifier() note.Verifier {
	v, err := ParseVerifier(s.vkey)
	if err != nil {
		panic("signer: own verifier key does not parse: " + err.Error())
	}
	return v
}

// New adapts a sigstore signer to a note signer named name.
func New(name string, sv signature.Signer) (*Signer, error) {
	if name == "" || strings.ContainsAny(name, "+ \t\n") {
		return nil, fmt.Errorf("key name %q must be non-empty with no '+' or white space", name)
	}
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("public key of signer: %w", err)
	}
	var keyBytes []byte
	var hash uint32
	switch k := pub.(type) {
	case ed25519.PublicKey:
		keyBytes = append([]byte{algEd25519}, k...)
		h := sha256.Sum256(append([]byte(name+"\n"), keyBytes...))
		hash = binary.BigEndian.Uint32(h[:4])
	case *ecdsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return nil, err
		}
		keyBytes = append([]byte{algECDSA}, der...)
		h := sha256.Sum256(der)
		hash = binary.BigEndian.Uint32(h[:4])
	default:
		return nil, fmt.Errorf("unsupported checkpoint key type %T (want Ed25519 or ECDSA)", pub)
	}
	vkey := fmt.Sprintf("%s+%08x+%s", name, hash, base64.StdEncoding.EncodeToString(keyBytes))
	return &Signer{name: name, hash: hash, sv: sv, vkey: vkey}, nil
}

// ParseVerifier parses a note verifier key of type Ed25519 (0x01) or ECDSA (0x02).
func ParseVerifier(vkey string) (note.Verifier, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) == 3 {
		if b, err := base64.StdEncoding.DecodeString(parts[2]); err == nil && len(b) > 0 && b[0] == algECDSA {
			return fnote.NewECDSAVerifier(vkey)
		}
	}
	return note.NewVerifier(vkey)
}

// ParseVerifiers parses several verifier keys into a note.Verifiers list.
func ParseVerifiers(vkeys ...string) (note.Verifiers, error) {
	var vs []note.Verifier
	for _, k := range vkeys {
		v, err := ParseVerifier(strings.TrimSpace(k))
		if err != nil {
			return nil, fmt.Errorf("verifier key %q: %w", k, err)
		}
		vs = append(vs, v)
	}
	return note.VerifierList(vs...), nil
}

// pemType is the PEM block type of a key file; the key name travels in a header.
const pemType = "PRIVATE KEY"

// Generate creates a new Ed25519 key named name.
func Generate(name string) (*Signer, ed25519.PrivateKey, error) {
	sv, priv, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	s, err := New(name, sv)
	return s, priv, err
}

// FromEd25519 wraps an existing Ed25519 private key.
func FromEd25519(name string, priv ed25519.PrivateKey) (*Signer, error) {
	sv, err := signature.LoadED25519SignerVerifier(priv)
	if err != nil {
		return nil, err
	}
	return New(name, sv)
}

// MarshalKeyFile encodes a private key (Ed25519 or ECDSA) and its name as a PEM
// PKCS#8 block with a "Name" header.
func MarshalKeyFile(name string, priv crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Headers: map[string]string{"Name": name}, Bytes: der}), nil
}

// WriteKeyFile writes a new key file with mode 0600, refusing to overwrite one.
func WriteKeyFile(path, name string, priv crypto.PrivateKey) error {
	b, err := MarshalKeyFile(name, priv)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ParseKeyFile decodes a key file written by MarshalKeyFile.
func ParseKeyFile(b []byte) (*Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != pemType {
		return nil, errors.New("key file: no PEM " + pemType + " block")
	}
	name := block.Headers["Name"]
	if name == "" {
		name = DefaultName
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	var sv signature.Signer
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		sv, err = signature.LoadED25519SignerVerifier(k)
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("key file: ECDSA keys must be P-256")
		}
		sv, err = signature.LoadECDSASignerVerifier(k, crypto.SHA256)
	default:
		return nil, fmt.Errorf("key file: unsupported key type %T", priv)
	}
	if err != nil {
		return nil, err
	}
	return New(name, sv)
}

// LoadKeyFile reads a key file.
func LoadKeyFile(path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ParseKeyFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Open returns the signer for a key reference: a KMS URI whose scheme a
// sigstore KMS provider has registered (awskms://, gcpkms://, hashivault://,
// ...; a provider is linked in with a blank import of its package), or
// otherwise the path of a key file.
func Open(ctx context.Context, ref, name string) (*Signer, error) {
	for _, p := range kms.SupportedProviders() {
		if strings.HasPrefix(ref, p) {
			sv, err := kms.Get(ctx, ref, crypto.SHA256)
			if err != nil {
				return nil, fmt.Errorf("kms key %q: %w", ref, err)
			}
			if name == "" {
				name = DefaultName
			}
			return New(name, sv)
		}
	}
	if strings.Contains(ref, "://") {
		return nil, fmt.Errorf("key %q: no KMS provider is registered for its scheme (built-in: file keys; registered: %v)", ref, kms.SupportedProviders())
	}
	return LoadKeyFile(ref)
}
