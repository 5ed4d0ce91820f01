package verify_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"aigw/ledger"
	"aigw/verify"
)

func opts(k key) verify.Options { return verify.Options{Verifiers: k.verifiers()} }

func TestLogVerifiesCleanLogs(t *testing.T) {
	t.Parallel()
	k := newKey(t, "test.aigw/verify")
	for _, size := range []int{0, 1, 2, 255, 256, 257, 1000, 65536 + 300} {
		t.Run("size="+strconv.Itoa(size), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, "acme", k)
			if size == 0 {
				f.sign()
			}
			f.addN(size, 97)
			dir := f.write(t.TempDir())
			res, err := verify.Log(t.Context(), verify.DirSource(dir), "acme", opts(k))
			if err != nil {
				t.Fatalf("Log() = %v", err)
			}
			if res.Size != uint64(size) || res.Root != f.tb.Root() || !res.ChainChecked {
				t.Errorf("Log() = size %d root %v chain %v; want %d %v true", res.Size, res.Root, res.ChainChecked, size, f.tb.Root())
			}
			if size == 0 && res.Root != ledger.EmptyRoot {
				t.Errorf("empty log root = %v; want %v", res.Root, ledger.EmptyRoot)
			}
			if res.CheckpointsChecked != len(f.sizes) {
				t.Errorf("CheckpointsChecked = %d; want %d", res.CheckpointsChecked, len(f.sizes))
			}
			if want := len(ledger.TilesFor(0, uint64(size))); res.TilesChecked != want {
				t.Errorf("TilesChecked = %d; want %d", res.TilesChecked, want)
			}
			if len(res.Signers) != 1 || !strings.HasPrefix(res.Signers[0], "test.aigw/verify+") {
				t.Errorf("Signers = %q", res.Signers)
			}

			// The same log from a store and from a static HTTP server.
			if _, err := verify.Log(t.Context(), verify.StoreSource(newMemStore(f)), "acme", opts(k)); err != nil {
				t.Errorf("Log(StoreSource) = %v", err)
			}
			srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
			defer srv.Close()
			if _, err := verify.Log(t.Context(), verify.HTTPSource(srv.URL, srv.Client()), "acme", opts(k)); err != nil {
				t.Errorf("Log(HTTPSource) = %v", err)
			}
		})
	}
}

// tamperCase is one change to an exported log and the mismatch it must cause.
type tamperCase struct {
	name   string
	tamper func(t *testing.T, dir string)
	opts   func(o *verify.Options)
	kind   string
	index  uint64
	level  int
}

