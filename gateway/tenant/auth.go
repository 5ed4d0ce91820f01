package tenant

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults for the zero values of [AuthConfig].
const (
	DefaultTTL           = 10 * time.Second
	DefaultNegativeTTL   = 2 * time.Second
	DefaultMaxEntries    = 100_000
	DefaultMaxLookups    = 8
	DefaultLookupTimeout = 5 * time.Second
)

// AuthConfig configures [NewAuthenticator]. Its zero value works.
type AuthConfig struct {
	// TTL is how long a key found in the Store is served from memory
	// (0: DefaultTTL). It bounds how long a revocation, or a tenant's
	// disabling, made by another process takes to apply here.
	TTL time.Duration
	// NegativeTTL is how long a secret that matches no key is refused from
	// memory before the Store is asked again (0: DefaultNegativeTTL).
	NegativeTTL time.Duration
	// MaxEntries bounds the cache, found keys and unknown secrets together
	// (0: DefaultMaxEntries). Unknown secrets never evict a live key.
	MaxEntries int
	// MaxLookups bounds the Store lookups in flight at once, so that a
	// flood of distinct unknown secrets queues here instead of loading the
	// database (0: DefaultMaxLookups).
	MaxLookups int
	// LookupTimeout bounds one Store lookup, which callers share and which
	// outlives the cancellation of any one of them (0: DefaultLookupTimeout).
	LookupTimeout time.Duration
	// Now is the clock of cache lifetimes and key expiry (nil: time.Now).
	Now func() time.Time
}

// Validate reports whether the configuration can be used.
func (c AuthConfig) Validate() error {
	switch {
	case c.TTL < 0 || c.NegativeTTL < 0 || c.LookupTimeout < 0:
		return fmt.Errorf("tenant: negative TTL %v, NegativeTTL %v or LookupTimeout %v", c.TTL, c.NegativeTTL, c.LookupTimeout)
	case c.MaxEntries < 0 || c.MaxLookups < 0:
		return fmt.Errorf("tenant: negative MaxEntries %d or MaxLookups %d", c.MaxEntries, c.MaxLookups)
	}
	return nil
}

// Authenticator resolves the secret of a request to its key and tenant,
// from a sharded in-memory cache in front of a [Store]. It is safe for
// concurrent use.
//
// A cache hit takes one read lock of one of 64 shards and allocates
// nothing. A miss asks the Store, once for all the callers that miss on the
// same secret at the same time, and at most MaxLookups at a time in all.
// Found keys are cached for TTL, revoked ones included; unknown secrets for
// NegativeTTL. Revocation, expiry and the tenant's Disabled flag are checked
// on every call, against Now, so that an expiry applies to the instant.
type Authenticator struct {
	store         *Store
	ttl, negTTL   int64 // nanoseconds
	lookupTimeout time.Duration
	now           func() time.Time

	shards   []shard
	mask     uint8
	perShard int // entries in one shard, found and unknown together

	// epoch counts invalidations: a lookup caches its result only if no
	// invalidation happened while it ran, so that an invalidation is never
	// undone by a lookup that read the row before the change.
	epoch  atomic.Uint64
	flight singleflight.Group
	sem    chan struct{}

	lookups  atomic.Int64 // Store lookups made
	inflight atomic.Int64
	peak     atomic.Int64 // most lookups in flight at once

	// stops caches each tenant's stops in force, for TTL, under its own
	// lock and invalidation epoch (see stops.go).
	stopsMu    sync.RWMutex
	stops      map[string]*stopsEntry
	stopsEpoch atomic.Uint64
	maxStops   int
}

// shard is one lock's worth of the cache. Keys are SHA-256 sums, uniformly
// spread, so the first byte picks the shard.
type shard struct {
	mu  sync.RWMutex
	pos map[[sha256.Size]byte]*entry
	neg map[[sha256.Size]byte]int64 // unknown secret → expiry, UnixNano
	_   [64]byte                    // keep shards' locks on separate cache lines
}

// entry is a key found in the Store.
type entry struct {
	key     Key
	tenant  Tenant
	expires int64 // UnixNano
}

