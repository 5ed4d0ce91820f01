package readapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"aigw/ledger"
	"aigw/ledger/readapi"
	"aigw/ledger/sqlite"
	"aigw/ledger/storetest"
	"aigw/verify"

	"golang.org/x/mod/sumdb/note"
)

// memStore is an in-memory implementation of the store methods the read
// API uses, fed with the batches a storetest.Appender builds.
type memStore struct {
	mu   sync.Mutex
	logs map[string]*memLog
	fail error // every method fails with it, when set
}

type memLog struct {
	head        ledger.Head
	entries     []ledger.StoredEntry
	tiles       map[[2]uint64][]byte
	checkpoints [][]byte
	sizes       []uint64
}

func newMemStore() *memStore { return &memStore{logs: map[string]*memLog{}} }

func (s *memStore) AppendBatch(ctx context.Context, b *ledger.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.logs[b.Log]
	if l == nil {
		l = &memLog{tiles: map[[2]uint64][]byte{}}
		s.logs[b.Log] = l
	}
	l.entries = append(l.entries, b.Entries...)
	for _, td := range b.Tiles {
		l.tiles[[2]uint64{td.L, td.N}] = td.Hashes
	}
	l.head = b.Head
	l.checkpoints = append(l.checkpoints, b.Head.Checkpoint)
	l.sizes = append(l.sizes, b.Head.Size)
	return nil
}

func (s *memStore) log(name string) (*memLog, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs[name], s.fail
}

func (s *memStore) Head(ctx context.Context, log string) (ledger.Head, error) {
	l, err := s.log(log)
	if err != nil || l == nil {
		return ledger.Head{}, err
	}
	return l.head, nil
}

func (s *memStore) ReadEntries(ctx context.Context, log string, start uint64, n int) ([]ledger.StoredEntry, error) {
	l, err := s.log(log)
	if err != nil || l == nil || start >= uint64(len(l.entries)) {
		return nil, err
	}
	return slices.Clone(l.entries[start:min(start+uint64(n), uint64(len(l.entries)))]), nil
}

func (s *memStore) ReadTiles(ctx context.Context, log string, tiles []ledger.Tile) ([][]byte, error) {
	l, err := s.log(log)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		var b []byte
		if l != nil {
			b = l.tiles[[2]uint64{t.L, t.N}]
		}
		if len(b) < t.W*ledger.HashSize {
			return nil, fmt.Errorf("tile %s: %w", t.Path(), ledger.ErrNotFound)
		}
		out[i] = b
	}
	return out, nil
}

func (s *memStore) LookupLeaf(ctx context.Context, log string, leaf ledger.Hash) (uint64, error) {
	l, err := s.log(log)
	if err != nil {
		return 0, err
	}
	if l != nil {
		for _, e := range l.entries {
			if ledger.LeafHash(e.Data) == leaf {
				return e.Index, nil
			}
		}
	}
	return 0, ledger.ErrNotFound
}

func (s *memStore) LookupEvents(ctx context.Context, log string, ids []string) (map[string]uint64, error) {
	l, err := s.log(log)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	if l != nil {
		for _, e := range l.entries {
			for _, id := range ids {
				if e.EventID == id {
					out[id] = e.Index
				}
			}
		}
	}
	return out, nil
}

func (s *memStore) Checkpoints(ctx context.Context, log string, from, to uint64) ([][]byte, error) {
	l, err := s.log(log)
	if err != nil || l == nil {
		return nil, err
	}
	var out [][]byte
	for i, size := range l.sizes {
		if size >= from && size <= to {
			out = append(out, l.checkpoints[i])
		}
	}
	return out, nil
}

func (s *memStore) Logs(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name := range s.logs {
		out = append(out, name)
	}
	slices.Sort(out)
	return out, s.fail
}

// store is what the tests append to and serve from.
type store interface {
	readapi.Store
	AppendBatch(ctx context.Context, b *ledger.Batch) error
}

