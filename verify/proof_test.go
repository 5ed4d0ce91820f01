package verify_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"aigw/ledger"
	"aigw/verify"
)

// inclusionJSON builds the inclusion proof of index in the tree of size,
// as the read API serves it.
func inclusionJSON(t testing.TB, f *fixture, index, size uint64, withEntry bool) *ledger.InclusionProofJSON {
	t.Helper()
	hashes, err := ledger.InclusionProof(t.Context(), f, f.log, index, size)
	if err != nil {
		t.Fatal(err)
	}
	p := &ledger.InclusionProofJSON{Log: f.log, Index: index, TreeSize: size, LeafHash: ledger.LeafHash(f.entries[index]).String(),
		Hashes: ledger.EncodeHashes(hashes), Checkpoint: string(f.checkpoints[size])}
	if withEntry {
		p.Entry = base64.StdEncoding.EncodeToString(f.entries[index])
	}
	return p
}

func consistencyJSON(t testing.TB, f *fixture, size1, size2 uint64) *ledger.ConsistencyProofJSON {
	t.Helper()
	hashes, err := ledger.ConsistencyProof(t.Context(), f, f.log, size1, size2)
	if err != nil {
		t.Fatal(err)
	}
	return &ledger.ConsistencyProofJSON{Log: f.log, Size1: size1, Size2: size2, Hashes: ledger.EncodeHashes(hashes), Checkpoint: string(f.checkpoints[size2])}
}

func marshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// proofFixture is a log with checkpoints at every size below 20 and at 300, 1000 and 70000.
func proofFixture(t testing.TB, k key) *fixture {
	f := newFixture(t, "acme", k)
	f.sign()
	f.addN(20, 1)
	f.addN(280, 280)
	f.addN(700, 700)
	f.addN(69000, 69000)
	return f
}

func TestProofInclusion(t *testing.T) {
	t.Parallel()
	k := newKey(t, "test.aigw/verify")
	f := proofFixture(t, k)
	o := opts(k)
	for _, c := range []struct{ index, size uint64 }{{0, 1}, {0, 2}, {1, 2}, {7, 13}, {12, 13}, {0, 300}, {299, 300}, {256, 1000}, {999, 1000}, {65535, 70000}, {65536, 70000}, {69999, 70000}} {
		t.Run(fmt.Sprintf("%d_in_%d", c.index, c.size), func(t *testing.T) {
			p := inclusionJSON(t, f, c.index, c.size, true)
			res, err := verify.Proof(t.Context(), marshal(t, p), o)
			if err != nil {
				t.Fatalf("Proof() = %v", err)
			}
			if res.Index != c.index || res.Size != c.size || res.LeafHash != ledger.LeafHash(f.entries[c.index]) || res.Entry == nil || res.Entry.Tenant != "acme" {
				t.Errorf("Proof() = %+v", res)
			}
		})
	}
}

