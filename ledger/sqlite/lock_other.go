//go:build !unix

package sqlite

import (
	"errors"
	"os"
)

// tryLock has no OS file lock to take on this platform, so Lock would only
// exclude holders within one Store: it refuses instead of pretending.
func tryLock(f *os.File) error {
	return errors.New("cross-process locks are not implemented on this platform")
}