func openSQLite(t testing.TB) store {
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "ledger.db")})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// serve mounts the read API under /ledger/ as the binary does.
func serve(t testing.TB, s readapi.Store, logger *slog.Logger) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("/ledger/", http.StripPrefix("/ledger", readapi.New(readapi.Config{Store: s, Logger: logger})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t testing.TB, srv *httptest.Server, path string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + "/ledger/" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func verifyOpts(a *storetest.Appender) verify.Options {
	return verify.Options{Verifiers: note.VerifierList(a.Verifier()), Origin: a.Origin()}
}

// build appends batches of the given sizes to log in s.
func build(t testing.TB, s store, log string, batches ...int) *storetest.Appender {
	t.Helper()
	a := storetest.NewAppender(t, log)
	for _, n := range batches {
		if err := s.AppendBatch(t.Context(), a.NextN(t, n)); err != nil {
			t.Fatalf("AppendBatch(%q, %d entries) = %v", log, n, err)
		}
	}
	return a
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(testing.TB) store{
		"mem":    func(testing.TB) store { return newMemStore() },
		"sqlite": openSQLite,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			a := build(t, s, "acme", 100, 200, 1, 300, 57) // 658 entries, checkpoints at 100, 300, 301, 601, 658
			build(t, s, "globex", 3)
			srv := serve(t, s, nil)
			ctx := t.Context()

			// The whole log verifies over HTTP, chain hashes included.
			res, err := verify.Log(ctx, verify.HTTPSource(srv.URL+"/ledger", srv.Client()), "acme", verifyOpts(a))
			if err != nil {
				t.Fatalf("verify.Log(HTTPSource) = %v", err)
			}
			if res.Size != 658 || !res.ChainChecked {
				t.Errorf("verify.Log(HTTPSource) = %+v", res)
			}
			logs, err := verify.HTTPSource(srv.URL+"/ledger/", nil).Logs(ctx)
			if err != nil || !slices.Equal(logs, []string{"acme", "globex"}) {
				t.Errorf("Logs() = %v, %v", logs, err)
			}

			leafOf := func(i uint64) ledger.Hash { return ledger.LeafHash(a.Entry(i).Data) }
			l402, l403 := leafOf(402), leafOf(403)
			for _, c := range []struct {
				query string
				index uint64
				size  uint64
			}{
				{"index=0", 0, 658},
				{"index=657", 657, 658},
				{"index=256&tree_size=300", 256, 300},
				{"index=299&tree_size=300", 299, 300},
				{"index=5&tree_size=450", 5, 450}, // no checkpoint at 450: root from the tiles
				{"leaf_hash=" + url.QueryEscape(leafOf(400).String()), 400, 658},
				{"leaf_hash=" + leafOf(401).String(), 401, 658}, // an unescaped '+' arrives as a space
				{"leaf_hash=" + base64.URLEncoding.EncodeToString(l402[:]) + "&tree_size=601", 402, 601},
				{"leaf_hash=" + hex.EncodeToString(l403[:]), 403, 658},
				{"event_id=" + a.Entry(404).EventID, 404, 658},
				{"event_id=" + a.Entry(405).EventID + "&tree_size=601", 405, 601},
			} {
				code, hdr, body := get(t, srv, "acme/proof/inclusion?"+c.query)
				if code != http.StatusOK {
					t.Fatalf("inclusion?%s = %d %s", c.query, code, body)
				}
				var p ledger.InclusionProofJSON
				if err := json.Unmarshal(body, &p); err != nil {
					t.Fatal(err)
				}
				if p.Index != c.index || p.TreeSize != c.size || p.Entry == "" {
					t.Errorf("inclusion?%s = index %d size %d; want %d %d", c.query, p.Index, p.TreeSize, c.index, c.size)
				}
				if c.size == 450 {
					if p.Checkpoint != "" {
						t.Errorf("inclusion?%s carries a checkpoint; none was signed at 450", c.query)
					}
					continue
				}
				pr, err := verify.Proof(ctx, body, verifyOpts(a))
				if err != nil {
					t.Fatalf("verify.Proof(inclusion?%s) = %v", c.query, err)
				}
				if pr.LeafHash != leafOf(c.index) || pr.Entry == nil {
					t.Errorf("verify.Proof(inclusion?%s) = %+v", c.query, pr)
				}
				if strings.Contains(c.query, "tree_size") != (hdr.Get("Cache-Control") != "no-cache") {
					t.Errorf("inclusion?%s Cache-Control = %q", c.query, hdr.Get("Cache-Control"))
				}
			}
			for _, c := range [][2]uint64{{0, 658}, {100, 300}, {300, 301}, {301, 658}, {658, 658}, {100, 658}} {
				q := fmt.Sprintf("size1=%d&size2=%d", c[0], c[1])
				code, _, body := get(t, srv, "acme/proof/consistency?"+q)
				if code != http.StatusOK {
					t.Fatalf("consistency?%s = %d %s", q, code, body)
				}
				o := verifyOpts(a)
				if c[0] > 0 {
					o.Old = a.Checkpoints()[slices.Index(a.Sizes(), c[0])]
				}
				if pr, err := verify.Proof(ctx, body, o); err != nil || pr.OldSize != c[0] || pr.Size != c[1] {
					t.Fatalf("verify.Proof(consistency?%s) = %+v, %v", q, pr, err)
				}
			}
			// size2 defaults to the head.
			if code, _, body := get(t, srv, "acme/proof/consistency?size1=300"); code != http.StatusOK || !bytes.Contains(body, []byte(`"size2":658`)) {
				t.Errorf("consistency?size1=300 = %d %s", code, body)
			}
		})
	}
}

