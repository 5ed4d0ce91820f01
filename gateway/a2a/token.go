package a2a

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Unlimited, as a field of a [Budget], means no limit.
const Unlimited int64 = -1

// MaxBudgetValue is the largest finite budget (2^53-1, exact in JSON and
// in ledger attributes).
const MaxBudgetValue int64 = 1<<53 - 1

// Budget is what a delegation may spend, itself and through the
// delegations it makes in turn: nano-USD and tokens. A negative field is
// unlimited ([Unlimited]); zero allows nothing.
type Budget struct {
	NanoUSD int64 `json:"nano_usd"`
	Tokens  int64 `json:"tokens"`
}

// UnlimitedBudget is a budget without limits.
var UnlimitedBudget = Budget{NanoUSD: Unlimited, Tokens: Unlimited}

func minLimit(a, b int64) int64 {
	switch {
	case a < 0:
		return b
	case b < 0:
		return a
	}
	return min(a, b)
}

// within reports whether limit a fits in limit b.
func within(a, b int64) bool { return b < 0 || (a >= 0 && a <= b) }

// Within reports whether b asks for no more than parent.
func (b Budget) Within(parent Budget) bool {
	return within(b.NanoUSD, parent.NanoUSD) && within(b.Tokens, parent.Tokens)
}

// Min is the tighter of b and o, field by field.
func (b Budget) Min(o Budget) Budget {
	return Budget{NanoUSD: minLimit(b.NanoUSD, o.NanoUSD), Tokens: minLimit(b.Tokens, o.Tokens)}
}

func (b Budget) normalize() Budget {
	if b.NanoUSD < 0 {
		b.NanoUSD = Unlimited
	}
	if b.Tokens < 0 {
		b.Tokens = Unlimited
	}
	return b
}

func (b Budget) check() error {
	if b.NanoUSD > MaxBudgetValue || b.Tokens > MaxBudgetValue {
		return fmt.Errorf("budget over %d", MaxBudgetValue)
	}
	return nil
}

func (b Budget) attrs() map[string]any {
	return map[string]any{"nano_usd": b.NanoUSD, "tokens": b.Tokens}
}

// Limits on what a token carries.
const (
	MaxScopes     = 64
	MaxScopeLen   = 128
	MaxTokenBytes = 8 << 10
	maxChain      = 64
)

// Claims are the contents of a delegation token: what one hop of a
// delegation (caller → callee) may do. The gateway issues one per hop and
// narrows it at the next: Scopes ⊆ the parent's, Budget ≤ the parent's
// remaining, Expires ≤ the parent's, Depth = the parent's + 1 ≤ MaxDepth.
type Claims struct {
	// Version is the token format (1).
	Version int `json:"v"`
	// Issuer names the gateway that issued the token.
	Issuer string `json:"iss"`
	// Tenant is the log the hop is recorded in.
	Tenant string `json:"tenant"`
	// HopID identifies the hop (a UUIDv7). TaskID is the callee's task as
	// the gateway names it to the caller: the gateway uses the hop id.
	HopID  string `json:"hop"`
	TaskID string `json:"task"`
	// ParentHop is the hop under which the caller delegated ("" for the
	// first hop); RootTask is the task of the first hop of the tree.
	ParentHop string `json:"parent_hop,omitempty"`
	RootTask  string `json:"root_task"`
	// Caller delegated to Callee, the agent the token is for.
	Caller string `json:"caller"`
	Callee string `json:"callee"`
	// Chain is the agents from the first caller to the callee, in order.
	Chain []string `json:"chain"`
	// Depth is the hop's depth (1 for the first hop); MaxDepth is the
	// deepest hop allowed below it.
	Depth    int `json:"depth"`
	MaxDepth int `json:"max_depth"`
	// Scopes are what the callee may use (skills, tools, models, e.g.
	// "tool:search", "model:gpt-4o"); a scope ending in "*" covers every
	// scope it prefixes ("tool:*", "*").
	Scopes []string `json:"scopes"`
	// Budget is what the callee may spend, itself and through its own
	// delegations.
	Budget Budget `json:"budget"`
	// TraceID is the W3C trace id shared by the tree's events.
	TraceID string `json:"trace_id,omitempty"`
	// IssuedAt and Expires are Unix seconds.
	IssuedAt int64 `json:"iat"`
	Expires  int64 `json:"exp"`
}

