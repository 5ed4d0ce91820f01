package guardbench

import (
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// threadCPU is the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID):
// benchmarks report it next to wall time because the machines they run on
// are shared, and wall time then measures the neighbours.
func threadCPU() time.Duration {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}

// CPULoop runs f in b.Loop on one locked thread and reports the CPU time
// per call (mean and p99) and the throughput per core for n bytes a call.
func CPULoop(b *testing.B, n int, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var per []time.Duration
	start := threadCPU()
	for b.Loop() {
		t0 := threadCPU()
		f()
		per = append(per, threadCPU()-t0)
	}
	total := threadCPU() - start
	slices.Sort(per)
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(per[len(per)*99/100].Nanoseconds())/1e3, "p99-cpu-µs")
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds()/1e6, "cpu-MB/s")
}