func TestTilesAndBundles(t *testing.T) {
	t.Parallel()
	s := newMemStore()
	a := build(t, s, "acme", 300, 58) // 358 entries
	srv := serve(t, s, nil)

	code, hdr, body := get(t, srv, "acme/checkpoint")
	if code != http.StatusOK || !bytes.Equal(body, a.Head().Checkpoint) || hdr.Get("Cache-Control") != "no-cache" || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Errorf("checkpoint = %d %q %q", code, hdr, body)
	}
	for _, c := range []struct {
		path  string
		want  []byte
		cache string
	}{
		{"tile/0/000", a.Tile(0, 0), "public, max-age=31536000, immutable"},
		{"tile/0/001.p/102", a.Tile(0, 1), "public, max-age=10"},
		{"tile/0/001.p/50", a.Tile(0, 1)[:50*32], "public, max-age=10"},
		{"tile/1/000.p/1", a.Tile(1, 0), "public, max-age=10"},
		{"tile/entries/000", bundle(a, 0, 256), "public, max-age=31536000, immutable"},
		{"tile/entries/001.p/102", bundle(a, 256, 102), "public, max-age=10"},
		{"tile/entries/001.p/2", bundle(a, 256, 2), "public, max-age=10"},
		{"chain/000", chains(a, 0, 256), "public, max-age=31536000, immutable"},
		{"chain/001.p/102", chains(a, 256, 102), "public, max-age=10"},
	} {
		for range 2 { // the second time from the cache
			code, hdr, body := get(t, srv, "acme/"+c.path)
			if code != http.StatusOK || !bytes.Equal(body, c.want) || hdr.Get("Cache-Control") != c.cache || hdr.Get("Content-Type") != "application/octet-stream" {
				t.Errorf("GET %s = %d, %d bytes, %q; want 200, %d bytes, %q", c.path, code, len(body), hdr.Get("Cache-Control"), len(c.want), c.cache)
			}
		}
	}
}

func bundle(a *storetest.Appender, start uint64, n int) []byte {
	var es [][]byte
	for i := range uint64(n) {
		es = append(es, a.Entry(start+i).Data)
	}
	b, err := ledger.EntryBundle(es)
	if err != nil {
		panic(err)
	}
	return b
}

func chains(a *storetest.Appender, start uint64, n int) []byte {
	var out []byte
	for i := range uint64(n) {
		c := a.Entry(start + i).Chain
		out = append(out, c[:]...)
	}
	return out
}

