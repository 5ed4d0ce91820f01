package main

import (
	"context"
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
	fs.Usage = func() {
		fmt.Fprint(c.Stderr, `Usage: aigw export -out DIR [-log L] [-data-dir DIR | -database-url DSN]

Writes each log to DIR/<log>/ in the C2SP tlog-tiles layout (checkpoint, tiles,
entry bundles) plus aigw's chain hashes and checkpoint history
(ledger/FORMATS.md §8). 'aigw verify DIR' checks it offline.
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
