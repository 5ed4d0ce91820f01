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
	"text/tabwriter"
	"time"

	"aigw/controls"
	"aigw/evidence"
	"aigw/ledger"
	"aigw/oscal"
	"aigw/verify"

	"golang.org/x/mod/sumdb/note"
)

// parsePeriodTime reads a period bound: a date (UTC midnight) or an RFC 3339 time.
func parsePeriodTime(flagName, s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("-%s %q: want a date (2026-11-01) or an RFC 3339 time", flagName, s)
	}
	return t.UTC(), nil
}

// evidenceFlags are the flags an evaluation of a framework needs.
type evidenceFlags struct {
	framework, tenant, from, to string
	samples                     int
	skew                        time.Duration
}

func (f *evidenceFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.framework, "framework", "", "framework: "+strings.Join(controls.Frameworks(), ", "))
	fs.StringVar(&f.tenant, "tenant", "", "tenant (its log, and its events in the system log)")
	fs.StringVar(&f.from, "from", "", "period start, inclusive (2026-11-01 or RFC 3339)")
	fs.StringVar(&f.to, "to", "", "period end, exclusive (2026-12-01 or RFC 3339)")
	fs.IntVar(&f.samples, "samples", 25, "members sampled (with an inclusion proof) per population")
	fs.DurationVar(&f.skew, "skew", 5*time.Minute, "how far entry times may run out of index order")
}

// config builds an evidence.Config from the flags and the deployment.
func (f *evidenceFlags) config(ctx context.Context, cfg Config, store ledger.Store, stderr io.Writer) (evidence.Config, error) {
	if f.framework == "" || f.tenant == "" || f.from == "" || f.to == "" {
		return evidence.Config{}, errors.New("-framework, -tenant, -from and -to are required")
	}
	from, err := parsePeriodTime("from", f.from)
	if err != nil {
		return evidence.Config{}, err
	}
	to, err := parsePeriodTime("to", f.to)
	if err != nil {
		return evidence.Config{}, err
	}
	if cfg.Ledger.Key == "" {
		if _, err := os.Stat(cfg.keyPath()); err != nil {
			return evidence.Config{}, fmt.Errorf("the package is signed with the ledger's checkpoint key, and there is none at %s: %w", cfg.keyPath(), err)
		}
	}
	s, err := loadSigner(ctx, cfg, discardLogger())
	if err != nil {
		return evidence.Config{}, err
	}
	vs, err := trustedVerifiers(cfg)
	if err != nil {
		return evidence.Config{}, err
	}
	vs = append(vs, s.Verifier())
	return evidence.Config{
		Store: store, Framework: f.framework, Tenant: f.tenant, From: from, To: to,
		Signer: s, VerifierKey: s.VerifierKey(), Verifiers: note.VerifierList(vs...),
		Generator: "aigw " + version(), Samples: f.samples, Skew: f.skew, Render: oscal.Render,
	}, nil
}

