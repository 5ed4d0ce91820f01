package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"aigw/ledger"
	"aigw/usage"
	"aigw/verify"

	"golang.org/x/mod/sumdb/note"
)

// UsageCommand produces usage statements from the ledger and verifies them.
type UsageCommand struct{ *Main }

func (c *UsageCommand) usage() {
	fmt.Fprint(c.Stderr, `Usage:
  aigw usage statement -tenant T -from D1 -to D2 [-team X] [-by key,agent] [-format json|csv] [-o FILE] [store flags]
  aigw usage verify STATEMENT.json [-vkey KEY | -vkey-file F] [-ledger DIR_OR_DB | -server URL]

A usage statement adds up a tenant's calls of a period [from, to) from the
ledger, per provider, upstream model and price version (and per team, key
or agent with -by), in exact dollars, reconciles budget counters with the
settlements, names the signed checkpoint that covers it, and is signed with
the ledger's checkpoint key (usage/STATEMENT.md). 'aigw usage verify' checks
the signature and, with -ledger or -server, recomputes the statement from
the log and verifies the log: it names the first line that differs.
Run 'aigw usage statement -h' or 'aigw usage verify -h' for the flags.
`)
}

func (c *UsageCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		c.usage()
		return flag.ErrHelp
	}
	switch args[0] {
	case "statement":
		return c.statement(ctx, args[1:])
	case "verify":
		return c.verify(ctx, args[1:])
	case "help", "-h", "-help", "--help":
		c.usage()
		return nil
	default:
		c.usage()
		return fmt.Errorf("usage: unknown subcommand %q", args[0])
	}
}

