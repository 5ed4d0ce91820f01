package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"aigw/ledger"
)

// run runs aigw with args and returns its exit code, stdout and stderr.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb}
	code := m.Run(context.Background(), args)
	return code, out.String(), errb.String()
}

// serveProc is `aigw serve` running in the test process on a random port.
type serveProc struct {
	addr   string
	cancel context.CancelFunc
	done   chan int
	stderr *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs `aigw serve` on 127.0.0.1:0 (wtf's MustRunMain).
func startServe(t *testing.T, args ...string) *serveProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &serveProc{cancel: cancel, done: make(chan int, 1), stderr: &syncBuffer{}}
	ready := make(chan string, 1)
	m := &Main{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: s.stderr}
	cmd := &ServeCommand{Main: m, ready: func(addr string) { ready <- addr }}
	go func() {
		err := cmd.Run(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...))
		if err != nil {
			fmt.Fprintln(s.stderr, "serve:", err)
			s.done <- 1
			return
		}
		s.done <- 0
	}()
	select {
	case s.addr = <-ready:
	case <-s.done:
		t.Fatalf("serve exited before listening:\n%s", s.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not start:\n%s", s.stderr.String())
	}
	t.Cleanup(s.stop)
	return s
}

func (s *serveProc) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.cancel = nil
}

func (s *serveProc) url() string { return "http://" + s.addr }

func getOK(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return b
}

// waitSize polls the read API until the log's checkpoint reaches size.
func waitSize(t *testing.T, s *serveProc, log string, size uint64) []byte {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.url() + "/ledger/" + log + "/checkpoint")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if body, err := ledger.SplitNote(b); err == nil {
					if cp, err := ledger.ParseCheckpointBody(body); err == nil && cp.Size >= size {
						return b
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s did not reach size %d\n%s", log, size, s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func jsonl(tenant string, from, n int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, `{"tenant":%q,"kind":"request","actor":{"key_id":"k1"},"attrs":{"i":%d,"model":"m"},"payload":"prompt %d"}`+"\n", tenant, i, i)
	}
	return b.String()
}