// ExpiresAt is Expires as a time.
func (c *Claims) ExpiresAt() time.Time { return time.Unix(c.Expires, 0) }

// Token errors, matched with errors.Is; each is wrapped with details.
var (
	ErrTokenMalformed = errors.New("delegation token is malformed")
	ErrTokenSignature = errors.New("delegation token signature is invalid")
	ErrTokenExpired   = errors.New("delegation token has expired")
	ErrTokenIssuer    = errors.New("delegation token is of another issuer")
)

const tokenPrefix = "aigwdt1."

var b64 = base64.RawURLEncoding

// Signer signs and verifies delegation tokens with Ed25519. Tokens are
// "aigwdt1.<base64url claims JSON>.<base64url signature>", the signature
// covering everything before the last dot. It remembers the tokens it
// verified (up to verifiedCacheSize), so that a callee delegating several
// times under its token pays for one signature check: the expiry is
// checked every time. It is safe for concurrent use.
type Signer struct {
	issuer string
	key    ed25519.PrivateKey
	pubs   []ed25519.PublicKey

	mu       sync.Mutex
	verified map[string]*Claims
}

// verifiedCacheSize bounds the verified tokens a Signer remembers.
const verifiedCacheSize = 4096

// NewSigner returns a signer for issuer with key; tokens signed by the
// previous keys' private halves are still accepted (key rotation).
func NewSigner(issuer string, key ed25519.PrivateKey, previous ...ed25519.PublicKey) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("a2a: signing key has %d bytes; want an Ed25519 private key (%d)", len(key), ed25519.PrivateKeySize)
	}
	if issuer == "" {
		return nil, errors.New("a2a: signer needs an issuer")
	}
	pubs := []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}
	for i, p := range previous {
		if len(p) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("a2a: previous key %d has %d bytes; want %d", i, len(p), ed25519.PublicKeySize)
		}
		pubs = append(pubs, p)
	}
	return &Signer{issuer: issuer, key: key, pubs: pubs, verified: map[string]*Claims{}}, nil
}

// Issuer is the signer's issuer name.
func (s *Signer) Issuer() string { return s.issuer }

// Sign encodes and signs c (its Issuer and Version are set).
func (s *Signer) Sign(c *Claims) (string, error) {
	c.Issuer, c.Version = s.issuer, 1
	var buf [512]byte
	payload := appendClaims(buf[:0], c)
	n := len(tokenPrefix) + b64.EncodedLen(len(payload))
	out := make([]byte, n, n+1+b64.EncodedLen(ed25519.SignatureSize))
	copy(out, tokenPrefix)
	b64.Encode(out[len(tokenPrefix):], payload)
	sig := ed25519.Sign(s.key, out)
	out = append(out, '.')
	out = b64.AppendEncode(out, sig)
	if len(out) > MaxTokenBytes {
		return "", fmt.Errorf("a2a: token of %d bytes is over the %d-byte limit", len(out), MaxTokenBytes)
	}
	return string(out), nil
}

// appendClaims appends c as json.Marshal encodes it.
func appendClaims(out []byte, c *Claims) []byte {
	out = append(out, `{"v":`...)
	out = strconv.AppendInt(out, int64(c.Version), 10)
	out = append(out, `,"iss":`...)
	out = appendQuoted(out, c.Issuer)
	out = append(out, `,"tenant":`...)
	out = appendQuoted(out, c.Tenant)
	out = append(out, `,"hop":`...)
	out = appendQuoted(out, c.HopID)
	out = append(out, `,"task":`...)
	out = appendQuoted(out, c.TaskID)
	if c.ParentHop != "" {
		out = append(out, `,"parent_hop":`...)
		out = appendQuoted(out, c.ParentHop)
	}
	out = append(out, `,"root_task":`...)
	out = appendQuoted(out, c.RootTask)
	out = append(out, `,"caller":`...)
	out = appendQuoted(out, c.Caller)
	out = append(out, `,"callee":`...)
	out = appendQuoted(out, c.Callee)
	out = append(out, `,"chain":`...)
	out = appendStrings(out, c.Chain)
	out = append(out, `,"depth":`...)
	out = strconv.AppendInt(out, int64(c.Depth), 10)
	out = append(out, `,"max_depth":`...)
	out = strconv.AppendInt(out, int64(c.MaxDepth), 10)
	out = append(out, `,"scopes":`...)
	out = appendStrings(out, c.Scopes)
	out = append(out, `,"budget":{"nano_usd":`...)
	out = strconv.AppendInt(out, c.Budget.NanoUSD, 10)
	out = append(out, `,"tokens":`...)
	out = strconv.AppendInt(out, c.Budget.Tokens, 10)
	out = append(out, '}')
	if c.TraceID != "" {
		out = append(out, `,"trace_id":`...)
		out = appendQuoted(out, c.TraceID)
	}
	out = append(out, `,"iat":`...)
	out = strconv.AppendInt(out, c.IssuedAt, 10)
	out = append(out, `,"exp":`...)
	out = strconv.AppendInt(out, c.Expires, 10)
	return append(out, '}')
}

