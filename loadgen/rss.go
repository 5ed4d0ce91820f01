package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

// RSS returns this process's resident set size in bytes (VmRSS in
// /proc/self/status; Linux only).
func RSS() (int64, error) { return ProcessRSS(0) }

// ProcessRSS returns the resident set size in bytes of process pid (0:
// this process), from VmRSS in /proc/<pid>/status (Linux only).
func ProcessRSS(pid int) (int64, error) {
	m, err := ProcessMemory(pid)
	return m.RSS, err
}

// Memory is a process's resident memory in bytes: RSS is Anon (the
// heap, stacks and other private memory) plus File (pages of mapped
// files, the executable's code and read-only data above all; clean, shared
// with the page cache, but counted) plus shared memory. PSS, the
// proportional set size, counts a page that n processes map as 1/n of it
// in each: the sum of PSS over processes is the memory they take
// together, where the sum of RSS counts an executable they share once per
// process.
type Memory struct{ RSS, Anon, File, PSS int64 }

// ProcessMemory reads VmRSS, RssAnon and RssFile of process pid (0: this
// process) from /proc/<pid>/status, and Pss from /proc/<pid>/smaps_rollup
// (Linux only). A kernel without the RssAnon and RssFile lines (before
// 4.5) leaves them 0, one without smaps_rollup (before 4.14) PSS.
func ProcessMemory(pid int) (Memory, error) {
	dir := "/proc/self/"
	if pid > 0 {
		dir = "/proc/" + strconv.Itoa(pid) + "/"
	}
	b, err := os.ReadFile(dir + "status")
	if err != nil {
		return Memory{}, fmt.Errorf("loadgen: rss: %w", err)
	}
	m, err := parseStatus(b)
	if err != nil {
		return m, err
	}
	if b, err := os.ReadFile(dir + "smaps_rollup"); err == nil {
		m.PSS = kBLine(b, "Pss")
	}
	return m, nil
}

// kBLine returns the value of the line "name: <n> kB" of a /proc file in
// bytes (0 if there is none, or it is not in kB).
func kBLine(b []byte, name string) int64 {
	for line := range bytes.Lines(b) {
		if n, v, ok := bytes.Cut(line, []byte(":")); ok && string(n) == name {
			n, _ := kB(v)
			return n
		}
	}
	return 0
}

// kB parses the value of a /proc line, " <n> kB", into bytes.
func kB(v []byte) (int64, bool) {
	f := bytes.Fields(v)
	if len(f) != 2 || string(f[1]) != "kB" {
		return 0, false
	}
	n, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n << 10, true
}

// TreeMemory is the resident memory of a process and its descendants
// (a gateway and the sequencer process it runs): Memory sums them all,
// Descendants is the descendants' part of RSS and Procs how many
// processes were counted.
type TreeMemory struct {
	Memory
	Descendants int64
	Procs       int
}

// ProcessTreeMemory reads the memory of process pid (0: this process) and
// of its descendants, found through /proc/<pid>/task/<tid>/children
// (Linux only). A descendant that exits while it is read is left out.
func ProcessTreeMemory(pid int) (TreeMemory, error) {
	if pid == 0 {
		pid = os.Getpid()
	}
	m, err := ProcessMemory(pid)
	if err != nil {
		return TreeMemory{}, err
	}
	t := TreeMemory{Memory: m, Procs: 1}
	for _, c := range descendants(pid) {
		cm, err := ProcessMemory(c)
		if err != nil {
			continue // gone
		}
		t.RSS += cm.RSS
		t.Anon += cm.Anon
		t.File += cm.File
		t.PSS += cm.PSS
		t.Descendants += cm.RSS
		t.Procs++
	}
	return t, nil
}

// ProcessTreeCPU returns the user+system CPU time that process pid (0:
// this process) and its running descendants have used (utime and stime
// of /proc/<pid>/stat, in the kernel's USER_HZ ticks of 10 ms; Linux
// only). A descendant that exits is no longer counted: read it over
// windows in which the tree does not change.
func ProcessTreeCPU(pid int) (time.Duration, error) {
	if pid == 0 {
		pid = os.Getpid()
	}
	total, err := processCPUOf(pid)
	if err != nil {
		return 0, err
	}
	for _, c := range descendants(pid) {
		if d, err := processCPUOf(c); err == nil {
			total += d
		}
	}
	return total, nil
}

// userHZ is the unit of /proc/<pid>/stat's times: USER_HZ, 100 on every
// Linux architecture Go runs on.
const userHZ = 100

func processCPUOf(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime + stime from a /proc/<pid>/stat line: fields
// 14 and 15, counted after the command name in parentheses (which may
// itself hold spaces and parentheses).
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("loadgen: cpu: malformed stat")
	}
	f := bytes.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, errors.New("loadgen: cpu: short stat")
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("loadgen: cpu: bad time %q in stat", s)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

// descendants lists the descendants of pid, breadth first.
func descendants(pid int) []int {
	var out []int
	seen := map[int]bool{pid: true}
	queue := children(pid)
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if seen[c] {
			continue
		}
		seen[c] = true
		out = append(out, c)
		queue = append(queue, children(c)...)
	}
	return out
}