// TestServeAppendVerify is the README's walk-through: serve on the embedded
// default, append, read the API, prove, export, verify every way, restart.
func TestServeAppendVerify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	s := startServe(t, "-data-dir", data)
	vkey := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(data, "checkpoint.vkey")))))

	code, out, errs := run(t, jsonl("acme", 0, 300), "append", "-data-dir", data)
	if code != 0 {
		t.Fatalf("append: %d %s", code, errs)
	}
	if ids := strings.Fields(out); len(ids) != 300 || !ledger.ValidEventID(ids[0]) {
		t.Fatalf("append printed %d ids", len(ids))
	}
	if code, _, errs := run(t, jsonl("beta", 0, 5), "append", "-data-dir", data); code != 0 {
		t.Fatalf("append beta: %s", errs)
	}
	cp300 := waitSize(t, s, "acme", 300)
	waitSize(t, s, "beta", 5)
	waitSize(t, s, "system", 1) // the key activation event

	// A malformed line appends nothing, and says which line.
	bad := jsonl("acme", 300, 2) + `{"tenant":"acme","kind":"Bad Kind"}` + "\n"
	if code, _, errs := run(t, bad, "append", "-data-dir", data); code != exitError || !strings.Contains(errs, "line 3") || !strings.Contains(errs, "kind") {
		t.Fatalf("malformed append: exit %d, %s", code, errs)
	}

	// Verify through the read API, then through the store directly.
	code, out, errs = run(t, "", "verify", "-server", s.url(), "-vkey", vkey)
	if code != 0 || strings.Count(out, "ok log=") != 3 || !strings.Contains(out, "ok log=acme size=300") {
		t.Fatalf("verify -server: exit %d\n%s%s", code, out, errs)
	}
	// The read API lists the checkpoint history, which verify checks too.
	if strings.Contains(strings.SplitN(out[strings.Index(out, "ok log=acme"):], "\n", 2)[0], "checkpoints=0") {
		t.Errorf("verify -server checked no historical checkpoint of acme:\n%s", out)
	}
	// A wrong key is a verification failure (exit 1), not an error.
	other := "aigw.local/ledger+00000000+AXxn7u5bc5bKQdvD8Xx4Im3QSyyb09N8Pn0bI+/cVE1t"
	if code, out, errs = run(t, "", "verify", "-server", s.url(), "-log", "acme", "-vkey", other); code == 0 {
		t.Fatalf("verify with a wrong key passed:\n%s%s", out, errs)
	}

	// Proofs over HTTP, checked with the verifier.
	proofFile := filepath.Join(dir, "proof.json")
	code, out, errs = run(t, "", "proof", "-server", s.url(), "-log", "acme", "-index", "123")
	if code != 0 {
		t.Fatalf("proof: %s", errs)
	}
	os.WriteFile(proofFile, []byte(out), 0o644)
	if code, out, errs = run(t, "", "verify", "-proof", proofFile, "-vkey", vkey); code != 0 || !strings.Contains(out, "ok inclusion log=acme index=123") {
		t.Fatalf("verify -proof: exit %d %s %s", code, out, errs)
	}
	var p ledger.InclusionProofJSON
	if err := json.Unmarshal(must(os.ReadFile(proofFile)), &p); err != nil || p.Checkpoint == "" {
		t.Fatalf("proof JSON: %v %+v", err, p)
	}
	// Tamper with the proof: the verifier refuses it.
	p.Index = 124
	forged, _ := json.Marshal(p)
	os.WriteFile(proofFile, forged, 0o644)
	if code, _, _ = run(t, "", "verify", "-proof", proofFile, "-vkey", vkey); code != exitMismatch {
		t.Fatalf("forged proof: exit %d, want %d", code, exitMismatch)
	}

	// More events, then a consistency proof from the checkpoint kept at 300.
	if code, _, errs := run(t, jsonl("acme", 300, 200), "append", "-data-dir", data); code != 0 {
		t.Fatalf("append: %s", errs)
	}
	waitSize(t, s, "acme", 500)
	kept := filepath.Join(dir, "cp300")
	os.WriteFile(kept, cp300, 0o644)
	if code, out, errs = run(t, "", "verify", "-server", s.url(), "-log", "acme", "-vkey", vkey, "-old", kept); code != 0 || !strings.Contains(out, "extends=300") {
		t.Fatalf("verify -old: exit %d %s %s", code, out, errs)
	}
	code, out, errs = run(t, "", "proof", "-server", s.url(), "-log", "acme", "-consistency", "300,500")
	if code != 0 {
		t.Fatalf("consistency proof: %s", errs)
	}
	os.WriteFile(proofFile, []byte(out), 0o644)
	if code, out, errs = run(t, "", "verify", "-proof", proofFile, "-vkey", vkey, "-old", kept); code != 0 || !strings.Contains(out, "ok consistency") {
		t.Fatalf("verify consistency proof: exit %d %s %s", code, out, errs)
	}

	// Stop, restart on the same data directory: everything is still there,
	// the same key is used (no rotation event), and appends continue.
	s.stop()
	s = startServe(t, "-data-dir", data)
	if code, _, errs := run(t, jsonl("acme", 500, 10), "append", "-data-dir", data); code != 0 {
		t.Fatalf("append after restart: %s", errs)
	}
	waitSize(t, s, "acme", 510)
	// The system log: the key's activation, then the bootstrap of the
	// default tenant and its key (no rotation event on restart).
	if code, out, errs = run(t, "", "verify", "-server", s.url(), "-log", "system", "-vkey", vkey); code != 0 || !strings.Contains(out, "size=3 ") {
		t.Fatalf("system log after restart: exit %d %s %s (want the key event and two bootstrap events)", code, out, errs)
	}
	// Erase a payload: recorded in the system log, and the log still verifies.
	if code, out, errs = run(t, "", "erase", "-data-dir", data, "-log", "acme", "-reason", "GDPR request 1", "5"); code != 0 || !strings.Contains(out, "erased log=acme index=5") {
		t.Fatalf("erase: exit %d %s %s", code, out, errs)
	}
	if code, _, errs = run(t, "", "erase", "-data-dir", data, "-log", "acme", "-reason", "x", "99999"); code != exitError || !strings.Contains(errs, "no entry 99999") {
		t.Fatalf("erase of a missing entry: exit %d %s", code, errs)
	}
	waitSize(t, s, "system", 2)
	s.stop()

	// Offline: export, verify the directory; verify the SQLite store directly.
	exp := filepath.Join(dir, "export")
	if code, out, errs = run(t, "", "export", "-data-dir", data, "-out", exp); code != 0 || !strings.Contains(out, "log=acme size=510") {
		t.Fatalf("export: exit %d %s %s", code, out, errs)
	}
	if code, out, errs = run(t, "", "verify", exp, "-vkey", vkey); code != 0 || strings.Count(out, "ok log=") != 3 {
		t.Fatalf("verify export: exit %d %s %s", code, out, errs)
	}
	if code, out, errs = run(t, "", "verify", "-data-dir", data, "-payloads"); code != 0 || !strings.Contains(out, "ok log=acme size=510") || !strings.Contains(out, "erased_payloads=1") {
		t.Fatalf("verify -data-dir: exit %d %s %s", code, out, errs)
	}
	// Offline proof from the store, same JSON as the server's.
	if code, out, _ = run(t, "", "proof", "-data-dir", data, "-log", "beta", "-index", "4"); code != 0 || !strings.Contains(out, `"index":4`) {
		t.Fatalf("proof -data-dir: exit %d %s", code, out)
	}
	// Flip a byte in the export: found, with its index.
	bundle := filepath.Join(exp, "acme", "tile", "entries", "000")
	b := must(os.ReadFile(bundle))
	i := bytes.Index(b, []byte(`"i":7,`))
	b[i+4] = '8'
	os.WriteFile(bundle, b, 0o644)
	if code, out, _ = run(t, "", "verify", exp, "-log", "acme", "-vkey", vkey); code != exitMismatch || !strings.Contains(out, "index=7") {
		t.Fatalf("tampered export: exit %d %s", code, out)
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	s := startServe(t, "-data-dir", data)
	oldKey := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(data, "checkpoint.vkey")))))
	if code, _, errs := run(t, jsonl("acme", 0, 10), "append", "-data-dir", data); code != 0 {
		t.Fatal(errs)
	}
	waitSize(t, s, "acme", 10)
	waitSize(t, s, "system", 1)
	s.stop()

	newKeyFile := filepath.Join(dir, "new.key")
	code, newKey, errs := run(t, "", "keys", "generate", "-out", newKeyFile, "-name", "aigw.local/ledger")
	if code != 0 {
		t.Fatal(errs)
	}
	newKey = strings.TrimSpace(newKey)
	// Without trusting the old key, serve refuses to extend its logs.
	var out, errb bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if code := m.Run(ctx, []string{"serve", "-data-dir", data, "-listen", "127.0.0.1:0", "-key", newKeyFile}); code != exitError || !strings.Contains(errb.String(), "-trust-key") {
		t.Fatalf("serve with an untrusted rotation: exit %d\n%s", code, errb.String())
	}
	s = startServe(t, "-data-dir", data, "-key", newKeyFile, "-trust-key", oldKey)
	if code, _, errs := run(t, jsonl("acme", 10, 5), "append", "-data-dir", data); code != 0 {
		t.Fatal(errs)
	}
	waitSize(t, s, "acme", 15)
	waitSize(t, s, "system", 4) // activated, default tenant and key, then rotated
	code, out2, errs := run(t, "", "verify", "-server", s.url(), "-vkey", oldKey, "-vkey", newKey)
	if code != 0 || strings.Count(out2, "ok log=") != 2 {
		t.Fatalf("verify after rotation: %d %s %s", code, out2, errs)
	}
	// The system log records the rotation.
	bundle := getOK(t, s.url()+"/ledger/system/tile/entries/000.p/4")
	entries, err := ledger.ParseEntryBundle(bundle)
	if err != nil || len(entries) != 4 || !bytes.Contains(entries[3], []byte(`"action":"rotated"`)) || !bytes.Contains(entries[3], []byte(newKey)) {
		t.Fatalf("system log: %v %q", err, entries)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, exitError, "Usage: aigw"},
		{[]string{"nope"}, exitError, `unknown command "nope"`},
		{[]string{"verify"}, exitError, "no trusted key"},
		{[]string{"verify", "-vkey", "garbage", t.TempDir()}, exitError, "verifier key"},
		{[]string{"proof", "-server", "http://127.0.0.1:1"}, exitError, "Usage: aigw proof"},
		{[]string{"export"}, exitError, "Usage: aigw export"},
		{[]string{"keys", "rotate"}, exitError, "unknown subcommand"},
		{[]string{"serve", "-config", "/nonexistent.yaml"}, exitError, "no such file"},
		{[]string{"version"}, exitOK, "aigw"},
	} {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			code, out, errs := run(t, "", tc.args...)
			if code != tc.code || !strings.Contains(out+errs, tc.want) {
				t.Errorf("aigw %v = %d\n%s%s\nwant %d and %q", tc.args, code, out, errs, tc.code, tc.want)
			}
		})
	}
}