// numShards for caches large enough to spread; smaller ones use one shard
// so that MaxEntries holds exactly.
const numShards = 64

// NewAuthenticator returns an Authenticator over store.
func NewAuthenticator(store *Store, cfg AuthConfig) (*Authenticator, error) {
	if store == nil {
		return nil, errors.New("tenant: NewAuthenticator: nil Store")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.NegativeTTL == 0 {
		cfg.NegativeTTL = DefaultNegativeTTL
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.MaxLookups == 0 {
		cfg.MaxLookups = DefaultMaxLookups
	}
	if cfg.LookupTimeout == 0 {
		cfg.LookupTimeout = DefaultLookupTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	n := numShards
	if cfg.MaxEntries < 16*numShards {
		n = 1
	}
	a := &Authenticator{
		store:         store,
		ttl:           int64(cfg.TTL),
		negTTL:        int64(cfg.NegativeTTL),
		lookupTimeout: cfg.LookupTimeout,
		now:           cfg.Now,
		shards:        make([]shard, n),
		mask:          uint8(n - 1),
		perShard:      cfg.MaxEntries / n,
		sem:           make(chan struct{}, cfg.MaxLookups),
		stops:         map[string]*stopsEntry{},
		maxStops:      cfg.MaxEntries,
	}
	for i := range a.shards {
		a.shards[i].pos = map[[sha256.Size]byte]*entry{}
		a.shards[i].neg = map[[sha256.Size]byte]int64{}
	}
	return a, nil
}

// Errors of Authenticate that carry nothing of the caller's secret; static
// so that refusing a flood of bad secrets allocates nothing.
var (
	errMalformed = fmt.Errorf("tenant: authenticate: malformed secret: %w", ErrInvalidKey)
	errUnknown   = fmt.Errorf("tenant: authenticate: no such key: %w", ErrInvalidKey)
)

// Authenticate returns the key whose secret is secret, and its tenant. It
// fails with ErrInvalidKey for a malformed secret (before any lookup) or
// one that belongs to no key; with ErrKeyRevoked, ErrKeyExpired or
// ErrTenantDisabled for a key that may not be used, in which case it also
// returns the key and tenant, so that the refusal can be recorded against
// them; or with the Store's error. Errors never hold the secret.
//
// The Key's Models and time pointers are shared with the cache: read only.
func (a *Authenticator) Authenticate(ctx context.Context, secret string) (Key, Tenant, error) {
	if !WellFormed(secret) {
		return Key{}, Tenant{}, errMalformed
	}
	var buf [SecretLen]byte // on the stack: []byte(secret) would allocate
	copy(buf[:], secret)
	h := sha256.Sum256(buf[:])
	now := a.now()
	nowNano := now.UnixNano()
	sh := &a.shards[h[0]&a.mask]
	sh.mu.RLock()
	e := sh.pos[h]
	negExp, neg := int64(0), false
	if e == nil {
		negExp, neg = sh.neg[h]
	}
	sh.mu.RUnlock()
	switch {
	case e != nil && nowNano < e.expires:
		return check(e, now)
	case neg && nowNano < negExp:
		return Key{}, Tenant{}, errUnknown
	}
	e, err := a.lookup(ctx, h)
	if err != nil {
		return Key{}, Tenant{}, err
	}
	return check(e, now)
}

// check refuses a revoked or expired key and a disabled tenant.
func check(e *entry, now time.Time) (Key, Tenant, error) {
	switch {
	case e.key.RevokedAt != nil:
		return e.key, e.tenant, fmt.Errorf("tenant: authenticate key %s of %q: %w", e.key.ID, e.key.Tenant, ErrKeyRevoked)
	case e.key.Expired(now):
		return e.key, e.tenant, fmt.Errorf("tenant: authenticate key %s of %q: %w", e.key.ID, e.key.Tenant, ErrKeyExpired)
	case e.tenant.Disabled:
		return e.key, e.tenant, fmt.Errorf("tenant: authenticate key %s of %q: %w", e.key.ID, e.key.Tenant, ErrTenantDisabled)
	}
	return e.key, e.tenant, nil
}

// lookup asks the Store for the key of hash h, sharing the query with
// concurrent callers for the same h. The query runs on a context of its
// own (ctx's values, no cancellation, LookupTimeout), so that one caller
// giving up does not fail the others; each caller waits only as long as its
// ctx allows.
func (a *Authenticator) lookup(ctx context.Context, h [sha256.Size]byte) (*entry, error) {
	hexHash := hex.EncodeToString(h[:])
	ch := a.flight.DoChan(hexHash, func() (any, error) {
		return a.fill(context.WithoutCancel(ctx), h, hexHash)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*entry), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("tenant: authenticate: %w", context.Cause(ctx))
	}
}

// fill runs one Store lookup for h and caches its result.
func (a *Authenticator) fill(ctx context.Context, h [sha256.Size]byte, hexHash string) (*entry, error) {
	ctx, cancel := context.WithTimeout(ctx, a.lookupTimeout)
	defer cancel()
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("tenant: authenticate: waiting for a lookup slot: %w", ctx.Err())
	}
	defer func() { <-a.sem }()

	// A caller that missed just before the previous lookup of h cached it
	// starts a flight of its own: serve it from the cache.
	epoch := a.epoch.Load()
	sh := &a.shards[h[0]&a.mask]
	now := a.now().UnixNano()
	sh.mu.RLock()
	e := sh.pos[h]
	negExp, neg := sh.neg[h]
	sh.mu.RUnlock()
	if e != nil && now < e.expires {
		return e, nil
	}
	if neg && now < negExp {
		return nil, errUnknown
	}

	n := a.inflight.Add(1)
	for p := a.peak.Load(); n > p && !a.peak.CompareAndSwap(p, n); p = a.peak.Load() {
	}
	a.lookups.Add(1)
	k, t, err := a.store.LookupHash(ctx, hexHash)
	a.inflight.Add(-1)
	now = a.now().UnixNano()
	switch {
	case errors.Is(err, ErrNotFound):
		a.putNegative(sh, h, now+a.negTTL, now, epoch)
		return nil, errUnknown
	case err != nil:
		return nil, fmt.Errorf("tenant: authenticate: %w", err) // not cached: the next call retries
	}
	e = &entry{key: k, tenant: t, expires: now + a.ttl}
	a.putPositive(sh, h, e, now, epoch)
	return e, nil
}

// putPositive caches a found key, evicting an unknown secret first, then
// an expired key, then any key, if the shard is full. It caches nothing if
// an invalidation happened since epoch.
func (a *Authenticator) putPositive(sh *shard, h [sha256.Size]byte, e *entry, now int64, epoch uint64) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if a.epoch.Load() != epoch {
		return
	}
	delete(sh.neg, h)
	if _, ok := sh.pos[h]; !ok && len(sh.pos)+len(sh.neg) >= a.perShard {
		if !evictNegative(sh, now) {
			evictPositive(sh, now, true)
		}
	}
	sh.pos[h] = e
}

// putNegative caches an unknown secret if there is room, or room to be made
// by evicting another unknown secret or an expired key; never a live key.
func (a *Authenticator) putNegative(sh *shard, h [sha256.Size]byte, expires, now int64, epoch uint64) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if a.epoch.Load() != epoch {
		return
	}
	if _, ok := sh.neg[h]; !ok && len(sh.pos)+len(sh.neg) >= a.perShard {
		if !evictNegative(sh, now) && !evictPositive(sh, now, false) {
			return
		}
	}
	delete(sh.pos, h) // keys are never deleted, but a stale entry must not shadow this
	sh.neg[h] = expires
}

