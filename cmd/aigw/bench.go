package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"aigw/ledger/ingestbench"
)

// BenchCommand runs the reproducible load commands.
type BenchCommand struct{ *Main }

func (c *BenchCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "ingest" {
		fmt.Fprint(c.Stderr, `Usage: aigw bench ingest [flags]

Runs producers -> JetStream (Nats-Msg-Id dedupe) -> sequencer -> store in one
process and reports events/s, publish-to-ack latency, backlog, CPU per event,
then checks that every event is in its log exactly once and that the logs verify.
Run 'aigw bench ingest -h' for the flags.
`)
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet("aigw bench ingest", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	var cfg ingestbench.Config
	cfg.Flags(fs)
	verbose := fs.Bool("v", false, "log the pipeline's operational messages")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(c.Stderr, nil))
	}
	_, err := ingestbench.Run(ctx, cfg, c.Stdout)
	return err
}