// appendStrings appends ss as json.Marshal encodes a []string.
func appendStrings(out []byte, ss []string) []byte {
	if ss == nil {
		return append(out, "null"...)
	}
	return appendArray(out, ss, appendQuoted)
}

// appendArray appends ss as a JSON array, each string written by quote.
func appendArray(out []byte, ss []string, quote func(out []byte, s string) []byte) []byte {
	out = append(out, '[')
	for i, s := range ss {
		if i > 0 {
			out = append(out, ',')
		}
		out = quote(out, s)
	}
	return append(out, ']')
}

// split returns a token's signed part, claims JSON and signature.
func split(token string) (signed string, payload, sig []byte, err error) {
	if len(token) > MaxTokenBytes {
		return "", nil, nil, fmt.Errorf("%w: over %d bytes", ErrTokenMalformed, MaxTokenBytes)
	}
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return "", nil, nil, fmt.Errorf("%w: not an aigw delegation token", ErrTokenMalformed)
	}
	p, s, ok := strings.Cut(rest, ".")
	if !ok {
		return "", nil, nil, fmt.Errorf("%w: no signature", ErrTokenMalformed)
	}
	if payload, err = b64.DecodeString(p); err != nil {
		return "", nil, nil, fmt.Errorf("%w: claims are not base64url", ErrTokenMalformed)
	}
	if sig, err = b64.DecodeString(s); err != nil || len(sig) != ed25519.SignatureSize {
		return "", nil, nil, fmt.Errorf("%w: signature is not %d bytes of base64url", ErrTokenMalformed, ed25519.SignatureSize)
	}
	return token[:len(tokenPrefix)+len(p)], payload, sig, nil
}

func decodeClaims(payload []byte) (*Claims, error) {
	var c Claims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrTokenMalformed, err)
	}
	if c.Version != 1 {
		return nil, fmt.Errorf("%w: version %d", ErrTokenMalformed, c.Version)
	}
	return &c, nil
}

// DecodeToken returns a token's claims WITHOUT verifying it: for agents
// that want to read what they were given. Only [Signer.Verify] says a
// token is genuine.
func DecodeToken(token string) (*Claims, error) {
	_, payload, _, err := split(token)
	if err != nil {
		return nil, err
	}
	return decodeClaims(payload)
}

// Verify checks a token's signature (against the signer's keys), issuer
// and expiry at now, and returns its claims (the caller's own copy).
func (s *Signer) Verify(token string, now time.Time) (*Claims, error) {
	s.mu.Lock()
	c := s.verified[token]
	s.mu.Unlock()
	if c == nil {
		var err error
		if c, err = s.verify(token); err != nil {
			return nil, err
		}
		s.mu.Lock()
		if len(s.verified) >= verifiedCacheSize {
			for k := range s.verified { // evict one at random
				delete(s.verified, k)
				break
			}
		}
		s.verified[token] = c
		s.mu.Unlock()
	}
	if now.Unix() >= c.Expires {
		return nil, fmt.Errorf("%w: at %s", ErrTokenExpired, time.Unix(c.Expires, 0).UTC().Format(time.RFC3339))
	}
	cp := *c
	cp.Chain, cp.Scopes = slices.Clone(c.Chain), slices.Clone(c.Scopes)
	return &cp, nil
}

