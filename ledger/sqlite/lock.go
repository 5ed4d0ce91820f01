package sqlite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"aigw/ledger"
)

// errLockHeld is what tryLock returns when another open file holds the lock.
var errLockHeld = errors.New("lock held")

// Lock implements [ledger.Store]. The lock is an exclusive, non-blocking OS
// file lock on LockPath(name), which excludes every other holder: this
// Store, another Store on the same file, another process. The kernel drops it
// when the process dies. Lock files are left in place (removing one would race
// with a locker that just opened it); each holds the pid of its last holder.
// The returned release may be called more than once; once the lock is
// released, later calls do nothing, even if the lock was taken again since.
func (s *Store) Lock(ctx context.Context, name string) (release func(), err error) {
	if name == "" {
		return nil, errors.New("sqlite: lock: empty name")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: lock %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("sqlite: lock %q: store is closed", name)
	}
	if _, held := s.locks[name]; held {
		return nil, fmt.Errorf("sqlite: lock %q: held by this store: %w", name, ledger.ErrLocked)
	}
	path := s.LockPath(name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: lock %q: %w", name, err)
	}
	if err := tryLock(f); err != nil {
		f.Close()
		if errors.Is(err, errLockHeld) {
			return nil, fmt.Errorf("sqlite: lock %q: held by another store or process: %w", name, ledger.ErrLocked)
		}
		return nil, fmt.Errorf("sqlite: lock %q: %w", name, err)
	}
	// Best effort, for an operator wondering who holds it.
	if f.Truncate(0) == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	s.locks[name] = f
	s.log.Debug("lock taken", "lock", name)
	return sync.OnceFunc(func() {
		s.mu.Lock()
		if s.locks[name] == f {
			delete(s.locks, name)
			s.log.Debug("lock released", "lock", name)
		}
		s.mu.Unlock()
		f.Close() // drops the OS lock; a no-op if Close already did
	}), nil
}

// LockPath returns the file that Lock(name) locks: the database path plus
// ".lock-" and the name for a log name (ledger.ValidLogName), or ".lock." and
// a hash of the name for any other, so that no two names share a file.
func (s *Store) LockPath(name string) string {
	if ledger.ValidLogName(name) {
		return s.path + ".lock-" + name
	}
	sum := sha256.Sum256([]byte(name))
	return s.path + ".lock." + hex.EncodeToString(sum[:16])
}