func TestErrors(t *testing.T) {
	t.Parallel()
	s := newMemStore()
	a := build(t, s, "acme", 300, 58)
	srv := serve(t, s, nil)
	unknownLeaf := ledger.LeafHash([]byte("not in the log"))
	for _, c := range []struct {
		path string
		code int
	}{
		// Malformed tile paths.
		{"acme/tile/0/x000/001", 400},
		{"acme/tile/0/001.p/0", 400},
		{"acme/tile/0/001.p/256", 400},
		{"acme/tile/0/001.p/05", 400},
		{"acme/tile/0/abc", 400},
		{"acme/tile/0/1", 400},
		{"acme/tile/00/001", 400},
		{"acme/tile/64/000", 400},
		{"acme/tile/0/x018/x446/x744/x073/x709/x551/616", 400},           // beyond 2^64
		{"acme/tile/0/x018/x446/x744/x073/x709/x551/615", 400},           // beyond any tree
		{"acme/tile/entries/x018/x446/x744/x073/x709/x551/615.p/3", 400}, // start index would overflow
		{"acme/tile/0/x001/x000/x000/x000/x000/x000/x000/000", 400},
		{"acme/tile/entries/001.p/256", 400},
		{"acme/chain/x000/001", 400},
		{"acme/chain/abc", 400},
		{"Acme/checkpoint", 400},
		{"a%2Fb/checkpoint", 400},
		// Things that do not exist.
		{"nobody/checkpoint", 404},
		{"nobody/tile/0/000", 404},
		{"nobody/tile/entries/000.p/1", 404},
		{"acme/tile/0/001", 404},       // partial only
		{"acme/tile/0/001.p/103", 404}, // wider than the log
		{"acme/tile/0/002.p/1", 404},   //
		{"acme/tile/2/000.p/1", 404},   // no level 2 yet
		{"acme/tile/entries/001", 404}, //
		{"acme/tile/entries/005", 404}, //
		{"acme/chain/001.p/103", 404},  //
		{"acme/nothing", 404},          //
		{"acme/tile", 404},             //
		// Proof parameters.
		{"acme/proof/inclusion", 400},
		{"acme/proof/inclusion?index=1&leaf_hash=" + unknownLeaf.String(), 400},
		{"acme/proof/inclusion?index=x", 400},
		{"acme/proof/inclusion?index=01", 400},
		{"acme/proof/inclusion?index=-1", 400},
		{"acme/proof/inclusion?index=99999999999999999999", 400},
		{"acme/proof/inclusion?index=1&tree_size=359", 400},
		{"acme/proof/inclusion?index=1&tree_size=", 200},
		{"acme/proof/inclusion?index=358", 404},
		{"acme/proof/inclusion?index=300&tree_size=300", 404},
		{"acme/proof/inclusion?index=0&tree_size=0", 404},
		{"acme/proof/inclusion?leaf_hash=xyz", 400},
		{"acme/proof/inclusion?leaf_hash=" + url.QueryEscape(unknownLeaf.String()), 404},
		{"acme/proof/inclusion?leaf_hash=" + url.QueryEscape(ledger.LeafHash(a.Entry(350).Data).String()) + "&tree_size=300", 404},
		{"nobody/proof/inclusion?index=0", 404},
		{"acme/proof/consistency", 400},
		{"acme/proof/consistency?size1=10&size2=5", 400},
		{"acme/proof/consistency?size1=10&size2=359", 400},
		{"nobody/proof/consistency?size1=0", 404},
	} {
		code, hdr, body := get(t, srv, c.path)
		if code != c.code {
			t.Errorf("GET %s = %d %s; want %d", c.path, code, body, c.code)
			continue
		}
		if code == 200 {
			continue
		}
		var e struct {
			Error struct{ Message, Type string }
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" || hdr.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: error body %q, %v", c.path, body, err)
		}
	}
	resp, err := srv.Client().Post(srv.URL+"/ledger/acme/checkpoint", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST checkpoint = %d; want 405", resp.StatusCode)
	}
}

// logBuffer collects log output.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestInternalErrorsAreLoggedNotEchoed(t *testing.T) {
	t.Parallel()
	s := newMemStore()
	build(t, s, "acme", 10)
	var logs logBuffer
	srv := serve(t, s, slog.New(slog.NewTextHandler(&logs, nil)))
	s.mu.Lock()
	s.fail = errors.New("disk on fire at /var/lib/secret")
	s.mu.Unlock()
	for _, p := range []string{"logs", "acme/checkpoint", "acme/tile/0/000.p/10", "acme/proof/inclusion?index=1"} {
		code, _, body := get(t, srv, p)
		if code != http.StatusInternalServerError || strings.Contains(string(body), "fire") || !strings.Contains(string(body), `"server_error"`) {
			t.Errorf("GET %s = %d %s; want a 500 that hides the cause", p, code, body)
		}
	}
	if !strings.Contains(logs.String(), "disk on fire") {
		t.Errorf("the cause was not logged: %q", logs.String())
	}
}

// corruptTiles serves a tile with a changed hash, so that a proof built
// from it does not match the signed root.
type corruptTiles struct{ *memStore }

func (c corruptTiles) ReadTiles(ctx context.Context, log string, tiles []ledger.Tile) ([][]byte, error) {
	out, err := c.memStore.ReadTiles(ctx, log, tiles)
	for i, t := range tiles {
		if err == nil && t.L == 1 && t.N == 0 {
			out[i] = bytes.Clone(out[i])
			out[i][0] ^= 1
		}
	}
	return out, err
}

func TestBadProofIsNeverServed(t *testing.T) {
	t.Parallel()
	s := newMemStore()
	build(t, s, "acme", 600)
	var logs logBuffer
	srv := serve(t, corruptTiles{s}, slog.New(slog.NewTextHandler(&logs, nil)))
	// Entry 300's proof holds the root of entries [0, 256), read from tile 1/0, now wrong.
	code, _, body := get(t, srv, "acme/proof/inclusion?index=300")
	if code != http.StatusInternalServerError {
		t.Fatalf("inclusion of 300 over corrupt tiles = %d %s; want 500", code, body)
	}
	if !strings.Contains(logs.String(), "does not verify") {
		t.Errorf("log = %q; want the verification failure", logs.String())
	}
	code, _, body = get(t, srv, "acme/proof/consistency?size1=300&size2=600")
	if code != http.StatusInternalServerError {
		t.Fatalf("consistency over corrupt tiles = %d %s; want 500", code, body)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New(Config{}) did not panic")
		}
	}()
	readapi.New(readapi.Config{})
}