func TestLogDetectsTampering(t *testing.T) {
	t.Parallel()
	k := newKey(t, "test.aigw/verify")
	other := newKey(t, "test.aigw/other")

	// The honest log: 1000 entries in batches of 100, so checkpoints at 100, 200, …, 1000.
	honest := newFixture(t, "acme", k)
	honest.addN(1000, 100)

	// The same log where an insider rewrote entry 650 and recomputed every
	// hash, tile and chain hash, but could not sign: old checkpoints stay.
	rewritten := newFixture(t, "acme", k)
	for lo := 0; lo < 1000; lo += 100 {
		es := slices.Clone(honest.entries[lo : lo+100])
		if lo == 600 {
			es[50] = genEntry("acme", 1_000_650)
		}
		rewritten.add(es...)
	}

	// A fork: another history of the log, signed with the same key.
	fork := newFixture(t, "acme", k)
	fork.addN(400, 100)
	fork.add(genEntry("acme", 9_999_999))
	fork.addN(99, 100)

	// Another log, signed with the same key.
	beta := newFixture(t, "beta", k)
	beta.addN(1000, 100)

	// An entry of tenant beta, validly hashed, chained and signed into acme.
	foreign := newFixture(t, "acme", k)
	foreign.addN(5, 5)
	foreign.add(genEntry("beta", 5))
	foreign.addN(10, 10)

	// A non-canonical entry (a space) validly hashed and signed.
	noncanon := newFixture(t, "acme", k)
	noncanon.addN(3, 3)
	noncanon.add(append([]byte(`{ `), genEntry("acme", 3)[1:]...))

	smaller := newFixture(t, "acme", k)
	smaller.addN(900, 100)

	for _, c := range []struct {
		tamperCase
		f *fixture // the log written before tamper (honest if nil)
	}{
		{tamperCase: tamperCase{name: "FlipByteOfEntry7", kind: verify.KindEntry, index: 7, level: -1, tamper: func(t *testing.T, dir string) {
			editBundle(t, dir, "acme", "tile/entries/000", func(es [][]byte) [][]byte { es[7][100] ^= 0x01; return es })
		}}},
		{tamperCase: tamperCase{name: "ChangeChainHash", kind: verify.KindChain, index: 300, level: -1, tamper: func(t *testing.T, dir string) {
			p := logPath(dir, "acme", "chain/001")
			b := readFile(t, p)
			b[(300-256)*32+5] ^= 0x80
			writeFile(t, p, b)
		}}},
		{tamperCase: tamperCase{name: "DeleteEntryFromBundle", kind: verify.KindMissing, index: 10, level: -1, tamper: func(t *testing.T, dir string) {
			editBundle(t, dir, "acme", "tile/entries/000", func(es [][]byte) [][]byte { return slices.Delete(es, 10, 11) })
		}}},
		{tamperCase: tamperCase{name: "DeleteLastEntryOfBundle", kind: verify.KindMissing, index: 255, level: -1, tamper: func(t *testing.T, dir string) {
			editBundle(t, dir, "acme", "tile/entries/000", func(es [][]byte) [][]byte { return es[:255] })
		}}},
		{tamperCase: tamperCase{name: "SwapTwoEntries", kind: verify.KindEntry, index: 20, level: -1, tamper: func(t *testing.T, dir string) {
			editBundle(t, dir, "acme", "tile/entries/000", func(es [][]byte) [][]byte { es[20], es[21] = es[21], es[20]; return es })
		}}},
		{tamperCase: tamperCase{name: "TruncatedBundle", kind: verify.KindParse, index: 512 + 99, level: -1, tamper: func(t *testing.T, dir string) {
			p := logPath(dir, "acme", "tile/entries/002")
			b := readFile(t, p)
			n := 0
			for i := 0; i < 99; i++ { // keep 99 entries and half of the next
				n += 2 + (int(b[n])<<8 | int(b[n+1]))
			}
			writeFile(t, p, b[:n+10])
		}}},
		{tamperCase: tamperCase{name: "TrailingBytesInFullBundle", kind: verify.KindParse, index: 255, level: -1, tamper: func(t *testing.T, dir string) {
			p := logPath(dir, "acme", "tile/entries/000")
			writeFile(t, p, append(readFile(t, p), 0, 1, 'x'))
		}}},
		{tamperCase: tamperCase{name: "MissingBundle", kind: verify.KindMissing, index: 512, level: -1, tamper: func(t *testing.T, dir string) {
			os.Remove(logPath(dir, "acme", "tile/entries/002"))
		}}},
		{tamperCase: tamperCase{name: "MissingChainFile", kind: verify.KindMissing, index: 256, level: -1, tamper: func(t *testing.T, dir string) {
			os.Remove(logPath(dir, "acme", "chain/001"))
		}}},
		{tamperCase: tamperCase{name: "MissingLevel0Tile", kind: verify.KindMissing, index: 1, level: 0, tamper: func(t *testing.T, dir string) {
			os.Remove(logPath(dir, "acme", "tile/0/001"))
		}}},
		{tamperCase: tamperCase{name: "MissingLevel1Tile", kind: verify.KindMissing, index: 0, level: 1, tamper: func(t *testing.T, dir string) {
			os.Remove(logPath(dir, "acme", "tile/1/000.p/3"))
		}}},
		{tamperCase: tamperCase{name: "ChangedLevel0TileHash", kind: verify.KindTile, index: 1, level: 0, tamper: func(t *testing.T, dir string) {
			p := logPath(dir, "acme", "tile/0/001")
			b := readFile(t, p)
			b[40*32] ^= 1
			writeFile(t, p, b)
		}}},
		{tamperCase: tamperCase{name: "ReplacedLevel1Tile", kind: verify.KindTile, index: 0, level: 1, tamper: func(t *testing.T, dir string) {
			// A valid-looking tile: beta's level-1 tile at the same width.
			writeFile(t, logPath(dir, "acme", "tile/1/000.p/3"), beta.tile(1, 0, 3))
		}}},
		{tamperCase: tamperCase{name: "ReplacedLevel0Tile", kind: verify.KindTile, index: 2, level: 0, tamper: func(t *testing.T, dir string) {
			writeFile(t, logPath(dir, "acme", "tile/0/002"), beta.tile(0, 2, 256))
		}}},
		{tamperCase: tamperCase{name: "OversizedTile", kind: verify.KindTile, index: 0, level: 0, tamper: func(t *testing.T, dir string) {
			p := logPath(dir, "acme", "tile/0/000")
			writeFile(t, p, append(readFile(t, p), make([]byte, 32)...))
		}}},
		{tamperCase: tamperCase{name: "DropTail", kind: verify.KindMissing, index: 768, level: -1, tamper: func(t *testing.T, dir string) {
			// The tiles and bundles of a 900-entry tree, the checkpoint of 1000.
			os.RemoveAll(filepath.Join(dir, "acme"))
			smaller.write(dir)
			writeFile(t, logPath(dir, "acme", "checkpoint"), honest.checkpoint())
		}}},
		{tamperCase: tamperCase{name: "CheckpointSignedByOtherKey", kind: verify.KindSignature, index: 1000, level: -1, tamper: func(t *testing.T, dir string) {
			cp, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: honest.origin, Size: 1000, Root: honest.root(1000)}, other.signer)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, logPath(dir, "acme", "checkpoint"), cp)
		}}},
		{tamperCase: tamperCase{name: "CheckpointWithBadSignature", kind: verify.KindSignature, index: 1000, level: -1, tamper: func(t *testing.T, dir string) {
			p := logPath(dir, "acme", "checkpoint")
			b := readFile(t, p)
			i := bytes.LastIndexByte(b, ' ') + 1
			sig, err := base64.StdEncoding.DecodeString(string(b[i : len(b)-1]))
			if err != nil {
				t.Fatal(err)
			}
			sig[10] ^= 1 // a byte of the Ed25519 signature, after the 4-byte key hash
			writeFile(t, p, append(b[:i:i], base64.StdEncoding.EncodeToString(sig)+"\n"...))
		}}},
		{tamperCase: tamperCase{name: "CheckpointOfAnotherLog", kind: verify.KindOrigin, index: 1000, level: -1, tamper: func(t *testing.T, dir string) {
			writeFile(t, logPath(dir, "acme", "checkpoint"), beta.checkpoint())
		}}},
		{tamperCase: tamperCase{name: "WrongExpectedOrigin", kind: verify.KindOrigin, index: 1000, level: -1,
			opts: func(o *verify.Options) { o.Origin = "elsewhere.example/ledger/acme" }}},
		{tamperCase: tamperCase{name: "RewrittenEntryLocatedBetweenCheckpoints", kind: verify.KindCheckpoint, index: 700, level: -1, tamper: func(t *testing.T, dir string) {
			for _, s := range honest.sizes {
				writeFile(t, logPath(dir, "acme", "checkpoints/"+strconv.FormatUint(s, 10)), honest.checkpoints[s])
			}
			writeFile(t, logPath(dir, "acme", "checkpoint"), honest.checkpoint())
		}}, f: rewritten},
		{tamperCase: tamperCase{name: "RewrittenEntryWithoutHistory", kind: verify.KindRoot, index: 1000, level: -1, tamper: func(t *testing.T, dir string) {
			os.RemoveAll(logPath(dir, "acme", "checkpoints"))
			writeFile(t, logPath(dir, "acme", "checkpoint"), honest.checkpoint())
		}}, f: rewritten},
		{tamperCase: tamperCase{name: "HistoricalCheckpointOfAnotherKey", kind: verify.KindSignature, index: 300, level: -1, tamper: func(t *testing.T, dir string) {
			cp, _ := ledger.SignCheckpoint(ledger.Checkpoint{Origin: honest.origin, Size: 300, Root: honest.root(300)}, other.signer)
			writeFile(t, logPath(dir, "acme", "checkpoints/300"), cp)
		}}},
		{tamperCase: tamperCase{name: "RolledBackCheckpoint", kind: verify.KindSize, index: 1000, level: -1, tamper: func(t *testing.T, dir string) {
			// The latest checkpoint replaced by an older one, the newer kept in the history.
			writeFile(t, logPath(dir, "acme", "checkpoint"), honest.checkpoints[900])
			writeFile(t, logPath(dir, "acme", "checkpoints/900"), honest.checkpoints[1000])
		}}},
		{tamperCase: tamperCase{name: "ForeignTenantEntry", kind: verify.KindParse, index: 5, level: -1}, f: foreign},
		{tamperCase: tamperCase{name: "NonCanonicalEntry", kind: verify.KindParse, index: 3, level: -1}, f: noncanon},
		{tamperCase: tamperCase{name: "OldIsNotAPrefix", kind: verify.KindFork, index: 500, level: -1,
			opts: func(o *verify.Options) { o.Old = fork.checkpoints[500] }}},
		{tamperCase: tamperCase{name: "OldSameSizeOtherRoot", kind: verify.KindFork, index: 1000, level: -1, tamper: func(t *testing.T, dir string) {},
			opts: func(o *verify.Options) {
				cp, _ := ledger.SignCheckpoint(ledger.Checkpoint{Origin: honest.origin, Size: 1000, Root: beta.root(1000)}, k.signer)
				o.Old = cp
			}}},
		{tamperCase: tamperCase{name: "OldLargerThanToday", kind: verify.KindSize, index: 1000, level: -1, tamper: func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, "acme"))
			smaller.write(dir)
		}, opts: func(o *verify.Options) { o.Old = honest.checkpoint() }}},
		{tamperCase: tamperCase{name: "OldOfAnotherLog", kind: verify.KindOrigin, index: 500, level: -1,
			opts: func(o *verify.Options) { o.Old = beta.checkpoints[500] }}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := c.f
			if f == nil {
				f = honest
			}
			dir := f.write(t.TempDir())
			if c.tamper != nil {
				c.tamper(t, dir)
			}
			o := opts(k)
			if c.opts != nil {
				c.opts(&o)
			}
			res, err := verify.Log(t.Context(), verify.DirSource(dir), "acme", o)
			var mis *verify.MismatchError
			if !errors.As(err, &mis) {
				t.Fatalf("Log() = %+v, %v; want a %s mismatch", res, err, c.kind)
			}
			if mis.Kind != c.kind || mis.Index != c.index || mis.Level != c.level || mis.Log != "acme" {
				t.Fatalf("Log() = %v (kind %s index %d level %d); want kind %s index %d level %d", mis, mis.Kind, mis.Index, mis.Level, c.kind, c.index, c.level)
			}
			t.Logf("%v", mis)
		})
	}
}

