//go:build !linux

package secrets

import "testing"

// cpuLoop runs f in b.Loop (thread CPU time is measured on Linux only).
func cpuLoop(b *testing.B, n int, f func()) {
	for b.Loop() {
		f()
	}
}