// verify checks a token's signature and issuer.
func (s *Signer) verify(token string) (*Claims, error) {
	signed, payload, sig, err := split(token)
	if err != nil {
		return nil, err
	}
	ok := false
	for _, pub := range s.pubs {
		if ed25519.Verify(pub, []byte(signed), sig) {
			ok = true
			break
		}
	}
	if !ok {
		return nil, ErrTokenSignature
	}
	c, err := decodeClaims(payload)
	if err != nil {
		return nil, err
	}
	if c.Issuer != s.issuer {
		return nil, fmt.Errorf("%w: %q", ErrTokenIssuer, c.Issuer)
	}
	return c, nil
}

// ScopeCovers reports whether scope parent covers scope child: they are
// equal, or parent ends in "*" and child (a scope or a pattern) starts
// with what precedes it.
func ScopeCovers(parent, child string) bool {
	if parent == child {
		return true
	}
	prefix, ok := strings.CutSuffix(parent, "*")
	return ok && strings.HasPrefix(child, prefix)
}

// ScopesWithin returns the first scope of child that no scope of parent
// covers, and false; or "", true when child ⊆ parent.
func ScopesWithin(child, parent []string) (string, bool) {
	for _, c := range child {
		if !slices.ContainsFunc(parent, func(p string) bool { return ScopeCovers(p, c) }) {
			return c, false
		}
	}
	return "", true
}

// intersectScopes returns the scopes in both a and b (with patterns, the
// narrower of two overlapping ones), without duplicates, sorted.
func intersectScopes(a, b []string) []string {
	var out []string
	add := func(s string) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, x := range a {
		if slices.ContainsFunc(b, func(y string) bool { return ScopeCovers(y, x) }) {
			add(x)
		}
	}
	for _, y := range b {
		if slices.ContainsFunc(a, func(x string) bool { return ScopeCovers(x, y) }) {
			add(y)
		}
	}
	// Drop a scope another kept scope covers (keep the set minimal).
	kept := out[:0:0]
	for i, s := range out {
		covered := false
		for j, o := range out {
			if i != j && ScopeCovers(o, s) && o != s {
				covered = true
				break
			}
		}
		if !covered {
			kept = append(kept, s)
		}
	}
	slices.Sort(kept)
	if kept == nil {
		kept = []string{}
	}
	return kept
}

// checkScopes validates scopes: at most MaxScopes of at most MaxScopeLen
// printable ASCII characters, no spaces.
func checkScopes(scopes []string) error {
	if len(scopes) > MaxScopes {
		return fmt.Errorf("%d scopes; at most %d", len(scopes), MaxScopes)
	}
	for _, s := range scopes {
		if s == "" || len(s) > MaxScopeLen {
			return fmt.Errorf("scope %q: 1 to %d characters", truncate(s, 40), MaxScopeLen)
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c <= ' ' || c > '~' {
				return fmt.Errorf("scope %q: printable ASCII without spaces only", truncate(s, 40))
			}
		}
	}
	return nil
}

// DelegationRequest is what a caller may ask of a delegation, in
// params.metadata["aigw.delegation_request"] of message/send and
// message/stream: each member left out takes the most the caller may
// give. Asking for more than that is refused (CodeDelegationWidened).
type DelegationRequest struct {
	// Scopes the callee gets; each must be covered by the caller's.
	Scopes []string `json:"scopes,omitempty"`
	// Budget the callee gets: each given member at most the caller's
	// remaining budget (-1 asks for unlimited).
	Budget *RequestBudget `json:"budget,omitempty"`
	// TTLSeconds: the token expires this long after it is issued, no
	// later than the caller's.
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
	// MaxDepth: the deepest hop allowed below, at most the caller's.
	MaxDepth int `json:"max_depth,omitempty"`
}

// RequestBudget is the budget a [DelegationRequest] asks for; a nil
// member takes the caller's remaining budget.
type RequestBudget struct {
	NanoUSD *int64 `json:"nano_usd,omitempty"`
	Tokens  *int64 `json:"tokens,omitempty"`
}

// bounds are the most a hop may be given: its parent's token (or, for a
// first hop, the callee's configuration), narrowed by the callee's caps.
type bounds struct {
	scopes   []string // what the parent has
	capScope []string // what the callee accepts (nil: anything)
	budget   Budget   // parent's remaining budget, min the callee's cap
	expires  int64    // parent's expiry, min now + TokenTTL
	maxDepth int      // deepest hop allowed
}

