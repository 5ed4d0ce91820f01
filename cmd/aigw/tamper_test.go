package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aigw/ledger"
	"aigw/ledger/ledgertest"
	"aigw/ledger/postgres"
	"aigw/ledger/sequencer"
	"aigw/ledger/signer"

	"github.com/jackc/pgx/v5"
)

const tamperOrigin = "aigw.test/ledger"

// tamperLedger is a PostgreSQL ledger of 600 entries in log "acme" (three
// batches of 200; every tenth entry has a payload) and 50 in "beta", plus the
// checkpoint an auditor kept at size 400.
type tamperLedger struct {
	dsn     string
	vkey    string
	key     *signer.Signer
	kept400 string // path of the checkpoint an auditor kept at size 400
	kept600 []byte // the checkpoint at size 600, fetched by an auditor before any attack
	head500 ledger.Head
	dir     string
}

func buildTamperLedger(t *testing.T, key *signer.Signer, seed string) *tamperLedger {
	t.Helper()
	ctx := context.Background()
	dsn := ledgertest.PostgresDSN(t)
	store, err := postgres.Open(ctx, postgres.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	seq, err := sequencer.New(sequencer.Config{Store: store, Signer: key, OriginPrefix: tamperOrigin})
	if err != nil {
		t.Fatal(err)
	}
	tl := &tamperLedger{dsn: dsn, vkey: key.VerifierKey(), key: key, dir: t.TempDir()}
	add := func(log string, from, n int) {
		recs := make([]sequencer.Record, n)
		for i := range recs {
			ev := &ledger.Event{ID: ledger.NewEventID(), Tenant: log, Kind: ledger.KindRequest, Time: time.Now(),
				Attrs: map[string]any{"n": from + i, "model": "model-" + seed}}
			if (from+i)%10 == 5 {
				payload := []byte(fmt.Sprintf("prompt %d", from+i))
				ev.PayloadSHA256, recs[i].Salt = ledger.Commit(payload, nil)
				recs[i].Payload = payload
			}
			if recs[i].Entry, err = ev.Entry(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := seq.Append(ctx, log, recs); err != nil {
			t.Fatal(err)
		}
	}
	add("acme", 0, 200)
	add("acme", 200, 200)
	h, err := store.Head(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	tl.kept400 = filepath.Join(tl.dir, "checkpoint.400")
	if err := os.WriteFile(tl.kept400, h.Checkpoint, 0o644); err != nil {
		t.Fatal(err)
	}
	add("acme", 400, 100)
	if tl.head500, err = store.Head(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	add("acme", 500, 100)
	if h, err = store.Head(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	tl.kept600 = h.Checkpoint
	add("beta", 0, 50)
	return tl
}

// superuser runs SQL as the PostgreSQL superuser with the ledger's
// append-only triggers disabled: the attacker verify must still catch.
func (tl *tamperLedger) superuser(t *testing.T, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, tl.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, table := range []string{"entries", "tiles", "checkpoints", "logs", "payloads"} {
		if _, err := conn.Exec(ctx, "ALTER TABLE "+table+" DISABLE TRIGGER ALL"); err != nil {
			t.Fatalf("disable triggers on %s: %v", table, err)
		}
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("tamper %q: %v", s, err)
		}
	}
}

func (tl *tamperLedger) verify(t *testing.T, extra ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
	args := append([]string{"verify", "-database-url", tl.dsn, "-vkey", tl.vkey}, extra...)
	code := m.Run(context.Background(), args)
	return code, out.String() + errb.String()
}

const acmeID = "(SELECT id FROM logs WHERE name = 'acme')"

func TestTamperDetectedByVerify(t *testing.T) {
	t.Parallel()
	key, _, err := signer.Generate(tamperOrigin)
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := signer.Generate(tamperOrigin)
	forgedCheckpoint := func(t *testing.T, tl *tamperLedger) string {
		// The same checkpoint body, re-signed with a key that is not trusted.
		body, err := ledger.SplitNote(tl.head500.Checkpoint)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := ledger.ParseCheckpointBody(body)
		if err != nil {
			t.Fatal(err)
		}
		cp.Size, cp.Root = 600, ledger.LeafHash([]byte("forged"))
		signed, err := ledger.SignCheckpoint(cp, other)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf(`\x%x`, signed)
	}
	for _, tc := range []struct {
		name  string
		sql   func(t *testing.T, tl *tamperLedger) []string
		args  []string
		want  string // substring of the FAIL line
		clean bool   // verify without extra args passes (the attack is invisible without the kept checkpoint)
	}{
		{name: "FlipByteOfEntry7", want: "kind=entry index=7",
			sql: func(*testing.T, *tamperLedger) []string {
				return []string{`UPDATE entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'), '"n":7}', '"n":8}'), 'UTF8') WHERE log_id = ` + acmeID + ` AND idx = 7`}
			}},
		{name: "ChangePayloadCommitment", want: "kind=entry index=15",
			sql: func(*testing.T, *tamperLedger) []string {
				return []string{`UPDATE entries SET entry = convert_to(regexp_replace(convert_from(entry, 'UTF8'), '"payload_sha256":"[0-9a-f]{64}"', '"payload_sha256":"' || repeat('ab', 32) || '"'), 'UTF8') WHERE log_id = ` + acmeID + ` AND idx = 15`}
			}},
		{name: "ReplacePayload", args: []string{"-payloads"}, want: "kind=payload index=25",
			sql: func(*testing.T, *tamperLedger) []string {
				return []string{`UPDATE payloads SET data = 'forged prompt' WHERE log_id = ` + acmeID + ` AND idx = 25`}
			}},
		{name: "DeleteEntry300", want: "index=300",
			sql: func(*testing.T, *tamperLedger) []string {
				return []string{`DELETE FROM entries WHERE log_id = ` + acmeID + ` AND idx = 300`}
			}},
		{name: "SwapEntries10And11", want: "index=10",
			sql: func(*testing.T, *tamperLedger) []string {
				return []string{`UPDATE entries e SET entry = o.entry FROM entries o WHERE e.log_id = ` + acmeID + ` AND o.log_id = e.log_id AND ((e.idx = 10 AND o.idx = 11) OR (e.idx = 11 AND o.idx = 10))`}
			}},
		{name: "DropTail", want: "index=550",
			sql: func(*testing.T, *tamperLedger) []string {
				return []string{`DELETE FROM entries WHERE log_id = ` + acmeID + ` AND idx >= 550`}
			}},
		{name: "ReplaceTile", want: "kind=tile tile=0/1",
			sql: func(*testing.T, *tamperLedger) []string {
				return []string{`UPDATE tiles SET hashes = overlay(hashes placing '\xdeadbeef'::bytea from 33 for 4) WHERE log_id = ` + acmeID + ` AND level = 0 AND idx = 1`}
			}},
		{name: "CheckpointSignedByAnotherKey", want: "kind=signature",
			sql: func(t *testing.T, tl *tamperLedger) []string {
				return []string{`UPDATE logs SET checkpoint = '` + forgedCheckpoint(t, tl) + `'::bytea WHERE name = 'acme'`}
			}},
		{name: "RollbackSeenWithKeptCheckpoint", want: "kind=size", clean: true,
			sql: func(t *testing.T, tl *tamperLedger) []string {
				// A careful attacker rewinds everything to a consistent, validly
				// signed older state (size 500); only a checkpoint the auditor
				// kept from later reveals it.
				h := tl.head500
				return []string{
					`DELETE FROM entries WHERE log_id = ` + acmeID + ` AND idx >= 500`,
					`DELETE FROM checkpoints WHERE log_id = ` + acmeID + ` AND size > 500`,
					`DELETE FROM payloads WHERE log_id = ` + acmeID + ` AND idx >= 500`,
					`UPDATE tiles SET hashes = substr(hashes, 1, 32 * 244) WHERE log_id = ` + acmeID + ` AND level = 0 AND idx = 1`,
					`DELETE FROM tiles WHERE log_id = ` + acmeID + ` AND level = 0 AND idx = 2`,
					`UPDATE tiles SET hashes = substr(hashes, 1, 32 * 1) WHERE log_id = ` + acmeID + ` AND level = 1 AND idx = 0`,
					fmt.Sprintf(`UPDATE logs SET size = 500, chain = '\x%x', compact_range = '\x%x', checkpoint = '\x%x' WHERE name = 'acme'`,
						h.Chain[:], ledger.RangeBytes(h.Range), h.Checkpoint),
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tl := buildTamperLedger(t, key, "a")
			if code, out := tl.verify(t, append([]string{"-log", "acme"}, tc.args...)...); code != 0 {
				t.Fatalf("untampered ledger: exit %d\n%s", code, out)
			}
			tl.superuser(t, tc.sql(t, tl)...)
			args := append([]string{"-log", "acme"}, tc.args...)
			if tc.clean {
				if code, out := tl.verify(t, args...); code != 0 {
					t.Fatalf("consistent rollback without a kept checkpoint: exit %d\n%s", code, out)
				}
				kept600 := filepath.Join(tl.dir, "checkpoint.600")
				if err := os.WriteFile(kept600, tl.kept600, 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "-old", kept600)
			}
			code, out := tl.verify(t, args...)
			if code != exitMismatch || !strings.Contains(out, "FAIL log=acme") || !strings.Contains(out, tc.want) {
				t.Fatalf("verify after %s: exit %d, want %d with %q in:\n%s", tc.name, code, exitMismatch, tc.want, out)
			}
			t.Logf("aigw verify: %s", out)
			// The other tenant's log is untouched and still verifies.
			if code, out := tl.verify(t, "-log", "beta"); code != 0 {
				t.Errorf("log beta after tampering with acme: exit %d\n%s", code, out)
			}
		})
	}

	t.Run("ForkedView", func(t *testing.T) {
		t.Parallel()
		// The operator shows an auditor one history (kept at size 400) and
		// the world another, both signed with the log's key.
		seen := buildTamperLedger(t, key, "a")
		shown := buildTamperLedger(t, key, "b")
		code, out := shown.verify(t, "-log", "acme", "-old", seen.kept400)
		if code != exitMismatch || !strings.Contains(out, "kind=fork") {
			t.Fatalf("forked view: exit %d, want kind=fork in:\n%s", code, out)
		}
		// And the honest history extends the checkpoint the auditor kept.
		if code, out := seen.verify(t, "-log", "acme", "-old", seen.kept400); code != 0 || !strings.Contains(out, "extends=400") {
			t.Fatalf("honest history: exit %d\n%s", code, out)
		}
	})
}
