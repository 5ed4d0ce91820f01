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
	if len(args) > 0 {
		switch args[0] {
		case "gateway":
			return (&GatewayBenchCommand{Main: c.Main}).Run(ctx, args[1:])
		case "fake":
			return (&BenchFakeCommand{Main: c.Main}).Run(ctx, args[1:])
		case "proxy":
			return (&BenchProxyCommand{Main: c.Main}).Run(ctx, args[1:])
		}
	}
	if len(args) == 0 || args[0] != "ingest" {
		fmt.Fprint(c.Stderr, `Usage: aigw bench ingest|gateway [flags]

ingest:  runs producers -> JetStream (Nats-Msg-Id dedupe) -> sequencer -> store
         in one process and reports events/s, publish-to-ack latency, backlog,
         CPU per event, then checks that every event is in its log exactly once
         and that the logs verify.
gateway: runs the same loads straight to a fake upstream, through a bare
         reverse proxy and through 'aigw serve', each in its own process, and
         reports added latency, maximum requests/s, RSS and sequencer lag, then
         counts every call's ledger events and verifies the logs.
         (fake and proxy are its servers: 'aigw bench fake', 'aigw bench proxy'.)
Run 'aigw bench ingest -h' or 'aigw bench gateway -h' for the flags.
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
