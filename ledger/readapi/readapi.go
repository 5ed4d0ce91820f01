// Package readapi serves the ledger's logs over HTTP for auditors and
// standard tools: C2SP tlog-tiles (checkpoint, hash tiles, entry bundles),
// the aigw chain extension, and JSON inclusion and consistency proofs.
//
// The binary mounts the handler under /ledger/, so that a tlog-tiles client
// pointed at http://host/ledger/<log> reads a log. Paths, relative to the mount:
//
//	GET /logs                                     {"logs":[...]}
//	GET /{log}/checkpoint                         the latest signed checkpoint (text/plain)
//	GET /{log}/tile/{L}/{N}[.p/{W}]               hash tiles
//	GET /{log}/tile/entries/{N}[.p/{W}]           entry bundles
//	GET /{log}/chain/{N}[.p/{W}]                  chain hashes of bundle N (aigw extension)
//	GET /{log}/proof/inclusion?index=I[&tree_size=S]
//	GET /{log}/proof/inclusion?leaf_hash=H[&tree_size=S]   H in base64 or hex
//	GET /{log}/proof/consistency?size1=A[&size2=B]
//
// Full tiles and bundles never change and are served as immutable (and kept
// in a bounded in-memory cache); partial ones and checkpoints are served for
// short caching. Every inclusion and consistency proof is verified against
// the checkpoint's root (or, without a checkpoint at that size, the root
// computed from the tiles) before it is returned: a failure is a 500 and a
// logged error, never a bad proof. Errors are JSON,
// {"error":{"message":...,"type":...}}; internal causes are logged, not echoed.
//
// SPEC: https://c2sp.org/tlog-tiles, ledger/FORMATS.md §5 and §7
package readapi

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"

	"aigw/ledger"

	"github.com/transparency-dev/merkle/compact"
)

// Store is the part of a ledger.Store the read API uses.
type Store interface {
	Head(ctx context.Context, log string) (ledger.Head, error)
	ReadEntries(ctx context.Context, log string, start uint64, n int) ([]ledger.StoredEntry, error)
	ReadTiles(ctx context.Context, log string, tiles []ledger.Tile) ([][]byte, error)
	LookupLeaf(ctx context.Context, log string, leaf ledger.Hash) (uint64, error)
	LookupEvents(ctx context.Context, log string, ids []string) (map[string]uint64, error)
	Checkpoints(ctx context.Context, log string, from, to uint64) ([][]byte, error)
	Logs(ctx context.Context) ([]string, error)
}

// Defaults for the zero values of [Config].
const (
	DefaultCacheBytes      = 64 << 20
	DefaultMaxRequestBytes = 1 << 12
)

// Config configures [New].
type Config struct {
	// Store holds the logs. Required.
	Store Store
	// Logger receives internal errors (nil: discard).
	Logger *slog.Logger
	// CacheBytes bounds the in-memory cache of immutable tiles and bundles
	// (0: DefaultCacheBytes; negative: no cache).
	CacheBytes int64
	// MaxRequestBytes bounds request bodies (0: DefaultMaxRequestBytes).
	MaxRequestBytes int64
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if c.Store == nil {
		return errors.New("readapi: Store is required")
	}
	if c.MaxRequestBytes < 0 {
		return fmt.Errorf("readapi: MaxRequestBytes %d is negative", c.MaxRequestBytes)
	}
	return nil
}

// Cache-Control values.
const (
	cacheImmutable = "public, max-age=31536000, immutable"
	cacheShort     = "public, max-age=10"
	cacheNone      = "no-cache"
)

// handler serves the read API.
type handler struct {
	store Store
	log   *slog.Logger
	cache *lru
}