// statement is `aigw usage statement`.
func (c *UsageCommand) statement(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("aigw usage statement", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	var lf ledgerFlags
	lf.register(fs)
	tenant := fs.String("tenant", "", "tenant (its log) (required)")
	from := fs.String("from", "", "period start, inclusive (2026-11-01 or RFC 3339) (required)")
	to := fs.String("to", "", "period end, exclusive (2026-12-01 or RFC 3339) (required)")
	team := fs.String("team", "", "only the calls and budget settlements of this team")
	by := fs.String("by", "", "further grouping of the lines, comma-separated: team, key, agent")
	format := fs.String("format", "json", "json (the signed statement) or csv (its lines, unsigned)")
	out := fs.String("o", "", "output file (default: standard output)")
	skew := fs.Duration("skew", usage.DefaultSkew, "how far entry times may run out of index order")
	workers := fs.Int("workers", 0, "parallel readers (default: GOMAXPROCS)")
	fs.Usage = func() {
		fmt.Fprint(c.Stderr, `Usage: aigw usage statement -tenant T -from D1 -to D2 [-team X] [-by key,agent] [-format json|csv] [-o FILE] [store flags]

Computes the tenant's usage statement for [from, to) from the ledger (the
data directory's SQLite, or -database-url), after verifying the log up to
its latest checkpoint, and signs it with the ledger's checkpoint key. The
statement cites the first checkpoint after the period's end; if the log has
no entry dated after to+skew yet, the period is not closed and the statement
says so (period_closed: false). -format csv writes the same lines and totals
as CSV (not signed: the JSON is the statement).
`)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || *tenant == "" || *from == "" || *to == "" {
		fs.Usage()
		return flag.ErrHelp
	}
	if *format != "json" && *format != "csv" {
		return fmt.Errorf("-format %q: want json or csv", *format)
	}
	p := usage.Params{Tenant: *tenant, Team: *team, Skew: *skew, Workers: *workers}
	if p.From, err = parsePeriodTime("from", *from); err != nil {
		return err
	}
	if p.To, err = parsePeriodTime("to", *to); err != nil {
		return err
	}
	for _, d := range strings.Split(*by, ",") {
		if d = strings.TrimSpace(d); d != "" {
			p.By = append(p.By, d)
		}
	}
	if lf.origin != "" {
		p.Origin = ledger.Origin(lf.origin, *tenant)
	}
	cfg, store, err := lf.openStore(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	if cfg.Ledger.Key == "" {
		if _, err := os.Stat(cfg.keyPath()); err != nil {
			return fmt.Errorf("the statement is signed with the ledger's checkpoint key, and there is none at %s: %w", cfg.keyPath(), err)
		}
	}
	s, err := loadSigner(ctx, cfg, discardLogger())
	if err != nil {
		return err
	}
	vs, err := trustedVerifiers(cfg)
	if err != nil {
		return err
	}
	p.Verifiers = note.VerifierList(append(vs, s.Verifier())...)
	start := time.Now()
	st, err := usage.Compute(ctx, verify.StoreSource(store), p)
	var mis *verify.MismatchError
	if errors.As(err, &mis) {
		return mismatchExit{err}
	}
	if err != nil {
		return err
	}
	if err := usage.Sign(st, s); err != nil {
		return err
	}
	var doc bytes.Buffer
	if *format == "csv" {
		err = st.WriteCSV(&doc)
	} else {
		var b []byte
		b, err = st.JSON()
		doc.Write(b)
	}
	if err != nil {
		return err
	}
	summary := fmt.Sprintf("statement tenant=%s team=%q period=[%s, %s) lines=%d calls=%d cost_usd=%s budgets=%s checkpoint=%d closed=%v anomalies=%d in %s",
		st.Tenant, st.Team, st.From, st.To, len(st.Lines), st.Totals.Calls, st.Totals.CostUSD, st.Budgets.Status,
		st.Ledger.Checkpoint.Size, st.Ledger.PeriodClosed, st.Ledger.Anomalies, time.Since(start).Round(time.Millisecond))
	if *out == "" {
		_, err := c.Stdout.Write(doc.Bytes())
		fmt.Fprintln(c.Stderr, summary)
		return err
	}
	if err := writeFileAtomic(*out, doc.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "%s written to %s\n", summary, *out)
	if !st.Ledger.PeriodClosed {
		fmt.Fprintln(c.Stderr, "note: the period is not closed yet (no entry after its end): the statement is provisional")
	}
	return nil
}

// writeFileAtomic writes a file through a temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// verify is `aigw usage verify`.
func (c *UsageCommand) verify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("aigw usage verify", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	var lf ledgerFlags
	lf.register(fs)
	var vkeys multiFlag
	fs.Var(&vkeys, "vkey", "trusted checkpoint verifier key, name+hash+base64 (repeatable: earlier keys after a rotation)")
	vkeyFile := fs.String("vkey-file", "", "file of trusted verifier keys, one per line")
	ledgerArg := fs.String("ledger", "", "check against this ledger: an export directory, a data directory (its ledger.db) or a PostgreSQL URL")
	server := fs.String("server", "", "check against a running server's read API (http://host:port)")
	token := fs.String("token", "", "bearer token of the server's read API (default $AIGW_READ_TOKEN)")
	fs.Usage = func() {
		fmt.Fprint(c.Stderr, `Usage: aigw usage verify STATEMENT.json [-vkey KEY | -vkey-file F] [-ledger DIR_OR_DB | -server URL]

Checks a usage statement's signature with the ledger's verifier key (-vkey;
default: the data directory's checkpoint.vkey, said so). With -ledger or
-server it also recomputes the statement from the log at the statement's
checkpoint and compares every value, and verifies the log (every entry,
chain, tile and checkpoint) up to its latest checkpoint, which must extend
the statement's. Exit code 0: verified; 1: it does not verify (each
difference is printed); 2: could not run.
`)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return flag.ErrHelp
	}
	if *ledgerArg != "" && *server != "" {
		return errors.New("-ledger and -server are exclusive")
	}
	stmt, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	cfg, err := lf.load()
	if err != nil {
		return err
	}
	verifiers, err := trustedVerifierKeys(vkeys, *vkeyFile, cfg, true, c.Stderr)
	if err != nil {
		return err
	}
	st, err := usage.Parse(stmt)
	if err != nil {
		return err
	}
	// The key that signed the statement is the one whose signature checks
	// out; the others are trusted for the log's older checkpoints.
	at := 0
	for i, v := range verifiers {
		if usage.Verify(ctx, stmt, v, nil) == nil {
			at = i
			break
		}
	}
	signerKey := verifiers[at]
	others := append(append([]note.Verifier{}, verifiers[:at]...), verifiers[at+1:]...)

	var src verify.Source
	switch {
	case *server != "":
		src = verify.HTTPSource(strings.TrimRight(*server, "/")+"/ledger", readClient(*token, time.Minute))
	case *ledgerArg != "":
		var closeFn func() error
		if src, closeFn, err = openLedgerArg(ctx, cfg, *ledgerArg, st.Tenant); err != nil {
			return err
		}
		defer closeFn()
	}
	err = usage.Verify(ctx, stmt, signerKey, src, others...)
	var ve *usage.VerifyError
	if errors.As(err, &ve) {
		fmt.Fprintf(c.Stdout, "FAIL statement %s tenant=%s period=[%s, %s)\n", pos[0], st.Tenant, st.From, st.To)
		if ve.Signature != nil {
			fmt.Fprintf(c.Stdout, "  signature: %v\n", ve.Signature)
		}
		var mis *verify.MismatchError
		if errors.As(ve.Ledger, &mis) {
			fmt.Fprintf(c.Stdout, "  ledger: log=%s %s\n", mis.Log, describeMismatch(mis))
		} else if ve.Ledger != nil {
			fmt.Fprintf(c.Stdout, "  ledger: %v\n", ve.Ledger)
		}
		for _, d := range ve.Diffs {
			fmt.Fprintf(c.Stdout, "  %s\n", d)
		}
		return mismatchExit{errors.New("the usage statement does not verify")}
	}
	if err != nil {
		return err
	}
	checked := "signature only (pass -ledger or -server to check it against the ledger)"
	if src != nil {
		checked = "ledger verified and statement recomputed"
	}
	fmt.Fprintf(c.Stdout, "ok statement %s tenant=%s team=%q period=[%s, %s) lines=%d calls=%d cost_usd=%s budgets=%s checkpoint=%d closed=%v signed-by=%s: %s\n",
		pos[0], st.Tenant, st.Team, st.From, st.To, len(st.Lines), st.Totals.Calls, st.Totals.CostUSD, st.Budgets.Status,
		st.Ledger.Checkpoint.Size, st.Ledger.PeriodClosed, signerKey.Name(), checked)
	return nil
}

// openLedgerArg opens -ledger: a PostgreSQL URL, a data directory holding
// ledger.db (or that file), or an export directory holding <log>/checkpoint.
func openLedgerArg(ctx context.Context, cfg Config, arg, log string) (verify.Source, func() error, error) {
	noop := func() error { return nil }
	if strings.HasPrefix(arg, "postgres://") || strings.HasPrefix(arg, "postgresql://") {
		cfg.Ledger.DatabaseURL = arg
		store, err := openStoreReadOnly(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		return verify.StoreSource(store), store.Close, nil
	}
	dir := arg
	if filepath.Base(arg) == "ledger.db" {
		dir = filepath.Dir(arg)
	}
	if _, err := os.Stat(filepath.Join(dir, "ledger.db")); err == nil {
		cfg.DataDir, cfg.Ledger.DatabaseURL = dir, ""
		store, err := openStoreReadOnly(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		return verify.StoreSource(store), store.Close, nil
	}
	if _, err := os.Stat(filepath.Join(arg, log, "checkpoint")); err == nil {
		return verify.DirSource(arg), noop, nil
	}
	return nil, nil, fmt.Errorf("-ledger %s: neither a PostgreSQL URL, a data directory (ledger.db) nor an export directory holding %s/checkpoint", arg, log)
}

// signedStatement computes a tenant's usage statement from the gateway's
// own ledger (verifying the log as it reads it) and signs it with the
// checkpoint key, as `aigw usage statement` does.
func signedStatement(ctx context.Context, cfg Config, la ledgerAccess, tenantID, team string, from, to time.Time, csv bool) ([]byte, error) {
	p := usage.Params{Tenant: tenantID, Team: team, From: from, To: to, Verifiers: note.VerifierList(la.verifiers...)}
	if cfg.Ledger.Origin != "" {
		p.Origin = ledger.Origin(cfg.Ledger.Origin, tenantID)
	}
	st, err := usage.Compute(ctx, verify.StoreSource(la.store), p)
	if err != nil {
		return nil, err
	}
	if err := usage.Sign(st, la.signer); err != nil {
		return nil, err
	}
	if csv {
		var b bytes.Buffer
		err := st.WriteCSV(&b)
		return b.Bytes(), err
	}
	return st.JSON()
}