// narrow computes a hop's scopes, budget, expiry and max depth from its
// bounds and the caller's request, refusing a request that asks for more.
func narrow(b bounds, req *DelegationRequest, depth int, now time.Time) (scopes []string, budget Budget, exp int64, maxDepth int, rerr *RPCError) {
	widened := func(format string, args ...any) *RPCError {
		return rpcErr(CodeDelegationWidened, ReasonWidened, format, args...)
	}
	allowed := b.scopes
	if b.capScope != nil {
		allowed = intersectScopes(b.scopes, b.capScope)
	}
	scopes, budget, exp, maxDepth = allowed, b.budget, b.expires, b.maxDepth
	if req == nil {
		return
	}
	if req.Scopes != nil {
		if err := checkScopes(req.Scopes); err != nil {
			return nil, Budget{}, 0, 0, rpcErr(CodeInvalidParams, ReasonInvalidParams, "Invalid aigw.delegation_request: %v.", err)
		}
		if s, ok := ScopesWithin(req.Scopes, b.scopes); !ok {
			return nil, Budget{}, 0, 0, widened("Delegation refused: scope %q is not among the caller's scopes %v.", s, b.scopes)
		}
		if b.capScope != nil {
			if s, ok := ScopesWithin(req.Scopes, b.capScope); !ok {
				return nil, Budget{}, 0, 0, widened("Delegation refused: scope %q is beyond what the callee accepts %v.", s, b.capScope)
			}
		}
		scopes = slices.Clone(req.Scopes)
		slices.Sort(scopes)
		scopes = slices.Compact(scopes)
	}
	if rb := req.Budget; rb != nil {
		if v := rb.NanoUSD; v != nil {
			if *v > MaxBudgetValue {
				return nil, Budget{}, 0, 0, rpcErr(CodeInvalidParams, ReasonInvalidParams, "Invalid aigw.delegation_request: budget.nano_usd over %d.", MaxBudgetValue)
			}
			if !within(*v, b.budget.NanoUSD) {
				return nil, Budget{}, 0, 0, widened("Delegation refused: budget.nano_usd %d is over the caller's remaining %s.", *v, limitString(b.budget.NanoUSD))
			}
			budget.NanoUSD = *v
		}
		if v := rb.Tokens; v != nil {
			if *v > MaxBudgetValue {
				return nil, Budget{}, 0, 0, rpcErr(CodeInvalidParams, ReasonInvalidParams, "Invalid aigw.delegation_request: budget.tokens over %d.", MaxBudgetValue)
			}
			if !within(*v, b.budget.Tokens) {
				return nil, Budget{}, 0, 0, widened("Delegation refused: budget.tokens %d is over the caller's remaining %s.", *v, limitString(b.budget.Tokens))
			}
			budget.Tokens = *v
		}
		budget = budget.normalize()
	}
	if req.TTLSeconds < 0 {
		return nil, Budget{}, 0, 0, rpcErr(CodeInvalidParams, ReasonInvalidParams, "Invalid aigw.delegation_request: ttl_seconds is negative.")
	}
	if req.TTLSeconds > 0 {
		want := now.Unix() + min(req.TTLSeconds, 1<<40)
		if want > b.expires {
			return nil, Budget{}, 0, 0, widened("Delegation refused: ttl_seconds %d would outlive the caller's token (expires %s).",
				req.TTLSeconds, time.Unix(b.expires, 0).UTC().Format(time.RFC3339))
		}
		exp = want
	}
	if req.MaxDepth < 0 {
		return nil, Budget{}, 0, 0, rpcErr(CodeInvalidParams, ReasonInvalidParams, "Invalid aigw.delegation_request: max_depth is negative.")
	}
	if req.MaxDepth > 0 {
		if req.MaxDepth > b.maxDepth {
			return nil, Budget{}, 0, 0, widened("Delegation refused: max_depth %d is deeper than the caller's %d.", req.MaxDepth, b.maxDepth)
		}
		if req.MaxDepth < depth {
			return nil, Budget{}, 0, 0, rpcErr(CodeInvalidParams, ReasonInvalidParams, "Invalid aigw.delegation_request: max_depth %d is above this hop's depth %d.", req.MaxDepth, depth)
		}
		maxDepth = req.MaxDepth
	}
	return
}

func limitString(v int64) string {
	if v < 0 {
		return "unlimited"
	}
	return fmt.Sprint(v)
}

// truncate returns s as valid UTF-8, cut to at most n bytes (and "…").
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
