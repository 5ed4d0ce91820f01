package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestMain runs aigw's main instead of the tests when serve starts this
// test binary as its sequencer process (execMainEnv).
func TestMain(m *testing.M) {
	if os.Getenv(execMainEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := NewMain().Run(ctx, os.Args[1:])
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// sequencerChild finds the sequencer process of the serve on data
// directory dir among this process's children (Linux: /proc; tests run in
// parallel, each serve with its own), or returns 0.
func sequencerChild(t *testing.T, dir string) int {
	t.Helper()
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		b, _ := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		for _, f := range strings.Fields(string(b)) {
			if pid, _ := strconv.Atoi(f); sequencerOf(pid, dir) {
				return pid
			}
		}
	}
	return 0
}

// sequencerOf reports whether process pid is a sequencer process with a
// file open in data directory dir.
func sequencerOf(pid int, dir string) bool {
	proc := "/proc/" + strconv.Itoa(pid)
	cmdline, _ := os.ReadFile(proc + "/cmdline")
	if !bytes.Contains(cmdline, []byte("sequence\x00-child")) {
		return false
	}
	fds, _ := os.ReadDir(proc + "/fd")
	for _, fd := range fds {
		if target, err := os.Readlink(proc + "/fd/" + fd.Name()); err == nil && strings.HasPrefix(target, dir+"/") {
			return true
		}
	}
	return false
}

// currentSequencer returns the pid of the sequencer process that serve's
// log (serve's stderr up to now) says sequences on data directory dir:
// the last to log that it sequences a partition, unless serve logged
// after it that it replaces it. An old process lives on for a moment
// after its replacement was decided, beside the new one or before it
// starts; one found among the children alone may be that one, and a
// signal sent to it tests nothing. Returns 0 if there is none.
func currentSequencer(t *testing.T, log, dir string) int {
	t.Helper()
	i := strings.LastIndex(log, `msg="sequencing partition"`)
	if i < 0 || strings.Contains(log[i:], "replacing it with one") {
		return 0
	}
	line, _, _ := strings.Cut(log[i:], "\n")
	_, after, ok := strings.Cut(line, " pid=")
	if !ok {
		t.Fatalf("sequencer process log line without its pid: %s", line)
	}
	f, _, _ := strings.Cut(after, " ")
	pid, err := strconv.Atoi(f)
	if err != nil {
		t.Fatalf("sequencer process log line: %s: %v", line, err)
	}
	if !sequencerOf(pid, dir) {
		return 0
	}
	return pid
}

// policies returns the scheduling policy of every thread of process pid
// (field 41 of /proc/<pid>/task/<tid>/stat; SCHED_IDLE is 5).
func policies(t *testing.T, pid int) []int {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, task := range tasks {
		b, err := os.ReadFile(dir + task.Name() + "/stat")
		if err != nil {
			continue // the thread is gone
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		n, err := strconv.Atoi(f[41-3])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// allIdle reports whether every thread of pid is in SCHED_IDLE.
func allIdle(t *testing.T, pid int) bool {
	ps := policies(t, pid)
	for _, p := range ps {
		if p != schedIdle {
			return false
		}
	}
	return len(ps) > 0
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serveConfig runs serve on a new data directory with config file yaml,
// and returns it with the directory.
func serveConfig(t *testing.T, yaml string, args ...string) (*serveProc, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "aigw.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServe(t, append([]string{"-config", cfg, "-data-dir", dir}, args...)...), dir
}

// TestServeSequencerProcess: with ledger.sequencer_process, serve's
// sequencer runs in a child process at idle CPU priority, its counters
// show in /healthz, it is started again when it dies, and it stops with
// serve; the logs it appended verify.
func TestServeSequencerProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("finds the child process through /proc")
	}
	t.Parallel()
	s, dir := serveConfig(t, "ledger:\n  sequencer_process: true\n", "-v")
	// Idle; on a loaded machine the first may be starved while it starts
	// and replaced (TestSequencerProcessCatchUp), and an idle one follows.
	var child int
	waitFor(t, "an idle sequencer process", func() bool {
		child = currentSequencer(t, s.stderr.String(), dir)
		return child != 0 && allIdle(t, child)
	})
	// serve -v: the child logs at debug level too (its store's locks; its
	// lines carry its pid).
	waitFor(t, "the sequencer process's debug log", func() bool {
		for line := range strings.Lines(s.stderr.String()) {
			if strings.Contains(line, "lock taken") && strings.Contains(line, " pid=") {
				return true
			}
		}
		return false
	})

	if code, _, stderr := run(t, jsonl("acme", 0, 40), "append", "-data-dir", dir); code != 0 {
		t.Fatalf("append: %d %s", code, stderr)
	}
	waitSize(t, s, "acme", 40)
	appended := func() uint64 {
		var h struct {
			Ledger struct {
				Partitions map[string]struct{ Appended uint64 }
			}
		}
		if err := json.Unmarshal(getOK(t, s.url()+"/healthz"), &h); err != nil {
			t.Fatal(err)
		}
		return h.Ledger.Partitions["0"].Appended
	}
	waitFor(t, "the sequencer process's counters in /healthz", func() bool { return appended() >= 40 })

	// A sequencer process that dies is started again, and takes over
	// where the last one stopped. (The idle one found first may have been
	// replaced since, if it was starved.)
	waitFor(t, "the sequencer process", func() bool {
		child = currentSequencer(t, s.stderr.String(), dir)
		return child != 0
	})
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, jsonl("acme", 40, 25), "append", "-data-dir", dir); code != 0 {
		t.Fatalf("append while the sequencer is down: %d %s", code, stderr)
	}
	waitSize(t, s, "acme", 65)
	// The counters go on from the last process's, not from 0.
	waitFor(t, "the counters of both processes in /healthz", func() bool { return appended() >= 65 })
	next := sequencerChild(t, dir)
	if next == 0 || next == child {
		t.Fatalf("sequencer process after the kill: %d (was %d)", next, child)
	}
	if !strings.Contains(s.stderr.String(), "sequencer process exited; starting it again") {
		t.Errorf("serve did not log the restart:\n%s", s.stderr.String())
	}

	s.stop()
	if err := syscall.Kill(next, 0); err == nil {
		t.Errorf("sequencer process %d still runs after serve stopped", next)
	}
	if code, out, stderr := run(t, "", "verify", "-data-dir", dir); code != 0 || !strings.Contains(out+stderr, "log=acme size=65") {
		t.Errorf("verify: %d\n%s%s", code, out, stderr)
	}
}

// TestSequencerProcessCatchUp: an idle sequencer process that is not
// heard from for defer_under_load (here stopped with SIGSTOP, as a starved
// one would be) is replaced by one at serve's priority, which sequences
// what waited and, caught up, is replaced by an idle one again.
func TestSequencerProcessCatchUp(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("finds the child process through /proc")
	}
	t.Parallel()
	s, dir := serveConfig(t, "ledger:\n  sequencer_process: true\n  defer_under_load: 1s\n")
	// On a loaded machine the first idle process may be starved for the
	// 1 s while it starts, and replaced; an idle one comes back once
	// the other has been calm for a second.
	var idle, before int
	waitFor(t, "an idle sequencer process", func() bool {
		log := s.stderr.String()
		before = len(log)
		idle = currentSequencer(t, log, dir)
		return idle != 0 && allIdle(t, idle)
	})
	if err := syscall.Kill(idle, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, jsonl("acme", 0, 20), "append", "-data-dir", dir); code != 0 {
		t.Fatalf("append: %d %s", code, stderr)
	}
	waitSize(t, s, "acme", 20)
	if !strings.Contains(s.stderr.String()[before:], "falls behind at idle priority") {
		t.Errorf("no replacement logged:\n%s", s.stderr.String())
	}
	if strings.Contains(s.stderr.String(), "exited; starting it again") {
		t.Errorf("a replacement logged as a failure:\n%s", s.stderr.String())
	}
	waitFor(t, "an idle sequencer process again", func() bool {
		log := s.stderr.String()
		pid := currentSequencer(t, log, dir)
		return pid != 0 && pid != idle && strings.Contains(log[before:], "caught up; replacing it") && allIdle(t, pid)
	})
	if code, _, stderr := run(t, jsonl("acme", 20, 5), "append", "-data-dir", dir); code != 0 {
		t.Fatalf("append: %d %s", code, stderr)
	}
	waitSize(t, s, "acme", 25)
	s.stop()
	if code, out, stderr := run(t, "", "verify", "-data-dir", dir); code != 0 || !strings.Contains(out+stderr, "log=acme size=25") {
		t.Errorf("verify: %d\n%s%s", code, out, stderr)
	}
}

// TestSequenceCommand: `aigw sequence` sequences for a serve that
// sequences nothing itself (ledger.sequence: []), through its embedded
// NATS.
func TestSequenceCommand(t *testing.T) {
	t.Parallel()
	s, dir := serveConfig(t, "ledger:\n  sequence: []\n")
	if code, _, stderr := run(t, jsonl("acme", 0, 30), "append", "-data-dir", dir); code != 0 {
		t.Fatalf("append: %d %s", code, stderr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errb syncBuffer
	go func() {
		m := &Main{Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: &errb}
		done <- m.Run(ctx, []string{"sequence", "-data-dir", dir})
	}()
	waitSize(t, s, "acme", 30)
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("aigw sequence exited %d:\n%s", code, errb.String())
	}

	// Without a NATS to sequence from, it says so.
	code, _, stderr := run(t, "", "sequence", "-data-dir", t.TempDir())
	if code != exitError || !strings.Contains(stderr, "no NATS to sequence from") {
		t.Errorf("sequence without NATS: %d %s", code, stderr)
	}
}

// TestEmbeddedNATSToken: serve's embedded NATS requires the token it wrote
// to the data directory's nats.url (0600), so that a local user who can
// reach its port cannot publish into the ledger's stream; aigw append
// (through nats.url) still gets in.
func TestEmbeddedNATSToken(t *testing.T) {
	t.Parallel()
	s, dir := serveConfig(t, "")
	b, err := os.ReadFile(filepath.Join(dir, "nats.url"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "nats.url")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("nats.url mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	u, err := url.Parse(strings.TrimSpace(string(b)))
	if err != nil || u.User == nil || len(u.User.Username()) < 32 {
		t.Fatalf("nats.url %q: want a token in it (%v)", redactNATS(string(b)), err)
	}
	u.User = nil
	if nc, err := nats.Connect(u.String(), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Fatal("connected to the embedded NATS without its token")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("without the token: %v, want an authorization error", err)
	}
	if code, _, stderr := run(t, jsonl("acme", 0, 3), "append", "-data-dir", dir); code != 0 {
		t.Fatalf("append through nats.url: %d %s", code, stderr)
	}

	// The token is kept across restarts (nats.token).
	token := natsURLToken(t, dir)
	s.stop()
	startServe(t, "-config", filepath.Join(dir, "aigw.yaml"), "-data-dir", dir)
	if again := natsURLToken(t, dir); again != token {
		t.Error("a restart changed the embedded NATS token")
	}
}

// natsURLToken returns the token in the data directory's nats.url.
func natsURLToken(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "nats.url"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(strings.TrimSpace(string(b)))
	if err != nil || u.User == nil {
		t.Fatalf("nats.url: %v", err)
	}
	return u.User.Username()
}

// TestServeSequencesInProcess: ledger.sequencer_process: false sequences in
// serve's own process, with no child, and the key is checked against the
// logs there.
func TestServeSequencesInProcess(t *testing.T) {
	t.Parallel()
	s, dir := serveConfig(t, "ledger:\n  sequencer_process: false\n")
	if code, _, stderr := run(t, jsonl("acme", 0, 12), "append", "-data-dir", dir); code != 0 {
		t.Fatalf("append: %d %s", code, stderr)
	}
	waitSize(t, s, "acme", 12)
	if runtime.GOOS == "linux" {
		if pid := sequencerChild(t, dir); pid != 0 {
			t.Errorf("sequencer process %d with sequencer_process: false", pid)
		}
	}
	s.stop()
	if code, out, stderr := run(t, "", "verify", "-data-dir", dir); code != 0 || !strings.Contains(out+stderr, "log=acme size=12") {
		t.Errorf("verify: %d\n%s%s", code, out, stderr)
	}
}
