package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aigw/evidence"
	"aigw/gateway/providertest"
	"aigw/ledger/signer"
)

// TestEvidenceEndToEnd: traffic of known shape goes through the running
// gateway (calls, a provider failure with its fallback, refusals, approvals,
// oversight, a disclosure, an incident, an attestation, key changes); the
// assessor package exported for the period holds exactly those
// populations, and `aigw verify` accepts it, as a directory and as an
// archive, and names what was changed in a tampered copy.
func TestEvidenceEndToEnd(t *testing.T) {
	a, b := providertest.NewOpenAI(t), providertest.NewOpenAI(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfgPath := filepath.Join(dir, "aigw.yaml")
	os.WriteFile(cfgPath, []byte(openAIConfig(a, b)+`
guardrails:
  policies:
    - name: p
      checks:
        - {id: codewords, type: content, stages: [input], action: block, phrases: ["project zephyr"]}
`), 0o600)
	s := startServe(t, "-config", cfgPath, "-data-dir", data)
	var h struct {
		VKey string `json:"vkey"`
	}
	json.Unmarshal(getOK(t, s.url()+"/healthz"), &h)
	g := &gwProc{serveProc: s, vkey: h.VKey, traces: map[string][]traceWant{}}

	key := g.newKey(t, "acme") // before the period
	other := g.newKey(t, "globex")
	time.Sleep(20 * time.Millisecond)
	from := time.Now().UTC()

	chat := func(key, agent string) int {
		req, _ := http.NewRequest("POST", g.url()+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		if agent != "" {
			req.Header.Set("X-Aigw-Agent", agent)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const calls = 12
	for i := range calls {
		if i == 3 {
			a.Push(providertest.Fault{Status: 503}) // one failed attempt, then the fallback
		}
		if code := chat(key, "agent-1"); code != 200 {
			t.Fatalf("call %d: %d", i, code)
		}
	}
	chat(other, "") // another tenant's traffic: never in acme's package
	// A call a guardrail blocks.
	if code, _, _ := rawCall(t, "POST", g.url()+"/v1/chat/completions", key, "application/json", chatBody("gpt-4o-mini", "what is project zephyr?", false)); code != 400 {
		t.Fatalf("blocked call: %d", code)
	}
	// Refusals: invalid input, and a stopped agent.
	if code, _, _ := rawCall(t, "POST", g.url()+"/v1/embeddings", key, "application/json", `{"model":"text-embedding-3-small","input":[]}`); code != 400 {
		t.Fatalf("empty embeddings input: %d", code)
	}
	g.record(t, "/admin/tenants/acme/oversight", `{"action":"stop","target_type":"agent","target":"agent-9","by":"Ada","reason":"looping"}`)
	if code := chat(key, "agent-9"); code != 403 {
		t.Fatalf("stopped agent: %d", code)
	}
	g.record(t, "/admin/tenants/acme/oversight", `{"action":"resume","target_type":"agent","target":"agent-9","by":"Ada","reason":"fixed"}`)
	g.record(t, "/admin/tenants/acme/approvals", `{"subject":"deploy v2","subject_type":"deployment","decision":"approved","by":"Ada","reason":"tests pass"}`)
	g.record(t, "/admin/tenants/acme/approvals", `{"subject":"refund tool","subject_type":"tool_call","decision":"rejected","by":"Bo","reason":"over limit"}`)
	g.record(t, "/admin/tenants/acme/disclosures", `{"channel":"chat","method":"banner","text":"You are talking to an AI assistant.","by":"Ada"}`)
	g.record(t, "/admin/tenants/acme/incidents", `{"action":"open","severity":"serious","title":"PII in an answer","aware_at":"`+from.Format(time.RFC3339)+`","by":"Ada"}`)
	g.record(t, "/admin/attestations", `{"tenant":"acme","framework":"nist-ai-rmf","controls":["GOVERN 1.1"],"title":"Legal register","statement":"We keep a register of the AI laws that apply to us.","by":"Cy","document_name":"register.txt","document_base64":"UmVnaXN0ZXIgb2YgQUkgbGF3cwo="}`)
	second := g.newKey(t, "acme") // a key event in the period
	_ = second
	time.Sleep(20 * time.Millisecond)
	to := time.Now().UTC()
	time.Sleep(1100 * time.Millisecond) // past to + skew
	// After the period: closes it in both logs.
	chat(key, "")
	g.newKey(t, "acme")
	waitSize(t, g.serveProc, "acme", 1)

	pkg := filepath.Join(dir, "pkg")
	args := []string{"export", "-framework", "nist-ai-rmf", "-tenant", "acme", "-from", from.Format(time.RFC3339Nano),
		"-to", to.Format(time.RFC3339Nano), "-skew", "1s", "-samples", "5", "-data-dir", data}
	// The log may still be sequencing the last call: export until both
	// logs hold an entry past the period (the timestamps rule says so).
	var r evidence.Report
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		os.RemoveAll(pkg)
		code, out, errs := run(t, "", append(args, "-out", pkg)...)
		if code != 0 {
			t.Fatalf("export: %d %s %s", code, out, errs)
		}
		raw, err := os.ReadFile(filepath.Join(pkg, "evidence", "report.json"))
		if err != nil {
			t.Fatal(err)
		}
		r = evidence.Report{}
		json.Unmarshal(raw, &r)
		closed, why := true, ""
		for _, l := range r.Logs {
			if !l.Closed {
				closed, why = false, "log "+l.Log+" not closed"
			}
		}
		if closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the period never closed: %s\n%s", why, out)
		}
	}
	want := map[string]uint64{
		"calls": calls + 3, "call-outcomes": calls + 3, "refusals": 3, "provider-failures": 1, "fallbacks": 1,
		"approvals": 2, "oversight": 2, "disclosures": 1, "incidents": 1, "attestations": 1,
		"admin-changes": 1, "key-events": 1, "blocked-requests": 1, "guardrail-decisions": calls + 1, "erasures": 0,
	}
	for _, p := range r.Populations {
		if w, ok := want[p.ID]; ok && p.Count != w {
			t.Errorf("population %s: %d, want %d", p.ID, p.Count, w)
		}
	}
	if len(r.Documents) != 1 || r.Documents[0].File == "" {
		t.Errorf("documents: %+v, want the attested register", r.Documents)
	} else if b, _ := os.ReadFile(filepath.Join(pkg, r.Documents[0].File)); string(b) != "Register of AI laws\n" {
		t.Errorf("document: %q", b)
	}
	for _, c := range r.Controls {
		if c.ID == "GOVERN 1.1" && c.Status != "satisfied" {
			t.Errorf("GOVERN 1.1 (attested through the admin API): %s %s", c.Status, c.Reason)
		}
	}
	for _, f := range []string{"oscal/assessment-results.json", "oscal/component-definition.json", "oscal/system-security-plan.json", "catalog.json", "manifest.sig"} {
		if _, err := os.Stat(filepath.Join(pkg, f)); err != nil {
			t.Errorf("package lacks %s", f)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(pkg, "manifest.json"))
	if strings.Contains(string(raw), "globex") {
		t.Error("acme's package names globex")
	}

	if code, out, errs := run(t, "", "verify", pkg, "-vkey", g.vkey); code != 0 || !strings.HasPrefix(out, "ok package") {
		t.Fatalf("verify package: %d %s %s", code, out, errs)
	}
	archive := filepath.Join(dir, "pkg.tar.gz")
	if code, out, errs := run(t, "", append(args, "-out", archive)...); code != 0 {
		t.Fatalf("export archive: %d %s %s", code, out, errs)
	}
	if code, out, errs := run(t, "", "verify", archive, "-vkey", g.vkey); code != 0 {
		t.Fatalf("verify archive: %d %s %s", code, out, errs)
	}
	// controls evaluates without writing.
	if code, out, errs := run(t, "", "controls", "-framework", "eu-ai-act", "-tenant", "acme", "-from", from.Format(time.RFC3339Nano),
		"-to", to.Format(time.RFC3339Nano), "-skew", "1s", "-data-dir", data); code != 0 || !strings.Contains(out, "Art. 14") {
		t.Fatalf("controls: %d %s %s", code, out, errs)
	}

	// Tampered copies: verify fails (exit 1) and names the file.
	var m evidence.Manifest
	json.Unmarshal(raw, &m)
	if len(m.Samples) < 2 {
		t.Fatalf("want at least two samples, got %d", len(m.Samples))
	}
	other2, _, _ := signer.Generate("aigw.local/ledger")
	for _, tc := range []struct {
		name, want string
		tamper     func(dir string)
	}{
		{"evidence byte", "populations/approvals.jsonl", func(d string) {
			p := filepath.Join(d, "populations", "approvals.jsonl")
			b, _ := os.ReadFile(p)
			b[10] ^= 1
			os.WriteFile(p, b, 0o644)
		}},
		{"dropped file", "oscal/assessment-results.json", func(d string) {
			os.Remove(filepath.Join(d, "oscal", "assessment-results.json"))
		}},
		{"swapped proof", m.Samples[0].Proof, func(d string) {
			x, _ := os.ReadFile(filepath.Join(d, filepath.FromSlash(m.Samples[1].Proof)))
			os.WriteFile(filepath.Join(d, filepath.FromSlash(m.Samples[0].Proof)), x, 0o644)
		}},
		{"re-signed with another key", "manifest.sig", func(d string) {
			mb, _ := os.ReadFile(filepath.Join(d, "manifest.json"))
			sig, err := evidence.SignManifest(mb, m.PackageID, other2)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(d, "manifest.sig"), sig, 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "pkg")
			copyDir(t, pkg, d)
			tc.tamper(d)
			code, out, errs := run(t, "", "verify", d, "-vkey", g.vkey)
			if code != 1 || !strings.Contains(out, tc.want) {
				t.Fatalf("verify of a package with a %s: exit %d, %s %s (want it to name %s)", tc.name, code, out, errs, tc.want)
			}
		})
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(fmt.Errorf("copy %s: %w", from, err))
	}
}
