// Package storetest is the conformance suite of [ledger.Store]: every store
// (ledger/sqlite, ledger/postgres) runs it from its own tests, each case on a
// fresh, empty store, in parallel.
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) ledger.Store { return openTestStore(t) })
//	}
//
// It also holds the helpers other packages' tests build realistic logs with:
// [Appender] plays a sequencer (canonical entries, leaf and chain hashes,
// tiles, compact range, signed checkpoints) and [Appender.Check] compares a
// store with what it built.
//
// Besides what the [ledger.Store] documentation states, the suite pins down:
//   - reads of a log never written find nothing without error (zero Head, no
//     entries, no checkpoints, an empty LookupEvents map), except the reads of
//     a single thing (ReadTiles, LookupLeaf, ReadPayload), which return
//     [ledger.ErrNotFound], as ErasePayload does;
//   - AppendBatch refuses, writing nothing, a batch that is not well formed:
//     no entries, an invalid log name, entries not numbered Start, Start+1, …,
//     an event id that is not a UUIDv7, an entry empty or over
//     [ledger.MaxEntrySize], a head whose size, chain, range length or
//     checkpoint does not match the entries, a payload outside the batch or
//     given twice, or tiles that are not exactly [ledger.TilesFor](Start,
//     Head.Size) with W hashes each;
//   - a canceled context makes AppendBatch fail without writing;
//   - ErasePayload of an already erased payload returns nil;
//   - a release function may be called more than once, and a stale release
//     never frees a lock that someone else has taken since;
//   - a store keeps no reference to the slices it is given or returns.
package storetest

import (
	"testing"

	"aigw/ledger"
)

// Run checks that the stores newStore makes behave as a [ledger.Store].
// newStore must return an empty store private to t (its own database or
// file) and register its cleanup with t.Cleanup; that cleanup must tolerate
// a store the test has already closed. Every case runs as a parallel subtest
// on its own store. Run's cases use a single handle per store; stores that can
// open a second handle on the same database should use [RunWithReopen].
func Run(t *testing.T, newStore func(t *testing.T) ledger.Store) {
	run(t, env{newStore: newStore})
}

// RunWithReopen runs the cases of [Run] and those that need a second handle
// on a store's database, as another process would open it: reopen returns a
// new handle on the database of s (registering its own cleanup), without
// calling any method of s, which may already be closed. These cases check
// that writes through one handle are read through the other, that appends
// race safely across handles, that Lock excludes across handles and that
// Close releases locks, and that a closed and reopened store holds
// everything it was given.
func RunWithReopen(t *testing.T, newStore func(t *testing.T) ledger.Store, reopen func(t *testing.T, s ledger.Store) ledger.Store) {
	if reopen == nil {
		t.Fatal("storetest.RunWithReopen: reopen is nil (use Run)")
	}
	run(t, env{newStore: newStore, reopen: reopen})
}

type env struct {
	newStore func(t *testing.T) ledger.Store
	reopen   func(t *testing.T, s ledger.Store) ledger.Store
}

func run(t *testing.T, e env) {
	// Cases on one fresh store.
	single := []struct {
		name string
		fn   func(t *testing.T, s ledger.Store)
	}{
		{"EmptyHead", testEmptyHead},
		{"AppendThenRead", testAppendThenRead},
		{"Conflict", testConflict},
		{"DuplicateEvent", testDuplicateEvent},
		{"TilesOnlyGrow", testTilesOnlyGrow},
		{"ReadTilesPrefix", testReadTilesPrefix},
		{"LookupEvents", testLookupEvents},
		{"LookupLeaf", testLookupLeaf},
		{"LogsIsolated", testLogsIsolated},
		{"Lock", testLock},
		{"PayloadErasure", testPayloadErasure},
		{"LargeEntry", testLargeEntry},
		{"ReadEntriesStopsAtEnd", testReadEntriesStopsAtEnd},
		{"CheckpointsRange", testCheckpointsRange},
		{"ContextCanceled", testContextCanceled},
		{"NoAliasing", testNoAliasing},
		{"ResumeFromStore", testResumeFromStore},
		{"ReadDuringAppend", testReadDuringAppend},
	}
	for _, c := range single {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, e.newStore(t))
		})
	}
	// Cases with subtests, each on its own store.
	multi := []struct {
		name string
		fn   func(t *testing.T, e env)
	}{
		{"AcrossTileBoundaries", testAcrossTileBoundaries},
		{"MalformedBatch", testMalformedBatch},
		{"ConcurrentAppend", testConcurrentAppend},
	}
	for _, c := range multi {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, e)
		})
	}
	if e.reopen == nil {
		return
	}
	reopened := []struct {
		name string
		fn   func(t *testing.T, e env)
	}{
		{"SecondHandleSeesWrites", testSecondHandleSeesWrites},
		{"ConflictAcrossHandles", testConflictAcrossHandles},
		{"AppendAcrossHandles", testAppendAcrossHandles},
		{"LockAcrossHandles", testLockAcrossHandles},
		{"ReopenAfterClose", testReopenAfterClose},
	}
	for _, c := range reopened {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, e)
		})
	}
}
