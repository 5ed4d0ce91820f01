package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sort"

	"aigw/ledger"
	"aigw/ledger/export"
)

// ExportCommand writes logs as C2SP tlog-tiles directories.
type ExportCommand struct{ *Main }

func (c *ExportCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("aigw export", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	var lf ledgerFlags
	lf.register(fs)
	out := fs.String("out", "", "output directory (required)")
	log := fs.String("log", "", "export only this log (default: every log)")
	noHistory := fs.Bool("no-history", false, "skip checkpoints/<size> (every historical checkpoint)")
	var ef evidenceFlags
	ef.register(fs)
	fs.Usage = func() {
		fmt.Fprint(c.Stderr, `Usage: aigw export -out DIR [-log L] [-data-dir DIR | -database-url DSN]
       aigw export -framework F -tenant T -from D1 -to D2 -out DIR|FILE.tar[.gz]

The first form writes each log to DIR/<log>/ in the C2SP tlog-tiles layout
(checkpoint, tiles, entry bundles) plus aigw's chain hashes and checkpoint
history (ledger/FORMATS.md §8). 'aigw verify DIR' checks it offline.

The second writes an assessor package for a framework (nist-ai-rmf, aiuc-1,
fedramp-moderate, eu-ai-act), a tenant and a period: OSCAL documents,
populations, samples with inclusion proofs, signed checkpoints and a signed
manifest (evidence/PACKAGE.md); an -out ending in .tar, .tar.gz or .tgz
writes it as one archive. 'aigw verify PACKAGE -vkey KEY' checks it offline.
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	if ef.framework != "" || ef.tenant != "" {
		if *log != "" || *noHistory {
			return errors.New("-log and -no-history do not apply to an assessor package")
		}
		return c.exportPackage(ctx, &lf, &ef, *out, isArchive(*out))
	}
	_, store, err := lf.openStore(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	opts := export.Options{Fsync: true, NoHistory: *noHistory}
	heads := map[string]ledger.Head{}
	if *log != "" {
		h, err := export.Log(ctx, store, *log, *out, opts)
		if err != nil {
			return err
		}
		heads[*log] = h
	} else if heads, err = export.All(ctx, store, *out, opts); err != nil {
		return err
	}
	names := make([]string, 0, len(heads))
	for n := range heads {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(c.Stdout, "exported log=%s size=%d to %s/%s\n", n, heads[n].Size, *out, n)
	}
	return nil
}