// evictScan is how many entries an eviction looks at for an expired one
// before it settles for the first; map iteration order is random, so the
// choice is too.
const evictScan = 8

// evictNegative removes an unknown secret, an expired one if it sees one.
func evictNegative(sh *shard, now int64) bool {
	var victim [sha256.Size]byte
	found, seen := false, 0
	for h, exp := range sh.neg {
		if !found || exp <= now {
			victim, found = h, true
		}
		if seen++; exp <= now || seen >= evictScan {
			break
		}
	}
	if found {
		delete(sh.neg, victim)
	}
	return found
}

// evictPositive removes an expired key, or if live is true any key.
func evictPositive(sh *shard, now int64, live bool) bool {
	var victim [sha256.Size]byte
	found, seen := false, 0
	for h, e := range sh.pos {
		if e.expires <= now {
			victim, found = h, true
			break
		}
		if live && !found {
			victim, found = h, true
		}
		if seen++; seen >= evictScan {
			break
		}
	}
	if found {
		delete(sh.pos, victim)
	}
	return found
}

// Invalidate drops a key from the cache, named by its Hash or its ID, so
// that the next Authenticate reads it from the Store; a lookup in flight
// when it is called caches nothing. Use it after changing a key through the
// Store directly; [Authenticator.Revoke] calls it.
func (a *Authenticator) Invalidate(hashOrID string) {
	if validHash(hashOrID) {
		var h [sha256.Size]byte
		hex.Decode(h[:], []byte(hashOrID))
		sh := &a.shards[h[0]&a.mask]
		sh.mu.Lock()
		delete(sh.pos, h)
		delete(sh.neg, h)
		a.epoch.Add(1)
		sh.mu.Unlock()
		a.flight.Forget(hashOrID)
		return
	}
	a.invalidateWhere(func(e *entry) bool { return e.key.ID == hashOrID })
}

