package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"aigw/ledger"
	"aigw/ledger/signer"
	"aigw/verify"
	"golang.org/x/mod/sumdb/note"
)

// VerifyCommand verifies logs or a proof file.
type VerifyCommand struct{ *Main }

func (c *VerifyCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("aigw verify", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	var lf ledgerFlags
	lf.register(fs)
	server := fs.String("server", "", "verify through a running server's read API (http://host:port)")
	token := fs.String("token", "", "bearer token of the server's read API (default $AIGW_READ_TOKEN)")
	log := fs.String("log", "", "verify only this log (default: every log)")
	var vkeys multiFlag
	fs.Var(&vkeys, "vkey", "trusted checkpoint verifier key, name+hash+base64 (repeatable)")
	vkeyFile := fs.String("vkey-file", "", "file of trusted verifier keys, one per line")
	old := fs.String("old", "", "an older signed checkpoint file of -log: prove today's tree extends it")
	proofFile := fs.String("proof", "", "verify a proof file (from 'aigw proof' or the read API) instead of logs")
	payloads := fs.Bool("payloads", false, "also check every stored payload against its entry's commitment")
	workers := fs.Int("workers", 0, "parallel hashing workers (default: GOMAXPROCS)")
	fs.Usage = func() {
		fmt.Fprint(c.Stderr, `Usage: aigw verify [flags] [EXPORT_DIR | PACKAGE]

Verifies every entry, the hash chain, every tile, the signed checkpoint and
every historical checkpoint of each log, from one of:
  EXPORT_DIR            a directory written by 'aigw export' (offline)
  PACKAGE               an assessor package ('aigw export -framework', a
                        directory or .tar/.tar.gz): its signed manifest, every
                        file's hash, checkpoints, proofs, populations and OSCAL
                        back-matter hashes (evidence/PACKAGE.md)
  -server URL           a running server's read API
  -database-url DSN     a PostgreSQL ledger directly
  -data-dir DIR         the SQLite ledger of the embedded default
Prints "ok" per log with its size, root and signer, or the first entry, tile or
checkpoint that is wrong. Exit code 0: verified; 1: verification failed;
2: could not run. Trusted keys come from -vkey/-vkey-file; with -data-dir and
no -vkey, the data directory's own checkpoint.vkey is used (and said so).
`)
		fs.PrintDefaults()
	}
	posArgs, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(posArgs) > 1 {
		fs.Usage()
		return flag.ErrHelp
	}
	cfg, err := lf.load()
	if err != nil {
		return err
	}
	verifiers, err := trustedVerifierKeys(vkeys, *vkeyFile, cfg, len(posArgs) == 0 && *server == "", c.Stderr)
	if err != nil {
		return err
	}
	opts := verify.Options{Verifiers: note.VerifierList(verifiers...), Workers: *workers, Payloads: *payloads}
	if *old != "" {
		if opts.Old, err = os.ReadFile(*old); err != nil {
			return err
		}
	}
	if *proofFile != "" {
		return c.verifyProof(ctx, *proofFile, opts)
	}
	if len(posArgs) == 1 && isPackage(posArgs[0]) {
		return c.verifyPackage(ctx, posArgs[0], opts)
	}
	if *old != "" && *log == "" {
		return errors.New("-old needs -log")
	}

	var src verify.Source
	switch {
	case len(posArgs) == 1:
		src = verify.DirSource(posArgs[0])
	case *server != "":
		src = verify.HTTPSource(strings.TrimRight(*server, "/")+"/ledger", readClient(*token, time.Minute))
	default:
		store, err := openStoreReadOnly(ctx, cfg)
		if err != nil {
			return err
		}
		defer store.Close()
		src = verify.StoreSource(store)
	}
	logs := []string{*log}
	if *log == "" {
		lister, ok := src.(verify.LogLister)
		if !ok {
			return errors.New("this source cannot list its logs: pass -log")
		}
		if logs, err = lister.Logs(ctx); err != nil {
			return fmt.Errorf("list logs: %w", err)
		}
		if len(logs) == 0 {
			return errors.New("no logs found")
		}
	}
	failed := 0
	for _, l := range logs {
		o := opts
		if lf.origin != "" {
			o.Origin = ledger.Origin(lf.origin, l)
		}
		start := time.Now()
		res, err := verify.Log(ctx, src, l, o)
		var mis *verify.MismatchError
		switch {
		case errors.As(err, &mis):
			failed++
			fmt.Fprintf(c.Stdout, "FAIL log=%s %s\n", l, describeMismatch(mis))
			continue
		case err != nil:
			return fmt.Errorf("log %q: %w", l, err)
		}
		el := time.Since(start)
		rate := ""
		if el > 0 && res.Size > 0 {
			rate = fmt.Sprintf(" rate=%.0f/s", float64(res.Size)/el.Seconds())
		}
		extra := ""
		if res.OldSize > 0 || opts.Old != nil {
			extra += fmt.Sprintf(" extends=%d", res.OldSize)
		}
		if len(res.ErasedPayloads) > 0 {
			extra += fmt.Sprintf(" erased_payloads=%d", len(res.ErasedPayloads))
		}
		fmt.Fprintf(c.Stdout, "ok log=%s size=%d root=%s signer=%s chain=%v tiles=%d checkpoints=%d%s time=%s%s\n",
			res.Log, res.Size, res.Root, strings.Join(res.Signers, ","), res.ChainChecked, res.TilesChecked,
			res.CheckpointsChecked, extra, el.Round(time.Millisecond), rate)
	}
	if failed > 0 {
		return mismatchExit{fmt.Errorf("%d of %d logs failed verification", failed, len(logs))}
	}
	return nil
}

func describeMismatch(m *verify.MismatchError) string {
	where := fmt.Sprintf("index=%d", m.Index)
	if m.Level >= 0 {
		where = fmt.Sprintf("tile=%d/%d", m.Level, m.Index)
	}
	return fmt.Sprintf("kind=%s %s want=%q got=%q", m.Kind, where, m.Want, m.Got)
}

func (c *VerifyCommand) verifyProof(ctx context.Context, path string, opts verify.Options) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	res, err := verify.Proof(ctx, b, opts)
	var mis *verify.MismatchError
	switch {
	case errors.As(err, &mis):
		fmt.Fprintf(c.Stdout, "FAIL proof %s\n", describeMismatch(mis))
		return mismatchExit{err}
	case err != nil:
		return err
	}
	if res.OldSize > 0 || opts.Old != nil {
		fmt.Fprintf(c.Stdout, "ok consistency log=%s from=%d to=%d root=%s signer=%s\n", res.Log, res.OldSize, res.Size, res.Root, strings.Join(res.Signers, ","))
		return nil
	}
	fmt.Fprintf(c.Stdout, "ok inclusion log=%s index=%d tree_size=%d leaf=%s root=%s signer=%s\n", res.Log, res.Index, res.Size, res.LeafHash, res.Root, strings.Join(res.Signers, ","))
	return nil
}

