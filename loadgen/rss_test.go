package loadgen

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    Memory
		wantErr bool
	}{
		{"split", "Name:\taigw\nVmRSS:\t  3000 kB\nRssAnon:\t  1000 kB\nRssFile:\t  1900 kB\nRssShmem:\t 100 kB\n",
			Memory{RSS: 3000 << 10, Anon: 1000 << 10, File: 1900 << 10}, false},
		{"old kernel", "Name:\taigw\nVmPeak:\t  20000 kB\nVmRSS:\t   12345 kB\n", Memory{RSS: 12345 << 10}, false},
		{"last line", "VmRSS: 1 kB", Memory{RSS: 1 << 10}, false},
		{"kernel thread", "Name:\tkthreadd\nState:\tS (sleeping)\n", Memory{}, true},
		{"bad unit", "VmRSS:\t12 MB\n", Memory{}, true},
		{"bad number", "VmRSS:\tx kB\n", Memory{}, true},
		{"empty", "", Memory{}, true},
		{"bad anon", "VmRSS:\t3000 kB\nRssAnon:\tx kB\n", Memory{}, true},
		{"bad file unit", "VmRSS:\t3000 kB\nRssFile:\t2 MB\n", Memory{}, true},
		{"no VmRSS", "RssAnon:\t1000 kB\nRssFile:\t1900 kB\n", Memory{}, true},
		{"a name that contains VmRSS", "Name:\tVmRSS:\nVmRSS:\t1 kB\n", Memory{RSS: 1 << 10}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatus([]byte(tt.status))
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("got %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestRSS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("RSS reads /proc (Linux only)")
	}
	rss, err := RSS()
	if err != nil || rss < 1<<20 || rss > 64<<30 {
		t.Errorf("RSS() = %d, %v", rss, err)
	}
	m, err := ProcessMemory(0)
	if err != nil || m.Anon <= 0 || m.File <= 0 || m.Anon+m.File > m.RSS {
		t.Errorf("ProcessMemory(0) = %+v, %v; want anon and file parts of RSS", m, err)
	}
	// PSS: this process's own pages whole, the shared ones in part.
	if _, err := os.Stat("/proc/self/smaps_rollup"); err == nil && (m.PSS < m.Anon/2 || m.PSS > m.RSS) {
		t.Errorf("ProcessMemory(0) = %+v; want PSS between its anonymous memory and its RSS", m)
	}
}

func TestKBLine(t *testing.T) {
	rollup := []byte("55a0-7ffd ---p 00000000 00:00 0 [rollup]\nRss:  2048 kB\nPss:  1536 kB\nPss_Anon: 1024 kB\n")
	for name, want := range map[string]int64{"Rss": 2 << 20, "Pss": 1536 << 10, "Pss_Anon": 1 << 20, "Pss_File": 0, "55a0-7ffd ---p 00000000 00": 0} {
		if got := kBLine(rollup, name); got != want {
			t.Errorf("kBLine(%q) = %d; want %d", name, got, want)
		}
	}
	if got := kBLine([]byte("Pss: 12 MB\n"), "Pss"); got != 0 {
		t.Errorf("a line not in kB = %d", got)
	}
}

func TestSampler(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("RSS reads /proc (Linux only)")
	}
	t.Parallel()
	s := StartSampler(t.Context(), 0, 10*time.Millisecond)
	time.Sleep(60 * time.Millisecond)
	samples, err := s.Stop()
	if err != nil || len(samples) < 2 {
		t.Fatalf("%d samples, %v", len(samples), err)
	}
	for i, x := range samples {
		if x.Bytes <= 0 || (i > 0 && x.Elapsed <= samples[i-1].Elapsed) {
			t.Errorf("sample %d: %+v after %+v", i, x, samples[max(0, i-1)])
		}
	}
	if n := len(s.Samples()); n != len(samples) {
		t.Errorf("Samples after Stop: %d, want %d", n, len(samples))
	}

	gone := StartSampler(t.Context(), 1<<31-2, time.Millisecond) // no such process
	if samples, err := gone.Stop(); err == nil || len(samples) != 0 {
		t.Errorf("sampling a missing process: %d samples, %v", len(samples), err)
	}
}

