package pii

// For the benchmarks of package pii_test.
var (
	BenchText = benchText
	CPULoop   = cpuLoop
)