func TestLogWithOldCheckpoint(t *testing.T) {
	t.Parallel()
	k := newKey(t, "test.aigw/verify")
	f := newFixture(t, "acme", k)
	f.addN(70000, 5000)
	dir := f.write(t.TempDir())
	for _, old := range []uint64{5000, 65000, 70000} {
		o := opts(k)
		o.Old = f.checkpoints[old]
		res, err := verify.Log(t.Context(), verify.DirSource(dir), "acme", o)
		if err != nil {
			t.Fatalf("Log(Old=%d) = %v", old, err)
		}
		if res.OldSize != old {
			t.Errorf("OldSize = %d; want %d", res.OldSize, old)
		}
		if old < 70000 {
			if err := ledger.VerifyConsistency(old, 70000, res.Consistency, f.root(old), f.root(70000)); err != nil {
				t.Errorf("Result.Consistency from %d does not verify: %v", old, err)
			}
		}
	}
}

func TestLogFromStoreDetectsTampering(t *testing.T) {
	t.Parallel()
	k := newKey(t, "test.aigw/verify")
	f := newFixture(t, "acme", k)
	f.addN(3, 3)
	f.addWithPayload([]byte("the prompt"))
	f.addWithPayload([]byte("another prompt"))
	f.addN(5000, 250)
	f.addWithPayload([]byte("late prompt"))
	f.erased[4] = true

	t.Run("OK", func(t *testing.T) {
		o := opts(k)
		o.Payloads = true
		res, err := verify.Log(t.Context(), verify.StoreSource(newMemStore(f)), "acme", o)
		if err != nil {
			t.Fatal(err)
		}
		if res.PayloadsChecked != 2 || !slices.Equal(res.ErasedPayloads, []uint64{4}) || !res.ChainChecked {
			t.Errorf("PayloadsChecked %d, ErasedPayloads %v, ChainChecked %v; want 2, [4], true", res.PayloadsChecked, res.ErasedPayloads, res.ChainChecked)
		}
	})
	for _, c := range []struct {
		name   string
		tamper func(s *memStore)
		kind   string
		index  uint64
	}{
		{"DeletedRow", func(s *memStore) { s.missing[4100] = true }, verify.KindMissing, 4100},
		{"DeletedLastRow", func(s *memStore) { s.missing[5005] = true }, verify.KindMissing, 5005},
		{"ChangedChain", func(s *memStore) { s.entries[4097].Chain[0] ^= 1 }, verify.KindChain, 4097},
		{"ChangedData", func(s *memStore) {
			s.entries[2].Data = slices.Clone(s.entries[2].Data)
			s.entries[2].Data[30] ^= 1
		}, verify.KindEntry, 2},
		{"ChangedPayload", func(s *memStore) {
			p := s.f.payloads[3]
			p.Data = []byte("THE prompt")
			s.f.payloads[3] = p
		}, verify.KindPayload, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := *f // a shallow copy with its own payload map
			g.payloads = map[uint64]ledger.Payload{}
			for i, p := range f.payloads {
				g.payloads[i] = p
			}
			s := newMemStore(&g)
			c.tamper(s)
			o := opts(k)
			o.Payloads = true
			_, err := verify.Log(t.Context(), verify.StoreSource(s), "acme", o)
			var mis *verify.MismatchError
			if !errors.As(err, &mis) || mis.Kind != c.kind || mis.Index != c.index {
				t.Fatalf("Log() = %v; want a %s mismatch at %d", err, c.kind, c.index)
			}
		})
	}
}