func TestSummarizeRSS(t *testing.T) {
	mib := func(v ...int64) []RSSSample {
		s := make([]RSSSample, len(v))
		for i, x := range v {
			s[i] = RSSSample{Elapsed: time.Duration(i) * time.Second, Bytes: x << 20}
		}
		return s
	}
	tests := []struct {
		name string
		in   []RSSSample
		want RSSSummary
	}{
		{"empty", nil, RSSSummary{}},
		{"one", mib(50), RSSSummary{Samples: 1, First: 50 << 20, Last: 50 << 20, Min: 50 << 20, Max: 50 << 20, Mean: 50 << 20}},
		{"flat", mib(40, 42, 41, 40), RSSSummary{Samples: 4, First: 40 << 20, Last: 40 << 20, Min: 40 << 20, Max: 42 << 20, Mean: 163 << 18}},
		{"split at the peak", []RSSSample{{Bytes: 10, Anon: 4, File: 6}, {Bytes: 30, Anon: 20, File: 10}, {Bytes: 20, Anon: 5, File: 15}},
			RSSSummary{Samples: 3, First: 10, Last: 20, Min: 10, Max: 30, MaxAnon: 20, MaxFile: 10, Mean: 20, Drift: 1}},
		{"growing", mib(40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 50, 50, 50, 50, 50, 50, 50, 50, 50, 60),
			RSSSummary{Samples: 20, First: 40 << 20, Last: 60 << 20, Min: 40 << 20, Max: 60 << 20, Mean: 91 << 19, Drift: 0.375}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SummarizeRSS(tt.in); got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestProcessTreeMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("RSS reads /proc (Linux only)")
	}
	t.Parallel()
	alone, err := ProcessTreeMemory(0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep command:", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	child, err := ProcessMemory(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := ProcessTreeMemory(0)
	if err != nil {
		t.Fatal(err)
	}
	// Other tests may start processes of their own meanwhile: only this
	// child is certain.
	if tree.Procs < alone.Procs+1 || tree.Descendants < child.RSS/2 || tree.RSS < tree.Descendants+alone.RSS/2 {
		t.Errorf("with a child of RSS %d: %+v (alone: %+v), want the child counted", child.RSS, tree, alone)
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name may hold spaces and parentheses: fields are counted
	// after the last ')'.
	line := "4242 (aigw (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 3 4 20 0 9 0 100 1000000 2000\n"
	if d, err := parseStatCPU([]byte(line)); err != nil || d != 3*time.Second {
		t.Fatalf("parseStatCPU = %v, %v; want 3s (250 + 50 ticks)", d, err)
	}
	for _, bad := range []string{"", "4242 aigw S 1", "4242 (aigw) S 1 2 3", "4242 (aigw) S 1 4242 4242 0 -1 4194560 1000 0 0 0 x 50 3"} {
		if d, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q) = %v; want an error", bad, d)
		}
	}
}

// TestProcessTreeCPU: this process's CPU as /proc counts it follows what
// getrusage counts (spin until getrusage has seen 200 ms more).
func TestProcessTreeCPU(t *testing.T) {
	before, err := ProcessTreeCPU(0)
	if err != nil {
		t.Skip("no /proc:", err) // not Linux
	}
	start := processCPU()
	x := 0
	for processCPU()-start < 200*time.Millisecond {
		for i := range 100000 {
			x += i
		}
	}
	after, err := ProcessTreeCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := after - before; d < 150*time.Millisecond {
		t.Fatalf("ProcessTreeCPU advanced %v over 200 ms of CPU (%d)", d, x)
	}
}