// New returns the read API handler. It panics if cfg is invalid (see
// [Config.Validate]), as a misconfigured server is a programming error.
func New(cfg Config) http.Handler {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	h := &handler{store: cfg.Store, log: cfg.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.CacheBytes == 0:
		h.cache = newLRU(DefaultCacheBytes)
	case cfg.CacheBytes > 0:
		h.cache = newLRU(cfg.CacheBytes)
	}
	maxBytes := cfg.MaxRequestBytes
	if maxBytes == 0 {
		maxBytes = DefaultMaxRequestBytes
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /logs", h.logs)
	mux.HandleFunc("GET /{log}/checkpoint", h.checkpoint)
	mux.HandleFunc("GET /{log}/tile/{L}/{N...}", h.tile)
	mux.HandleFunc("GET /{log}/tile/entries/{N...}", h.tile)
	mux.HandleFunc("GET /{log}/chain/{N...}", h.chain)
	mux.HandleFunc("GET /{log}/checkpoints", h.checkpoints)
	mux.HandleFunc("GET /{log}/proof/inclusion", h.inclusion)
	mux.HandleFunc("GET /{log}/proof/consistency", h.consistency)
	mux.HandleFunc("/", h.notFound)
	return http.MaxBytesHandler(mux, maxBytes)
}

// apiError is an error with its HTTP status; anything else is a 500.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &apiError{http.StatusNotFound, fmt.Sprintf(format, args...)}
}

var errorTypes = map[int]string{
	http.StatusBadRequest:          "invalid_request_error",
	http.StatusNotFound:            "not_found_error",
	http.StatusMethodNotAllowed:    "invalid_request_error",
	http.StatusInternalServerError: "server_error",
}

// writeError answers with err as JSON: its own status and message for an
// *apiError, else a 500 whose cause is logged and not echoed.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		h.log.ErrorContext(r.Context(), "ledger read API", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
		ae = &apiError{http.StatusInternalServerError, "internal error"}
	}
	var body struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
		} `json:"error"`
	}
	body.Error.Message, body.Error.Type = ae.msg, errorTypes[ae.status]
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", cacheNone)
	w.WriteHeader(ae.status)
	json.NewEncoder(w).Encode(body)
}

func (h *handler) writeJSON(w http.ResponseWriter, r *http.Request, cache string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", cache)
	w.Write(append(b, '\n'))
}

func writeBytes(w http.ResponseWriter, contentType, cache string, b []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", cache)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

func (h *handler) notFound(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.writeError(w, r, &apiError{http.StatusMethodNotAllowed, "only GET is supported"})
		return
	}
	h.writeError(w, r, notFound("no such path %q", r.URL.Path))
}

// logName returns the {log} path value if it is a valid log name.
func logName(r *http.Request) (string, error) {
	log := r.PathValue("log")
	if !ledger.ValidLogName(log) {
		return "", badRequest("invalid log name %q", log)
	}
	return log, nil
}

// head returns the head of a log that exists.
func (h *handler) head(ctx context.Context, log string) (ledger.Head, error) {
	head, err := h.store.Head(ctx, log)
	if err != nil {
		return head, fmt.Errorf("head of log %q: %w", log, err)
	}
	if head.Checkpoint == nil {
		return head, notFound("unknown log %q", log)
	}
	return head, nil
}

func (h *handler) logs(w http.ResponseWriter, r *http.Request) {
	logs, err := h.store.Logs(r.Context())
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if logs == nil {
		logs = []string{}
	}
	h.writeJSON(w, r, cacheNone, map[string][]string{"logs": logs})
}

// MaxCheckpointsPage is the most checkpoints one /checkpoints response holds;
// a client pages on with from = the last size + 1.
const MaxCheckpointsPage = 1000

// checkpoints serves the log's signed checkpoints with sizes in [from, to]
// (default: all up to the head), oldest first, at most MaxCheckpointsPage:
// {"checkpoints": ["<signed note>", ...]}. An auditor checks every one
// against the tree, which locates a tamper between two of them.
func (h *handler) checkpoints(w http.ResponseWriter, r *http.Request) {
	if err := h.serveCheckpoints(w, r); err != nil {
		h.writeError(w, r, err)
	}
}

func (h *handler) serveCheckpoints(w http.ResponseWriter, r *http.Request) error {
	log, err := logName(r)
	if err != nil {
		return err
	}
	head, err := h.head(r.Context(), log)
	if err != nil {
		return err
	}
	from, _, err := parseSize(r, "from", 0)
	if err != nil {
		return err
	}
	to, _, err := parseSize(r, "to", int64(min(head.Size, math.MaxInt64)))
	if err != nil {
		return err
	}
	to = min(to, head.Size)
	// Read in windows of tree sizes, growing while checkpoints are sparse,
	// so that one request never loads more than a window's worth (a log
	// signs a checkpoint per batch: millions a day).
	out := []string{}
	for window := uint64(4096); from <= to && len(out) < MaxCheckpointsPage; window = min(2*window, 1<<16) {
		end := to
		if to-from >= window {
			end = from + window - 1
		}
		notes, err := h.store.Checkpoints(r.Context(), log, from, end)
		if err != nil {
			return fmt.Errorf("checkpoints of log %q: %w", log, err)
		}
		for _, n := range notes[:min(len(notes), MaxCheckpointsPage-len(out))] {
			out = append(out, string(n))
		}
		if end == to {
			break
		}
		from = end + 1
	}
	h.writeJSON(w, r, cacheNone, map[string][]string{"checkpoints": out})
	return nil
}