// InvalidateTenant drops every key of tenant from the cache.
// [Authenticator.SetTenantDisabled] calls it.
func (a *Authenticator) InvalidateTenant(tenant string) {
	a.invalidateWhere(func(e *entry) bool { return e.key.Tenant == tenant })
}

// invalidateWhere drops the found keys drop selects, in every shard.
func (a *Authenticator) invalidateWhere(drop func(*entry) bool) {
	a.epoch.Add(1)
	for i := range a.shards {
		sh := &a.shards[i]
		sh.mu.Lock()
		for h, e := range sh.pos {
			if drop(e) {
				delete(sh.pos, h)
				a.flight.Forget(hex.EncodeToString(h[:]))
			}
		}
		a.epoch.Add(1)
		sh.mu.Unlock()
	}
}

// Revoke revokes the key id of tenant in the Store ([Store.RevokeKey]) and
// drops it from this Authenticator's cache, so that it is refused here at
// once; other processes refuse it within their TTL.
func (a *Authenticator) Revoke(ctx context.Context, tenant, id string) (Key, error) {
	k, err := a.store.RevokeKey(ctx, tenant, id)
	if err != nil {
		return Key{}, err
	}
	a.Invalidate(k.Hash)
	return k, nil
}

// SetTenantDisabled sets the tenant's Disabled flag in the Store
// ([Store.SetTenantDisabled]) and drops its keys from this Authenticator's
// cache, so that the change applies here at once; other processes apply it
// within their TTL.
func (a *Authenticator) SetTenantDisabled(ctx context.Context, id string, disabled bool) error {
	if err := a.store.SetTenantDisabled(ctx, id, disabled); err != nil {
		return err
	}
	a.InvalidateTenant(id)
	return nil
}

// AuthStats describes an Authenticator's cache, for metrics.
type AuthStats struct {
	Keys        int   // found keys cached
	Unknown     int   // unknown secrets cached
	Lookups     int64 // Store lookups made so far
	PeakLookups int64 // most Store lookups in flight at once so far
}

// Stats returns the cache's current sizes and lookup counts. It takes
// every shard's read lock in turn.
func (a *Authenticator) Stats() AuthStats {
	st := AuthStats{Lookups: a.lookups.Load(), PeakLookups: a.peak.Load()}
	for i := range a.shards {
		sh := &a.shards[i]
		sh.mu.RLock()
		st.Keys += len(sh.pos)
		st.Unknown += len(sh.neg)
		sh.mu.RUnlock()
	}
	return st
}