func TestProofRejectsCorruptInclusion(t *testing.T) {
	t.Parallel()
	k := newKey(t, "test.aigw/verify")
	other := newKey(t, "test.aigw/other")
	f := proofFixture(t, k)
	beta := newFixture(t, "beta", k)
	beta.addN(1000, 1000)
	const index, size = 300, 1000
	flip := func(s string) string {
		b, _ := base64.StdEncoding.DecodeString(s)
		b[7] ^= 0x10
		return base64.StdEncoding.EncodeToString(b)
	}
	for _, c := range []struct {
		name   string
		edit   func(p *ledger.InclusionProofJSON)
		kind   string
		noFile bool
	}{
		{name: "IndexPlusOne", edit: func(p *ledger.InclusionProofJSON) { p.Index++ }, kind: verify.KindProof},
		{name: "IndexMinusOne", edit: func(p *ledger.InclusionProofJSON) { p.Index-- }, kind: verify.KindProof},
		{name: "IndexBeyondSize", edit: func(p *ledger.InclusionProofJSON) { p.Index = size }, kind: verify.KindProof},
		{name: "WrongTreeSize", edit: func(p *ledger.InclusionProofJSON) { p.TreeSize = 999 }, kind: verify.KindSize},
		{name: "WrongSizeAndCheckpoint", edit: func(p *ledger.InclusionProofJSON) {
			p.TreeSize = 300
			p.Checkpoint = string(f.checkpoints[300])
		}, kind: verify.KindProof},
		{name: "Truncated", edit: func(p *ledger.InclusionProofJSON) { p.Hashes = p.Hashes[:len(p.Hashes)-1] }, kind: verify.KindProof},
		{name: "Extended", edit: func(p *ledger.InclusionProofJSON) { p.Hashes = append(p.Hashes, p.Hashes[0]) }, kind: verify.KindProof},
		{name: "FlippedHash", edit: func(p *ledger.InclusionProofJSON) { p.Hashes[3] = flip(p.Hashes[3]) }, kind: verify.KindProof},
		{name: "Empty", edit: func(p *ledger.InclusionProofJSON) { p.Hashes = nil }, kind: verify.KindProof},
		{name: "OtherLeaf", edit: func(p *ledger.InclusionProofJSON) {
			p.LeafHash = ledger.LeafHash(f.entries[index+1]).String()
			p.Entry = ""
		}, kind: verify.KindProof},
		{name: "EntryNotTheLeaf", edit: func(p *ledger.InclusionProofJSON) {
			p.Entry = base64.StdEncoding.EncodeToString(f.entries[index+1])
		}, kind: verify.KindEntry},
		{name: "ShortLeafHash", edit: func(p *ledger.InclusionProofJSON) { p.LeafHash = p.LeafHash[:20] }, kind: verify.KindParse},
		{name: "BadHashBase64", edit: func(p *ledger.InclusionProofJSON) { p.Hashes[0] = "!!" }, kind: verify.KindParse},
		{name: "NoCheckpoint", edit: func(p *ledger.InclusionProofJSON) { p.Checkpoint = "" }, kind: verify.KindSignature},
		{name: "CheckpointByUnknownKey", edit: func(p *ledger.InclusionProofJSON) {
			cp, _ := ledger.SignCheckpoint(ledger.Checkpoint{Origin: f.origin, Size: size, Root: f.root(size)}, other.signer)
			p.Checkpoint = string(cp)
		}, kind: verify.KindSignature},
		{name: "OtherLogsProof", edit: func(p *ledger.InclusionProofJSON) {
			*p = *inclusionJSON(t, beta, index, size, false)
			p.Log = "acme"
		}, kind: verify.KindOrigin},
		{name: "BadLogName", edit: func(p *ledger.InclusionProofJSON) { p.Log = "../x" }, kind: verify.KindParse},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := inclusionJSON(t, f, index, size, true)
			c.edit(p)
			_, err := verify.Proof(t.Context(), marshal(t, p), opts(k))
			var mis *verify.MismatchError
			if !errors.As(err, &mis) || mis.Kind != c.kind {
				t.Fatalf("Proof() = %v; want a %s mismatch", err, c.kind)
			}
		})
	}
	for _, bad := range []string{``, `{}`, `[]`, `null`, `{"leaf_hash":1}`, `{"leaf_hash":"","extra":1}`, `{"size2":"x"}`} {
		if _, err := verify.Proof(t.Context(), []byte(bad), opts(k)); err == nil {
			t.Errorf("Proof(%q) succeeded", bad)
		}
	}
}

func TestProofConsistency(t *testing.T) {
	t.Parallel()
	k := newKey(t, "test.aigw/verify")
	f := proofFixture(t, k)
	for _, c := range []struct{ size1, size2 uint64 }{{0, 0}, {0, 1}, {0, 1000}, {1, 1}, {1, 2}, {3, 7}, {4, 8}, {7, 300}, {300, 1000}, {1000, 70000}, {70000, 70000}} {
		t.Run(fmt.Sprintf("%d_to_%d", c.size1, c.size2), func(t *testing.T) {
			o := opts(k)
			if c.size1 > 0 {
				o.Old = f.checkpoints[c.size1]
			}
			res, err := verify.Proof(t.Context(), marshal(t, consistencyJSON(t, f, c.size1, c.size2)), o)
			if err != nil {
				t.Fatalf("Proof() = %v", err)
			}
			if res.OldSize != c.size1 || res.Size != c.size2 || res.Root != f.root(c.size2) {
				t.Errorf("Proof() = %+v", res)
			}
		})
	}
}