// exportPackage is `aigw export -framework ...`: an assessor package.
func (c *ExportCommand) exportPackage(ctx context.Context, lf *ledgerFlags, ef *evidenceFlags, out string, archive bool) error {
	cfg, store, err := lf.openStore(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	ecfg, err := ef.config(ctx, cfg, store, c.Stderr)
	if err != nil {
		return err
	}
	dir := out
	if archive {
		if dir, err = os.MkdirTemp(filepath.Dir(out), ".aigw-package-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	start := time.Now()
	r, err := evidence.Build(ctx, ecfg, dir)
	if err != nil {
		return err
	}
	if archive {
		if err := writeArchive(dir, out, r.To); err != nil {
			return err
		}
	}
	printSummary(c.Stdout, r)
	fmt.Fprintf(c.Stdout, "package %s written to %s in %s\n", r.PackageID, out, time.Since(start).Round(time.Millisecond))
	return nil
}

func writeArchive(dir, out string, mtime time.Time) error {
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	gz := strings.HasSuffix(out, ".gz") || strings.HasSuffix(out, ".tgz")
	if err := verify.WritePackageTar(f, os.DirFS(dir), mtime, gz); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, out)
}

func isArchive(path string) bool {
	for _, ext := range []string{".tar", ".tar.gz", ".tgz"} {
		if strings.HasSuffix(path, ext) {
			return true
		}
	}
	return false
}

func printSummary(w io.Writer, r *evidence.Report) {
	counts := map[string]int{}
	for _, c := range r.Controls {
		counts[c.Status]++
	}
	fmt.Fprintf(w, "%s (%s) tenant=%s period=[%s, %s): %d controls: %d satisfied, %d not satisfied, %d need attestation, %d not applicable\n",
		r.CatalogTitle, r.Framework, r.Tenant, r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), len(r.Controls),
		counts[controls.Satisfied], counts[controls.NotSatisfied], counts[controls.NeedsAttestation], counts[controls.NotApplicable])
	for _, l := range r.Logs {
		state := "verified"
		if !l.Verified {
			state = "NOT VERIFIED: " + l.Error
		}
		fmt.Fprintf(w, "  log %s: %d entries in the period, checkpoint %d, %s\n", l.Log, l.InPeriod, l.EndSize, state)
	}
}

// ControlsCommand lists the controls of each framework and how this
// deployment evidences them.
type ControlsCommand struct{ *Main }

func (c *ControlsCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("aigw controls", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	var lf ledgerFlags
	lf.register(fs)
	var ef evidenceFlags
	ef.register(fs)
	fs.Usage = func() {
		fmt.Fprint(c.Stderr, `Usage: aigw controls [-framework F] [-tenant T -from D1 -to D2 [store flags]]

Without -tenant: lists each framework's controls (or one framework's), how
aigw evidences each (automated from the ledger, a human attestation, both,
or not applicable) and from which evidence rules.
With -tenant, -from and -to: evaluates the controls over the ledger for that
tenant and period and prints each control's status (satisfied, not-satisfied,
needs-attestation, not-applicable) and why; nothing is written.
`)
		fs.PrintDefaults()
	}
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	frameworks := controls.Frameworks()
	if ef.framework != "" {
		if _, err := controls.Load(ef.framework); err != nil {
			return err
		}
		frameworks = []string{ef.framework}
	}
	tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	if ef.tenant == "" {
		for _, fw := range frameworks {
			cat, err := controls.Load(fw)
			if err != nil {
				return err
			}
			fmt.Fprintf(tw, "# %s: %s %s (%d controls)\n", fw, cat.Title, cat.Version, len(cat.Controls))
			for _, ct := range cat.Controls {
				from := strings.Join(ct.Rules, ", ")
				if ct.Evidence == controls.Inapplicable || ct.Evidence == controls.Attestation {
					from = ct.Reason
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ct.ID, ct.Evidence, ct.Title, from)
			}
		}
		return nil
	}
	cfg, store, err := lf.openStore(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	for _, fw := range frameworks {
		ef.framework = fw
		ecfg, err := ef.config(ctx, cfg, store, c.Stderr)
		if err != nil {
			return err
		}
		ecfg.Render = nil
		dir, err := os.MkdirTemp("", "aigw-controls-")
		if err != nil {
			return err
		}
		r, err := evidence.Build(ctx, ecfg, dir)
		os.RemoveAll(dir)
		if err != nil {
			return err
		}
		tw.Flush()
		printSummary(c.Stdout, r)
		for _, ct := range r.Controls {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ct.ID, ct.Status, ct.Title, ct.Reason)
		}
	}
	return nil
}

// verifyPackage is `aigw verify PACKAGE`.
func (c *VerifyCommand) verifyPackage(ctx context.Context, path string, opts verify.Options) error {
	fsys, closeFn, err := verify.OpenPackage(path)
	if err != nil {
		return err
	}
	defer closeFn()
	res, err := verify.Package(ctx, fsys, opts)
	var pe *verify.PackageError
	if errors.As(err, &pe) {
		fmt.Fprintf(c.Stdout, "FAIL package %s: %v\n", path, pe)
		return mismatchExit{pe}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "ok package %s id=%s framework=%s tenant=%s period=[%s, %s) files=%d samples=%d logs=%d signed-by=%s\n",
		path, res.PackageID, res.Framework, res.Tenant, res.From.Format(time.RFC3339), res.To.Format(time.RFC3339),
		res.Files, res.Samples, len(res.Logs), strings.Join(res.Signers, ","))
	return nil
}

// isPackage says whether a verify argument is an assessor package.
func isPackage(path string) bool {
	if isArchive(path) {
		return true
	}
	_, err := os.Stat(filepath.Join(path, "manifest.json"))
	return err == nil
}