func TestConfigFile(t *testing.T) {
	t.Setenv("AIGW_TEST_ORIGIN", "example.com/audit")
	dir := t.TempDir()
	path := filepath.Join(dir, "aigw.yaml")
	os.WriteFile(path, []byte("data_dir: "+dir+"\nledger:\n  origin: ${AIGW_TEST_ORIGIN}\n  partitions: 4\n"), 0o644)
	cfg, err := loadConfig(path)
	if err != nil || cfg.Ledger.Origin != "example.com/audit" || cfg.Ledger.Partitions != 4 || cfg.DataDir != dir {
		t.Fatalf("loadConfig = %+v, %v", cfg, err)
	}
	os.WriteFile(path, []byte("mcp:\n  session_timeout: 10m\n  tenant_idle_timeout: 90s\n"), 0o644)
	if cfg, err := loadConfig(path); err != nil || cfg.MCP.SessionTimeout != 10*time.Minute || cfg.MCP.TenantIdleTimeout != 90*time.Second {
		t.Fatalf("mcp timeouts: %+v, %v", cfg.MCP, err)
	}
	os.WriteFile(path, []byte("ledger:\n  linger: 2ms\n"), 0o644)
	if cfg, err := loadConfig(path); err != nil || cfg.Ledger.Linger != 2*time.Millisecond {
		t.Fatalf("ledger.linger: %v, %v", cfg.Ledger.Linger, err)
	}
	os.WriteFile(path, []byte("ledger:\n  sequence: []\n"), 0o644)
	if cfg, err := loadConfig(path); err != nil || cfg.Ledger.Sequence == nil || len(cfg.Ledger.Sequence) != 0 {
		t.Fatalf("ledger.sequence: [] must mean none (an empty, non-nil list), got %#v, %v", cfg.Ledger.Sequence, err)
	}
	os.WriteFile(path, []byte("ledger:\n  linger: 2s\n"), 0o644)
	if _, err := (&ledgerFlags{config: path}).load(); err == nil || !strings.Contains(err.Error(), "ledger.linger") {
		t.Fatalf("ledger.linger 2s accepted: %v", err)
	}
	os.WriteFile(path, []byte("ledger:\n  sequencer_process: true\n"), 0o644)
	if cfg, err := loadConfig(path); err != nil || !cfg.Ledger.SequencerProcess {
		t.Fatalf("ledger.sequencer_process: %+v, %v", cfg.Ledger, err)
	}
	os.WriteFile(path, []byte("ledger:\n  key: ${AIGW_UNSET_SECRET}\n"), 0o644)
	if _, err := loadConfig(path); err == nil || !strings.Contains(err.Error(), "AIGW_UNSET_SECRET") {
		t.Fatalf("unset variable: %v", err)
	}
	os.WriteFile(path, []byte("ledger:\n  bogus: 1\n"), 0o644)
	if _, err := loadConfig(path); err == nil {
		t.Fatal("unknown key accepted")
	}
	os.WriteFile(path, nil, 0o644)
	if _, err := loadConfig(path); err != nil {
		t.Fatalf("empty config: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A replica with ledger.sequence: [] answers, says at start that it
// sequences nothing, and leaves its events in JetStream for another process.
func TestServeSequencesNone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	config := filepath.Join(dir, "aigw.yaml")
	os.WriteFile(config, []byte("ledger:\n  sequence: []\n"), 0o600)
	data := filepath.Join(dir, "data")
	s := startServe(t, "-config", config, "-data-dir", data)
	if !strings.Contains(s.stderr.String(), "sequences no partition") {
		t.Fatalf("no warning that nothing is sequenced:\n%s", s.stderr.String())
	}
	if code, _, errs := run(t, jsonl("acme", 0, 3), "append", "-data-dir", data); code != 0 {
		t.Fatal(errs)
	}
	var health struct {
		Status string
		Ledger struct{ Partitions map[string]any }
	}
	if err := json.Unmarshal(getOK(t, s.url()+"/healthz"), &health); err != nil || health.Status != "ok" || len(health.Ledger.Partitions) != 0 {
		t.Fatalf("healthz = %+v, %v; want ok with no partitions", health, err)
	}
	resp, err := http.Get(s.url() + "/ledger/acme/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("log acme has a checkpoint although nothing sequences it")
	}
}

func TestReadToken(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	s := startServe(t, "-data-dir", data, "-read-token", "s3cret-read-token")
	vkey := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(data, "checkpoint.vkey")))))
	if code, _, errs := run(t, jsonl("acme", 0, 3), "append", "-data-dir", data); code != 0 {
		t.Fatal(errs)
	}
	resp, err := http.Get(s.url() + "/ledger/acme/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "authentication_error") {
		t.Fatalf("no token: %d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodGet, s.url()+"/ledger/acme/checkpoint", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %v %v", resp, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out, errs := run(t, "", "verify", "-server", s.url(), "-log", "acme", "-vkey", vkey, "-token", "s3cret-read-token")
		if code == 0 && strings.Contains(out, "size=3") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("verify with the token: %d %s %s", code, out, errs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _, _ := run(t, "", "verify", "-server", s.url(), "-log", "acme", "-vkey", vkey); code == 0 {
		t.Fatal("verify without the token passed")
	}
	// /healthz names the logs (the tenants) and their sizes only to the
	// holder of the read token, as /ledger/logs does.
	health := func(token string) (body string, sizes map[string]uint64) {
		auth := ""
		if token != "" {
			auth = "Bearer " + token
		}
		code, b := getAuth(t, s.url()+"/healthz", auth)
		var h struct {
			Status string
			Ledger struct{ Logs map[string]uint64 }
		}
		if code != http.StatusOK || json.Unmarshal(b, &h) != nil || h.Status != "ok" {
			t.Fatalf("healthz: %d %s", code, b)
		}
		return string(b), h.Ledger.Logs
	}
	waitFor(t, "the log's size in /healthz with the read token", func() bool {
		_, sizes := health("s3cret-read-token")
		return sizes["acme"] == 3
	})
	for _, token := range []string{"", "wrong"} {
		if body, sizes := health(token); sizes != nil || strings.Contains(body, "acme") {
			t.Fatalf("healthz with token %q shows the logs: %s", token, body)
		}
	}
	if strings.Contains(s.stderr.String(), "s3cret-read-token") {
		t.Fatal("the read token appears in serve's log")
	}
}

// A NATS URL's credentials never reach a log line or an error.
func TestRedactNATS(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"nats://user:hunter2@nats.internal:4222":       "nats://nats.internal:4222",
		"nats://s3cr3t-token@a:4222, tls://u:p@b:4222": "nats://a:4222,tls://b:4222",
		"127.0.0.1:4222":          "nats://127.0.0.1:4222",
		"nats://a:4222?token=abc": "nats://a:4222",
	} {
		if got := redactNATS(in); got != want {
			t.Errorf("redactNATS(%q) = %q; want %q", in, got, want)
		}
	}
	code, _, errs := run(t, jsonl("acme", 0, 1), "append", "-data-dir", t.TempDir(), "-nats-url", "nats://user:hunter2@127.0.0.1:1")
	if code == 0 || !strings.Contains(errs, "connect to NATS at nats://127.0.0.1:1") || strings.Contains(errs, "hunter2") {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
}
