package evidence_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/ledger/sequencer"
	"aigw/ledger/signer"
	"aigw/ledger/sqlite"
)

// fixture is a deterministic ledger: fixed key, fixed clock, fixed event
// ids, and the exact shape of its traffic.
type fixture struct {
	store  *sqlite.Store
	signer *signer.Signer
	seq    *sequencer.Sequencer
	n      int // events made so far (ids and times derive from it)
	base   time.Time
	batch  map[string][]sequencer.Record
	want   map[string]uint64 // population id → count in the period
	// mid, when set, adds events of a test in the middle of the period.
	mid func(t testing.TB, at time.Time)
}

var (
	periodFrom = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	periodTo   = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
)

func fixedSigner(t testing.TB) *signer.Signer {
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, "aigw evidence golden test key!!")
	s, err := signer.FromEd25519("aigw-test", ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "ledger.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sg := fixedSigner(t)
	seq, err := sequencer.New(sequencer.Config{Store: st, Signer: sg, OriginPrefix: "aigw.test/ledger"})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{store: st, signer: sg, seq: seq, base: periodFrom.Add(-time.Hour), batch: map[string][]sequencer.Record{}, want: map[string]uint64{}}
}

// id returns the n-th fixed UUIDv7.
func (f *fixture) id() string {
	f.n++
	return fmt.Sprintf("019a3c00-0000-7000-8000-%012x", f.n)
}

// event adds an event to the pending batch of its log, at time at.
func (f *fixture) event(t testing.TB, log, kind string, at time.Time, trace string, actor ledger.Actor, attrs map[string]any) {
	t.Helper()
	ev := &ledger.Event{ID: f.id(), Tenant: log, Kind: kind, Time: at, Actor: actor, TraceID: trace, Policy: "policy-v1", Attrs: attrs}
	e, err := ev.Entry()
	if err != nil {
		t.Fatal(err)
	}
	f.batch[log] = append(f.batch[log], sequencer.Record{Entry: e})
}

// document adds an event with a payload (a fixed salt, so that the ledger
// is deterministic).
func (f *fixture) document(t testing.TB, log, kind string, at time.Time, actor ledger.Actor, attrs map[string]any, doc []byte) {
	t.Helper()
	salt := make([]byte, ledger.SaltSize)
	copy(salt, "fixed salt of the golden fixture")
	c, _ := ledger.Commit(doc, salt)
	ev := &ledger.Event{ID: f.id(), Tenant: log, Kind: kind, Time: at, Actor: actor, Policy: "policy-v1", Attrs: attrs, PayloadSHA256: c}
	e, err := ev.Entry()
	if err != nil {
		t.Fatal(err)
	}
	f.batch[log] = append(f.batch[log], sequencer.Record{Entry: e, Payload: doc, Salt: salt})
}

// flush appends the pending batches (each a checkpoint).
func (f *fixture) flush(t testing.TB) {
	t.Helper()
	for _, log := range []string{"acme", "globex", ledger.SystemLog} {
		if recs := f.batch[log]; len(recs) > 0 {
			if _, err := f.seq.Append(context.Background(), log, recs); err != nil {
				t.Fatal(err)
			}
			f.batch[log] = nil
		}
	}
}

func trace(i int) string { return fmt.Sprintf("%032x", i+1) }

// call records one call of tenant log at time at: request, route, attempts
// (failed ones first), and its outcome.
func (f *fixture) call(t testing.TB, log string, i int, at time.Time, failed int, status int, code string) {
	key := ledger.Actor{KeyID: "key_" + log, AgentID: "agent-1"}
	tr := trace(i)
	f.event(t, log, ledger.KindRequest, at, tr, key, map[string]any{"endpoint": "chat", "model": "gpt-4o-mini", "stream": false, "bytes": 100})
	if status >= 400 && status < 500 && failed < 0 {
		// refused at admission: no route
		f.event(t, log, ledger.KindError, at, tr, key, map[string]any{"status": status, "error_type": "invalid_request_error", "error_code": code, "error": "refused", "latency_us": 10, "attempts": 0})
		return
	}
	f.event(t, log, ledger.KindRoute, at, tr, key, map[string]any{"route": "gpt-4o-mini", "strategy": "ordered", "candidates": []any{"a", "b"}, "reason": "ordered"})
	for n := 1; n <= failed; n++ {
		f.event(t, log, ledger.KindAttempt, at, tr, key, map[string]any{"n": n, "target": "a", "provider": "openai", "model": "m", "outcome": "error", "duration_us": 5, "status": 503, "next": "b"})
	}
	f.event(t, log, ledger.KindAttempt, at, tr, key, map[string]any{"n": failed + 1, "target": "b", "provider": "openai", "model": "m", "outcome": "ok", "duration_us": 5})
	f.event(t, log, ledger.KindResponse, at, tr, key, map[string]any{"status": 200, "latency_us": 20, "attempts": failed + 1, "target": "b", "provider": "openai", "model": "m",
		"tokens": map[string]any{"prompt": 5, "completion": 7, "total": 12}, "cost_usd": "0.0001"})
}