// openStore loads the configuration and opens its store, for the commands
// that read a ledger directly (verify, proof, export, erase).
func (f *ledgerFlags) openStore(ctx context.Context) (Config, ledger.Store, error) {
	cfg, err := f.load()
	if err != nil {
		return cfg, nil, err
	}
	store, err := openStoreReadOnly(ctx, cfg)
	return cfg, store, err
}

// openStoreReadOnly opens the configured store for reading. (The stores
// have no read-only mode yet; verify only calls read methods.)
func openStoreReadOnly(ctx context.Context, cfg Config) (ledger.Store, error) {
	if cfg.Ledger.DatabaseURL == "" {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "ledger.db")); err != nil {
			return nil, fmt.Errorf("no ledger in data directory %s: %w", cfg.DataDir, err)
		}
	}
	return openStore(ctx, cfg, discardLogger())
}

// trustedVerifierKeys reads the verifier keys a command trusts: -vkey
// values, the lines of -vkey-file (# comments), or, when none is given and
// dataDir allows it, the data directory's own checkpoint.vkey (said so on
// stderr).
func trustedVerifierKeys(vkeys []string, vkeyFile string, cfg Config, dataDir bool, stderr io.Writer) ([]note.Verifier, error) {
	keys := append([]string(nil), vkeys...)
	if vkeyFile != "" {
		b, err := os.ReadFile(vkeyFile)
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				keys = append(keys, l)
			}
		}
	}
	if len(keys) == 0 && dataDir {
		if b, err := os.ReadFile(filepath.Join(cfg.DataDir, "checkpoint.vkey")); err == nil {
			keys = append(keys, strings.TrimSpace(string(b)))
			fmt.Fprintf(stderr, "note: trusting the data directory's own key %s (pass -vkey to trust only a key you hold)\n", keys[0])
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("no trusted key: pass -vkey name+hash+base64 (printed by 'aigw keys' and 'aigw serve')")
	}
	vs := make([]note.Verifier, len(keys))
	for i, k := range keys {
		v, err := signer.ParseVerifier(strings.TrimSpace(k))
		if err != nil {
			return nil, fmt.Errorf("verifier key %q: %w", k, err)
		}
		vs[i] = v
	}
	return vs, nil
}