func TestProofRejectsCorruptConsistency(t *testing.T) {
	t.Parallel()
	k := newKey(t, "test.aigw/verify")
	f := proofFixture(t, k)
	fork := newFixture(t, "acme", k)
	fork.addN(299, 299)
	fork.add(genEntry("acme", 12345678))
	const size1, size2 = 300, 1000
	flip := func(s string) string {
		b, _ := base64.StdEncoding.DecodeString(s)
		b[0] ^= 1
		return base64.StdEncoding.EncodeToString(b)
	}
	for _, c := range []struct {
		name string
		edit func(p *ledger.ConsistencyProofJSON, o *[]byte)
		kind string
	}{
		{"Truncated", func(p *ledger.ConsistencyProofJSON, o *[]byte) { p.Hashes = p.Hashes[1:] }, verify.KindProof},
		{"Extended", func(p *ledger.ConsistencyProofJSON, o *[]byte) { p.Hashes = append(p.Hashes, p.Hashes[0]) }, verify.KindProof},
		{"FlippedHash", func(p *ledger.ConsistencyProofJSON, o *[]byte) { p.Hashes[1] = flip(p.Hashes[1]) }, verify.KindProof},
		{"Empty", func(p *ledger.ConsistencyProofJSON, o *[]byte) { p.Hashes = nil }, verify.KindProof},
		{"Size1Mismatch", func(p *ledger.ConsistencyProofJSON, o *[]byte) { p.Size1 = 301 }, verify.KindSize},
		{"Size2Mismatch", func(p *ledger.ConsistencyProofJSON, o *[]byte) { p.Size2 = 999 }, verify.KindSize},
		{"OldLargerThanNew", func(p *ledger.ConsistencyProofJSON, o *[]byte) { *o = f.checkpoints[70000] }, verify.KindSize},
		{"ForkedOld", func(p *ledger.ConsistencyProofJSON, o *[]byte) { *o = fork.checkpoints[300] }, verify.KindProof},
		{"OtherOldSize", func(p *ledger.ConsistencyProofJSON, o *[]byte) { *o = f.checkpoints[7] }, verify.KindProof},
		{"NoCheckpoint", func(p *ledger.ConsistencyProofJSON, o *[]byte) { p.Checkpoint = "" }, verify.KindSignature},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := consistencyJSON(t, f, size1, size2)
			old := f.checkpoints[size1]
			c.edit(p, &old)
			o := opts(k)
			o.Old = old
			_, err := verify.Proof(t.Context(), marshal(t, p), o)
			var mis *verify.MismatchError
			if !errors.As(err, &mis) || mis.Kind != c.kind {
				t.Fatalf("Proof() = %v; want a %s mismatch", err, c.kind)
			}
		})
	}
	t.Run("NeedsOld", func(t *testing.T) {
		if _, err := verify.Proof(t.Context(), marshal(t, consistencyJSON(t, f, size1, size2)), opts(k)); err == nil {
			t.Error("Proof() without Options.Old succeeded")
		}
	})
	t.Run("ConsistencySameSizeFork", func(t *testing.T) {
		_, err := verify.Consistency("acme", fork.checkpoints[300], f.checkpoints[300], nil, opts(k))
		var mis *verify.MismatchError
		if !errors.As(err, &mis) || mis.Kind != verify.KindFork {
			t.Fatalf("Consistency() = %v; want a fork", err)
		}
	})
}

// FuzzProof checks that Proof never panics and never accepts a proof of a
// leaf that is not in the log: every checkpoint the fuzzer can present was
// signed by the test key over the real tree.
func FuzzProof(f *testing.F) {
	k := newKey(f, "test.aigw/verify")
	fx := proofFixture(f, k)
	for _, c := range [][2]uint64{{0, 1}, {5, 13}, {299, 300}, {700, 1000}} {
		f.Add(marshal(f, inclusionJSON(f, fx, c[0], c[1], c[0]%2 == 0)))
		f.Add(marshal(f, consistencyJSON(f, fx, c[0], c[1])))
	}
	f.Add([]byte(`{"log":"acme","index":0,"tree_size":0,"leaf_hash":"","hashes":[]}`))
	o := opts(k)
	o.Old = fx.checkpoints[300]
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := verify.Proof(t.Context(), b, o)
		if err != nil {
			return
		}
		if res.Root != fx.root(res.Size) {
			t.Fatalf("accepted a proof against root %v at size %d; the log's is %v", res.Root, res.Size, fx.root(res.Size))
		}
		ip, _, _ := ledger.ParseProof(b)
		if ip != nil && res.LeafHash != ledger.LeafHash(fx.entries[res.Index]) {
			t.Fatalf("accepted an inclusion proof of leaf %v at %d; the log has %v", res.LeafHash, res.Index, ledger.LeafHash(fx.entries[res.Index]))
		}
	})
}
