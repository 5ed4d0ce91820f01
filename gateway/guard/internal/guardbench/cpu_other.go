//go:build !linux

package guardbench

import "testing"

// CPULoop runs f in b.Loop (thread CPU time is measured on Linux only).
func CPULoop(b *testing.B, n int, f func()) {
	for b.Loop() {
		f()
	}
}
