package signer

import (
	"context"
	"crypto"
	"path/filepath"
	"strings"
	"testing"

	"aigw/ledger"

	"github.com/sigstore/sigstore/pkg/signature/kms/fake"
	fmtlog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

func TestEd25519CheckpointVerifiesWithStockNote(t *testing.T) {
	s, _, err := Generate("aigw.test/ledger")
	if err != nil {
		t.Fatal(err)
	}
	cp := ledger.Checkpoint{Origin: "aigw.test/ledger/acme", Size: 3, Root: ledger.LeafHash([]byte("x"))}
	signed, err := ledger.SignCheckpoint(cp, s)
	if err != nil {
		t.Fatal(err)
	}
	// Stock x/mod verifier, from the printed verifier key only.
	v, err := note.NewVerifier(s.VerifierKey())
	if err != nil {
		t.Fatalf("note.NewVerifier(%q): %v", s.VerifierKey(), err)
	}
	if _, err := note.Open(signed, note.VerifierList(v)); err != nil {
		t.Fatalf("note.Open: %v", err)
	}
	// transparency-dev/formats checkpoint parser, with origin binding.
	got, _, _, err := fmtlog.ParseCheckpoint(signed, cp.Origin, v)
	if err != nil {
		t.Fatalf("formats ParseCheckpoint: %v", err)
	}
	if got.Size != 3 || string(got.Hash) != string(cp.Root[:]) {
		t.Errorf("parsed %+v", got)
	}
	if _, _, _, err := fmtlog.ParseCheckpoint(signed, "aigw.test/ledger/other", v); err == nil {
		t.Error("checkpoint of acme accepted under another origin")
	}
	c2, names, err := ledger.OpenCheckpoint(signed, cp.Origin, note.VerifierList(v))
	if err != nil || c2 != cp || len(names) != 1 {
		t.Errorf("OpenCheckpoint = %+v, %v, %v", c2, names, err)
	}
}

func TestKeyFileRoundTrip(t *testing.T) {
	s, priv, err := Generate("aigw.test/ledger")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys", "checkpoint.key")
	if err := WriteKeyFile(path, s.Name(), priv); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(path, s.Name(), priv); err == nil {
		t.Error("WriteKeyFile overwrote an existing key")
	}
	s2, err := Open(context.Background(), path, "")
	if err != nil {
		t.Fatal(err)
	}
	if s2.VerifierKey() != s.VerifierKey() {
		t.Errorf("reloaded vkey %q, want %q", s2.VerifierKey(), s.VerifierKey())
	}
}

func TestOtherKeyRejected(t *testing.T) {
	a, _, _ := Generate("aigw.test/ledger")
	b, _, _ := Generate("aigw.test/ledger") // same name, another key
	signed, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: "aigw.test/ledger/x", Size: 0, Root: ledger.EmptyRoot}, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ledger.OpenCheckpoint(signed, "", note.VerifierList(a.Verifier())); err == nil {
		t.Error("checkpoint signed by another key with the same name verified")
	}
}

func TestKMSSignerECDSA(t *testing.T) {
	// sigstore's fake KMS registers fakekms:// and returns an ECDSA P-256 key:
	// the path a real KMS key (awskms://, gcpkms://, ...) takes.
	ctx := context.Background()
	s, err := Open(ctx, "fakekms://checkpoint", "aigw.test/ledger")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.VerifierKey(), "+") {
		t.Fatalf("vkey %q", s.VerifierKey())
	}
	signed, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: "aigw.test/ledger/acme", Size: 1, Root: ledger.LeafHash(nil)}, s)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := ParseVerifiers(s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ledger.OpenCheckpoint(signed, "aigw.test/ledger/acme", vs); err != nil {
		t.Fatalf("ECDSA checkpoint: %v", err)
	}
	_ = fake.KmsCtxKey{}
	_ = crypto.SHA256
}

func TestBadNames(t *testing.T) {
	for _, name := range []string{"", "a+b", "a b"} {
		if _, _, err := Generate(name); err == nil {
			t.Errorf("Generate(%q) accepted", name)
		}
	}
}

func BenchmarkSignCheckpoint(b *testing.B) {
	s, _, _ := Generate("aigw.test/ledger")
	cp := ledger.Checkpoint{Origin: "aigw.test/ledger/acme", Size: 123456, Root: ledger.EmptyRoot}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ledger.SignCheckpoint(cp, s); err != nil {
			b.Fatal(err)
		}
	}
}