func (h *handler) checkpoint(w http.ResponseWriter, r *http.Request) {
	log, err := logName(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	head, err := h.head(r.Context(), log)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeBytes(w, "text/plain; charset=utf-8", cacheNone, head.Checkpoint)
}

// parseTile parses the tile named by a request path and refuses indexes
// beyond any possible tree (where index arithmetic would overflow).
func parseTile(path string) (ledger.Tile, error) {
	t, err := ledger.ParseTilePath(path)
	if err != nil {
		return t, badRequest("malformed tile path %q", path)
	}
	// A tree has at most 2^64 leaves: at level L, at most 2^(64-8L) nodes,
	// so at most 2^(64-8(L+1)) tiles.
	if shift := ledger.TileHeight * (t.L + 1); shift >= 64 && t.N > 0 || shift < 64 && t.N > math.MaxUint64>>shift {
		return t, badRequest("tile %s is beyond any possible tree", path)
	}
	return t, nil
}

func cacheFor(t ledger.Tile) string {
	if t.W == ledger.TileWidth {
		return cacheImmutable
	}
	return cacheShort
}

func (h *handler) tile(w http.ResponseWriter, r *http.Request) {
	log, err := logName(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	path := "tile/entries/" + r.PathValue("N")
	if l := r.PathValue("L"); l != "" {
		path = "tile/" + l + "/" + r.PathValue("N")
	}
	t, err := parseTile(path)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if t.Entries {
		h.bundle(w, r, log, t, false)
		return
	}
	data, err := h.ReadTiles(r.Context(), log, []ledger.Tile{t})
	if errors.Is(err, ledger.ErrNotFound) {
		err = notFound("tile %s of log %q does not exist", t.Path(), log)
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeBytes(w, "application/octet-stream", cacheFor(t), data[0][:t.W*ledger.HashSize])
}

func (h *handler) chain(w http.ResponseWriter, r *http.Request) {
	log, err := logName(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	t, err := parseTile("tile/entries/" + r.PathValue("N"))
	if err != nil {
		h.writeError(w, r, badRequest("malformed chain path %q", "chain/"+r.PathValue("N")))
		return
	}
	h.bundle(w, r, log, t, true)
}

// bundle serves entry bundle t, or its chain hashes.
func (h *handler) bundle(w http.ResponseWriter, r *http.Request, log string, t ledger.Tile, chain bool) {
	kind := kindBundle
	if chain {
		kind = kindChain
	}
	key := cacheKey{log: log, kind: kind, n: t.N}
	if t.W == ledger.TileWidth && h.cache != nil {
		if v, ok := h.cache.get(key); ok {
			writeBytes(w, "application/octet-stream", cacheImmutable, v.([]byte))
			return
		}
	}
	ctx := r.Context()
	start := t.N * ledger.TileWidth
	es, err := h.store.ReadEntries(ctx, log, start, t.W)
	if err != nil {
		h.writeError(w, r, fmt.Errorf("read entries [%d, %d) of log %q: %w", start, start+uint64(t.W), log, err))
		return
	}
	for i := range es {
		if es[i].Index != start+uint64(i) {
			es = es[:i]
			break
		}
	}
	if len(es) < t.W {
		// Beyond the head, the bundle does not exist yet; below it, the store lost an entry.
		head, err := h.head(ctx, log)
		switch {
		case err != nil:
			h.writeError(w, r, err)
		case start+uint64(t.W) > head.Size:
			h.writeError(w, r, notFound("entry bundle %s of log %q does not exist", t.Path(), log))
		default:
			h.writeError(w, r, fmt.Errorf("log %q of size %d: entry %d missing from the store", log, head.Size, start+uint64(len(es))))
		}
		return
	}
	es = es[:t.W]
	var body []byte
	if chain {
		body = make([]byte, 0, len(es)*ledger.HashSize)
		for i := range es {
			body = append(body, es[i].Chain[:]...)
		}
	} else {
		data := make([][]byte, len(es))
		for i := range es {
			data[i] = es[i].Data
		}
		var err error
		if body, err = ledger.EntryBundle(data); err != nil {
			h.writeError(w, r, fmt.Errorf("log %q: bundle %d: %w", log, t.N, err))
			return
		}
	}
	if t.W == ledger.TileWidth && h.cache != nil {
		h.cache.put(key, body, int64(len(body)), t.W)
	}
	writeBytes(w, "application/octet-stream", cacheFor(t), body)
}

// ReadTiles implements ledger.TileReader over the store and the cache.
// The returned slices must not be modified.
func (h *handler) ReadTiles(ctx context.Context, log string, tiles []ledger.Tile) ([][]byte, error) {
	ts, err := h.hashTiles(ctx, log, tiles)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(ts))
	for i, t := range ts {
		out[i] = t.data
	}
	return out, nil
}

// hashTiles returns hash tiles at least as wide as asked, from the cache or
// else in one read of the store. A hash tile's first W hashes never change,
// so the cache keeps the widest version of each tile it has read.
func (h *handler) hashTiles(ctx context.Context, log string, tiles []ledger.Tile) ([]*hashTile, error) {
	out := make([]*hashTile, len(tiles))
	var miss []ledger.Tile
	var missAt []int
	for i, t := range tiles {
		if h.cache != nil {
			if v, ok := h.cache.get(cacheKey{log: log, kind: kindHash, l: t.L, n: t.N}); ok && v.(*hashTile).width() >= t.W {
				out[i] = v.(*hashTile)
				continue
			}
		}
		miss = append(miss, t)
		missAt = append(missAt, i)
	}
	if len(miss) == 0 {
		return out, nil
	}
	data, err := h.store.ReadTiles(ctx, log, miss)
	if err != nil {
		return nil, err
	}
	if len(data) != len(miss) {
		return nil, fmt.Errorf("store returned %d tiles for %d", len(data), len(miss))
	}
	for j, t := range miss {
		b := data[j]
		if len(b) < t.W*ledger.HashSize || len(b)%ledger.HashSize != 0 || len(b) > ledger.TileWidth*ledger.HashSize {
			return nil, fmt.Errorf("store returned %d bytes for tile %s", len(b), t.Path())
		}
		ht := newHashTile(b)
		if h.cache != nil {
			ht = h.cache.put(cacheKey{log: log, kind: kindHash, l: t.L, n: t.N}, ht, ht.cost(), ht.width()).(*hashTile)
		}
		out[missAt[j]] = ht
	}
	return out, nil
}

var (
	_ ledger.TileReader = (*handler)(nil)
	_ ledger.NodeReader = (*handler)(nil)
)

// ReadNodes implements ledger.NodeReader, so that ledger's proof builders
// use the cached subtree hashes: the hashes of tree nodes of a tree of the given size,
// reading each tile they lie in once and looking the nodes up in the
// tiles' expanded subtrees.
func (h *handler) ReadNodes(ctx context.Context, log string, size uint64, ids []compact.NodeID) ([][]byte, error) {
	type key struct{ l, n uint64 }
	at := map[key]int{}
	var tiles []ledger.Tile
	for _, id := range ids {
		l := uint64(id.Level / ledger.TileHeight)
		k := key{l, (id.Index << (id.Level % ledger.TileHeight)) / ledger.TileWidth}
		if _, ok := at[k]; !ok {
			w := ledger.TileWidthAt(l, k.n, size)
			if w == 0 {
				return nil, fmt.Errorf("node %d/%d is not in a tree of size %d", id.Level, id.Index, size)
			}
			at[k] = len(tiles)
			tiles = append(tiles, ledger.Tile{L: l, N: k.n, W: w})
		}
	}
	ts, err := h.hashTiles(ctx, log, tiles)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		sub := id.Level % ledger.TileHeight
		t := ts[at[key{uint64(id.Level / ledger.TileHeight), (id.Index << sub) / ledger.TileWidth}]]
		if out[i] = t.node(int(sub), id.Index%(ledger.TileWidth>>sub)); out[i] == nil {
			return nil, fmt.Errorf("node %d/%d is beyond its tile's %d hashes", id.Level, id.Index, t.width())
		}
	}
	return out, nil
}

// parseSize parses a decimal query parameter; def is used when it is absent
// (def < 0: required).
func parseSize(r *http.Request, name string, def int64) (uint64, bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		if def < 0 {
			return 0, false, badRequest("%s is required", name)
		}
		return uint64(def), false, nil
	}
	if len(s) > 1 && s[0] == '0' || strings.Trim(s, "0123456789") != "" {
		return 0, false, badRequest("%s=%q is not a decimal number", name, s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, badRequest("%s=%q is out of range", name, s)
	}
	return n, true, nil
}

// parseLeafHash accepts a leaf hash as standard or URL-safe base64 (a '+'
// that a query string turned into a space is restored) or as 64 hex digits.
func parseLeafHash(s string) (ledger.Hash, error) {
	var b []byte
	var err error
	switch {
	case len(s) == 2*ledger.HashSize:
		b, err = hex.DecodeString(s)
	case strings.ContainsAny(s, "-_"):
		b, err = base64.URLEncoding.Strict().DecodeString(s)
	default:
		b, err = base64.StdEncoding.Strict().DecodeString(strings.ReplaceAll(s, " ", "+"))
	}
	if err != nil || len(b) != ledger.HashSize {
		return ledger.Hash{}, badRequest("leaf_hash %q is not a SHA-256 hash in base64 or hex", s)
	}
	return ledger.Hash(b), nil
}

// checkpointAt returns the signed checkpoint of the log at size (nil if the
// log signed none there) and the root at size: the checkpoint's, or computed
// from the tiles.
func (h *handler) checkpointAt(ctx context.Context, log string, head ledger.Head, size uint64) ([]byte, ledger.Hash, error) {
	var signed []byte
	if size == head.Size {
		signed = head.Checkpoint
	} else {
		cps, err := h.store.Checkpoints(ctx, log, size, size)
		if err != nil {
			return nil, ledger.Hash{}, fmt.Errorf("checkpoints of log %q at %d: %w", log, size, err)
		}
		if len(cps) > 0 {
			signed = cps[0]
		}
	}
	if signed != nil {
		body, err := ledger.SplitNote(signed)
		if err != nil {
			return nil, ledger.Hash{}, fmt.Errorf("stored checkpoint of log %q at %d: %w", log, size, err)
		}
		c, err := ledger.ParseCheckpointBody(body)
		if err != nil {
			return nil, ledger.Hash{}, fmt.Errorf("stored checkpoint of log %q at %d: %w", log, size, err)
		}
		if c.Size != size {
			return nil, ledger.Hash{}, fmt.Errorf("stored checkpoint of log %q at %d has size %d", log, size, c.Size)
		}
		return signed, c.Root, nil
	}
	root, err := ledger.RootAt(ctx, h, log, size)
	return nil, root, err
}

func (h *handler) inclusion(w http.ResponseWriter, r *http.Request) {
	if err := h.serveInclusion(w, r); err != nil {
		h.writeError(w, r, err)
	}
}

func (h *handler) serveInclusion(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	log, err := logName(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	byIndex, byLeaf, byEvent := q.Has("index"), q.Has("leaf_hash"), q.Has("event_id")
	if n := btoi(byIndex) + btoi(byLeaf) + btoi(byEvent); n != 1 {
		return badRequest("give exactly one of index, leaf_hash and event_id")
	}
	eventID := q.Get("event_id")
	if byEvent && !ledger.ValidEventID(eventID) {
		return badRequest("event_id %q is not a lowercase UUIDv7", eventID)
	}
	var index uint64
	var leaf ledger.Hash
	if byIndex {
		if index, _, err = parseSize(r, "index", -1); err != nil {
			return err
		}
	} else if byLeaf {
		if leaf, err = parseLeafHash(q.Get("leaf_hash")); err != nil {
			return err
		}
	}
	head, err := h.head(ctx, log)
	if err != nil {
		return err
	}
	size, explicit, err := parseSize(r, "tree_size", int64(min(head.Size, math.MaxInt64)))
	if err != nil {
		return err
	}
	if size > head.Size {
		return badRequest("tree_size %d is beyond the log's size %d", size, head.Size)
	}
	if byEvent {
		found, err := h.store.LookupEvents(ctx, log, []string{eventID})
		if err != nil {
			return fmt.Errorf("look up event of log %q: %w", log, err)
		}
		i, ok := found[eventID]
		if !ok {
			return notFound("log %q has no event %s", log, eventID)
		}
		index = i
	}
	if byLeaf {
		if index, err = h.store.LookupLeaf(ctx, log, leaf); errors.Is(err, ledger.ErrNotFound) {
			return notFound("no entry of log %q has leaf hash %s", log, leaf)
		} else if err != nil {
			return fmt.Errorf("look up leaf of log %q: %w", log, err)
		}
	}
	if index >= size {
		return notFound("entry %d is not in the tree of size %d", index, size)
	}

	hashes, err := ledger.InclusionProof(ctx, h, log, index, size)
	if err != nil {
		return fmt.Errorf("log %q: %w", log, err)
	}
	t := ledger.Tile{N: index / ledger.TileWidth, W: ledger.TileWidthAt(0, index/ledger.TileWidth, size)}
	tile, err := h.ReadTiles(ctx, log, []ledger.Tile{t})
	if err != nil {
		return fmt.Errorf("level-0 tile of entry %d of log %q: %w", index, log, err)
	}
	pos := index % ledger.TileWidth
	stored := ledger.Hash(tile[0][pos*ledger.HashSize : (pos+1)*ledger.HashSize])
	if byLeaf && stored != leaf {
		return fmt.Errorf("log %q: LookupLeaf gave entry %d, whose leaf hash is %s, not %s", log, index, stored, leaf)
	}
	es, err := h.store.ReadEntries(ctx, log, index, 1)
	if err != nil {
		return fmt.Errorf("read entry %d of log %q: %w", index, log, err)
	}
	if len(es) != 1 || es[0].Index != index {
		return fmt.Errorf("log %q: entry %d missing from the store", log, index)
	}
	if got := ledger.LeafHash(es[0].Data); got != stored {
		return fmt.Errorf("log %q: entry %d has leaf hash %s, its tile says %s", log, index, got, stored)
	}
	signed, root, err := h.checkpointAt(ctx, log, head, size)
	if err != nil {
		return err
	}
	if err := ledger.VerifyInclusion(stored, index, size, hashes, root); err != nil {
		return fmt.Errorf("log %q: inclusion proof of %d in %d does not verify against root %s: %w", log, index, size, root, err)
	}
	cache := cacheNone
	if explicit {
		cache = cacheImmutable // a proof at a given size never changes
	}
	h.writeJSON(w, r, cache, ledger.InclusionProofJSON{
		Log: log, Index: index, TreeSize: size, LeafHash: stored.String(), Hashes: ledger.EncodeHashes(hashes),
		Checkpoint: string(signed), Entry: base64.StdEncoding.EncodeToString(es[0].Data),
	})
	return nil
}

func (h *handler) consistency(w http.ResponseWriter, r *http.Request) {
	if err := h.serveConsistency(w, r); err != nil {
		h.writeError(w, r, err)
	}
}

func (h *handler) serveConsistency(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	log, err := logName(r)
	if err != nil {
		return err
	}
	size1, _, err := parseSize(r, "size1", -1)
	if err != nil {
		return err
	}
	head, err := h.head(ctx, log)
	if err != nil {
		return err
	}
	size2, explicit, err := parseSize(r, "size2", int64(min(head.Size, math.MaxInt64)))
	if err != nil {
		return err
	}
	switch {
	case size2 > head.Size:
		return badRequest("size2 %d is beyond the log's size %d", size2, head.Size)
	case size1 > size2:
		return badRequest("size1 %d is larger than size2 %d", size1, size2)
	}
	hashes, err := ledger.ConsistencyProof(ctx, h, log, size1, size2)
	if err != nil {
		return fmt.Errorf("log %q: %w", log, err)
	}
	_, root1, err := h.checkpointAt(ctx, log, head, size1)
	if err != nil {
		return err
	}
	signed, root2, err := h.checkpointAt(ctx, log, head, size2)
	if err != nil {
		return err
	}
	if err := ledger.VerifyConsistency(size1, size2, hashes, root1, root2); err != nil {
		return fmt.Errorf("log %q: consistency proof from %d to %d does not verify: %w", log, size1, size2, err)
	}
	cache := cacheNone
	if explicit {
		cache = cacheImmutable
	}
	h.writeJSON(w, r, cache, ledger.ConsistencyProofJSON{
		Log: log, Size1: size1, Size2: size2, Hashes: ledger.EncodeHashes(hashes), Checkpoint: string(signed),
	})
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