// build writes the fixture's traffic: before, inside and after the period.
// The counts of the period are in f.want.
func (f *fixture) build(t testing.TB) {
	admin := ledger.Actor{KeyID: "admin"}
	sys := func(at time.Time, attrs map[string]any) {
		f.event(t, ledger.SystemLog, ledger.KindAdmin, at, "", admin, attrs)
	}
	// Before the period: tenant creation, a key, some calls.
	at := periodFrom.Add(-2 * time.Hour)
	f.event(t, ledger.SystemLog, ledger.KindKey, at, "", ledger.Actor{}, map[string]any{"action": "activate", "vkey": "aigw-test+00000000+AQ=="})
	sys(at, map[string]any{"action": "tenant.create", "tenant": "acme", "name": "Acme"})
	sys(at, map[string]any{"action": "key.create", "tenant": "acme", "key_id": "key_acme"})
	sys(at, map[string]any{"action": "tenant.create", "tenant": "globex", "name": "Globex"})
	for i := 0; i < 5; i++ {
		f.call(t, "acme", 1000+i, at.Add(time.Duration(i)*time.Second), 0, 200, "")
	}
	f.flush(t)

	// The period: calls in batches, with failures, fallbacks and refusals.
	calls, outcomes, refusals, failures, fallbacks := 0, 0, 0, 0, 0
	for i := 0; i < 600; i++ {
		at := periodFrom.Add(time.Duration(i) * 2 * time.Minute)
		switch {
		case i%50 == 7:
			f.call(t, "acme", i, at, -1, 401, "invalid_api_key")
			refusals++
		case i%40 == 3:
			f.call(t, "acme", i, at, -1, 403, "route_stopped")
			refusals++
		case i%10 == 5:
			f.call(t, "acme", i, at, 1, 200, "")
			failures++
			fallbacks++
		default:
			f.call(t, "acme", i, at, 0, 200, "")
		}
		calls++
		outcomes++
		// globex's calls never show in acme's package.
		if i%100 == 0 {
			f.call(t, "globex", i, at, 1, 200, "")
		}
		if i%25 == 24 {
			f.flush(t)
		}
	}
	mid := periodFrom.Add(12 * time.Hour)
	sys(mid, map[string]any{"action": "key.create", "tenant": "acme", "key_id": "key_acme2"})
	sys(mid, map[string]any{"action": "key.revoke", "tenant": "acme", "key_id": "key_acme"})
	sys(mid, map[string]any{"action": "tenant.update", "tenant": "acme", "disabled": false})
	sys(mid, map[string]any{"action": "key.create", "tenant": "globex", "key_id": "key_globex"})
	person := ledger.Actor{KeyID: "admin"}
	f.event(t, "acme", "approval", mid, trace(9999), person, map[string]any{"subject": "trace:" + trace(9999), "subject_type": "trace", "decision": "approved", "by": "ana@acme.example", "reason": "transfer checked"})
	f.event(t, "acme", "approval", mid, "", person, map[string]any{"subject": "change-42", "subject_type": "change", "decision": "rejected", "by": "bo@acme.example", "reason": "no ticket"})
	f.event(t, "acme", "oversight", mid, "", person, map[string]any{"action": "stop", "target_type": "agent", "target": "agent-9", "by": "ana@acme.example", "reason": "loop"})
	f.event(t, "acme", "oversight", mid, "", person, map[string]any{"action": "resume", "target_type": "agent", "target": "agent-9", "by": "ana@acme.example", "reason": "fixed"})
	f.event(t, "acme", "disclosure", mid, "", ledger.Actor{KeyID: "key_acme2", AgentID: "agent-1"}, map[string]any{"channel": "chat", "method": "text", "session": "s-1", "text_sha256": fmt.Sprintf("%064x", 1)})
	f.event(t, "acme", "incident", mid, "", person, map[string]any{"incident_id": "inc-1", "action": "open", "severity": "serious", "title": "PII in output", "aware_at": "2026-11-01T12:00:00Z", "report_due": "2026-11-16T12:00:00Z", "by": "ana@acme.example"})
	f.document(t, "acme", "attestation", mid, person, map[string]any{"framework": "nist-ai-rmf", "controls": []any{"govern-1.1", "govern-2.2"}, "title": "Legal register reviewed", "statement": "We maintain a register.", "by": "cfo@acme.example", "document_name": "register.txt"}, []byte("AI legal register, reviewed 2026-11-01.\n"))
	f.event(t, ledger.SystemLog, "attestation", mid, "", person, map[string]any{"framework": "fedramp-moderate", "controls": []any{"sc-8"}, "title": "TLS everywhere", "statement": "TLS 1.2+ on every connection.", "by": "ciso@acme.example"})
	f.event(t, ledger.SystemLog, ledger.KindErasure, mid, "", ledger.Actor{AgentID: "dpo"}, map[string]any{"log": "acme", "index": 3, "reason": "data subject request", "what": "payload and salt"})
	if f.mid != nil {
		f.mid(t, mid)
	}
	f.flush(t)

	// After the period (past the skew): closes it.
	after := periodTo.Add(10 * time.Minute)
	for i := 0; i < 3; i++ {
		f.call(t, "acme", 5000+i, after, 0, 200, "")
	}
	sys(after, map[string]any{"action": "key.create", "tenant": "acme", "key_id": "key_acme3"})
	f.flush(t)

	f.want = map[string]uint64{
		"calls": uint64(calls), "call-outcomes": uint64(outcomes), "refusals": uint64(refusals),
		"provider-failures": uint64(failures), "fallbacks": uint64(fallbacks), "blocked-requests": 0,
		"guardrail-decisions": 0, "tool-calls": 0, "admin-changes": 3, "key-events": 2,
		"approvals": 2, "oversight": 2, "disclosures": 1, "incidents": 1, "attestations": 2, "erasures": 1,
	}
}