func TestLogErrors(t *testing.T) {
	t.Parallel()
	k := newKey(t, "test.aigw/verify")
	f := newFixture(t, "acme", k)
	f.addN(10, 10)
	dir := f.write(t.TempDir())
	ctx := t.Context()
	if _, err := verify.Log(ctx, verify.DirSource(dir), "acme", verify.Options{}); err == nil {
		t.Error("Log() without verifiers succeeded")
	}
	if _, err := verify.Log(ctx, verify.DirSource(dir), "nobody", opts(k)); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Log(unknown log) = %v; want ErrNotFound", err)
	}
	if _, err := verify.Log(ctx, verify.DirSource(dir), "../acme", opts(k)); err == nil {
		t.Error("Log(../acme) succeeded")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := verify.Log(cancelled, verify.DirSource(dir), "acme", opts(k)); !errors.Is(err, context.Canceled) {
		t.Errorf("Log(cancelled) = %v; want context.Canceled", err)
	}
	o := opts(k)
	o.Payloads = true
	if _, err := verify.Log(ctx, verify.DirSource(dir), "acme", o); err == nil {
		t.Error("Log(Payloads) on a source without payloads succeeded")
	}
	logs, err := verify.DirSource(dir).Logs(ctx)
	if err != nil || !slices.Equal(logs, []string{"acme"}) {
		t.Errorf("Dir.Logs() = %v, %v", logs, err)
	}
}