// children lists the child processes of pid, from every thread's
// children file (a child belongs to the thread that started it).
func children(pid int) []int {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range bytes.Fields(b) {
			if c, err := strconv.Atoi(string(f)); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// parseStatus reads the VmRSS line (required) and the RssAnon and RssFile
// lines of a /proc/<pid>/status file, each "Name:  123 kB".
func parseStatus(status []byte) (Memory, error) {
	var m Memory
	seen := false
	for line := range bytes.Lines(status) {
		name, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(name) {
		case "VmRSS":
			dst = &m.RSS
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		default:
			continue
		}
		n, ok := kB(v)
		if !ok {
			return Memory{}, fmt.Errorf("loadgen: rss: bad %s line in /proc status", name)
		}
		*dst = n
		seen = seen || dst == &m.RSS
	}
	if !seen {
		return Memory{}, errors.New("loadgen: rss: no VmRSS line in kB")
	}
	return m, nil
}

// RSSSample is one resident-set-size reading.
type RSSSample struct {
	Elapsed time.Duration // since the sampler started
	Bytes   int64
	// Anon and File split Bytes (0 where the kernel does not say).
	Anon, File int64
	// Descendants is the part of Bytes in the process's descendants.
	Descendants int64
	// PSS is the proportional set size of the process and its
	// descendants (0 where the kernel does not say): see [Memory].
	PSS int64
}

// Sampler reads the resident set size of a process and its descendants
// ([ProcessTreeMemory]) at a fixed interval, for a soak. Start one with
// [StartSampler].
type Sampler struct {
	pid      int
	interval time.Duration
	start    time.Time
	cancel   context.CancelFunc
	done     chan struct{}

	mu      sync.Mutex
	samples []RSSSample
	err     error
}

// StartSampler samples process pid (0: this process) now and then every
// interval (0: every second) until ctx ends or Stop is called.
func StartSampler(ctx context.Context, pid int, interval time.Duration) *Sampler {
	if interval <= 0 {
		interval = time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Sampler{pid: pid, interval: interval, start: time.Now(), cancel: cancel, done: make(chan struct{})}
	go s.loop(ctx)
	return s
}

func (s *Sampler) loop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		m, err := ProcessTreeMemory(s.pid)
		s.mu.Lock()
		if err != nil {
			s.err = err
			s.mu.Unlock()
			return // the process is gone, or this is not Linux
		}
		s.samples = append(s.samples, RSSSample{Elapsed: time.Since(s.start), Bytes: m.RSS, Anon: m.Anon, File: m.File, Descendants: m.Descendants, PSS: m.PSS})
		s.mu.Unlock()
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// Samples returns the samples so far.
func (s *Sampler) Samples() []RSSSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.samples)
}

// Stop stops sampling and returns the samples, with the error that ended
// sampling early, if any.
func (s *Sampler) Stop() ([]RSSSample, error) {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.samples), s.err
}

// RSSSummary summarises a soak's samples.
type RSSSummary struct {
	Samples                     int
	First, Last, Min, Max, Mean int64
	// MaxAnon and MaxFile split the largest sample (Max), and
	// MaxDescendants is its descendant processes' part.
	MaxAnon, MaxFile, MaxDescendants int64
	// MaxPSS is the largest PSS sample (see [Memory]), not necessarily
	// of the same sample as Max.
	MaxPSS int64
	// Drift is the relative change from the mean of the first tenth of
	// the samples to the mean of the last tenth (at least one sample
	// each): 0.05 means memory grew 5% over the soak.
	Drift float64
}

// SummarizeRSS summarises samples (in order). Leave the warm-up out of
// them: memory grows while pools and caches fill.
func SummarizeRSS(samples []RSSSample) RSSSummary {
	n := len(samples)
	if n == 0 {
		return RSSSummary{}
	}
	s := RSSSummary{Samples: n, First: samples[0].Bytes, Last: samples[n-1].Bytes, Min: samples[0].Bytes, Max: samples[0].Bytes}
	s.MaxAnon, s.MaxFile, s.MaxDescendants = samples[0].Anon, samples[0].File, samples[0].Descendants
	var sum float64
	for _, x := range samples {
		s.MaxPSS = max(s.MaxPSS, x.PSS)
		s.Min = min(s.Min, x.Bytes)
		if x.Bytes > s.Max {
			s.Max, s.MaxAnon, s.MaxFile, s.MaxDescendants = x.Bytes, x.Anon, x.File, x.Descendants
		}
		sum += float64(x.Bytes)
	}
	s.Mean = int64(sum / float64(n))
	k := max(1, n/10)
	mean := func(xs []RSSSample) float64 {
		var t float64
		for _, x := range xs {
			t += float64(x.Bytes)
		}
		return t / float64(len(xs))
	}
	if head := mean(samples[:k]); head > 0 {
		s.Drift = (mean(samples[n-k:]) - head) / head
	}
	return s
}
