// Command aigw is the aigw binary: the gateway and its audit ledger
// (`serve`), and the tools an operator or auditor runs against them
// (`append`, `verify`, `proof`, `export`, `keys`, `bench`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"
)

// Exit codes: 0 success, 1 a verification failed (the data is wrong), 2 the
// command could not run (usage, I/O, configuration).
const (
	exitOK       = 0
	exitMismatch = 1
	exitError    = 2
)

// errMismatch marks an error that means "verification failed", exit code 1.
type mismatchExit struct{ err error }

func (m mismatchExit) Error() string { return m.err.Error() }
func (m mismatchExit) Unwrap() error { return m.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	os.Exit(m.Run(ctx, os.Args[1:]))
}

// Main runs subcommands; tests reuse it with their own writers.
type Main struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// NewMain returns a Main on the process's standard streams.
func NewMain() *Main { return &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr} }

// Run runs the subcommand in args and returns the exit code.
func (m *Main) Run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		m.usage()
		return exitError
	}
	var err error
	switch args[0] {
	case "serve":
		err = (&ServeCommand{Main: m}).Run(ctx, args[1:])
	case "sequence":
		err = (&SequenceCommand{Main: m}).Run(ctx, args[1:])
	case "append":
		err = (&AppendCommand{Main: m}).Run(ctx, args[1:])
	case "verify":
		err = (&VerifyCommand{Main: m}).Run(ctx, args[1:])
	case "proof":
		err = (&ProofCommand{Main: m}).Run(ctx, args[1:])
	case "export":
		err = (&ExportCommand{Main: m}).Run(ctx, args[1:])
	case "controls":
		err = (&ControlsCommand{Main: m}).Run(ctx, args[1:])
	case "usage":
		err = (&UsageCommand{Main: m}).Run(ctx, args[1:])
	case "delegation":
		err = (&DelegationCommand{Main: m}).Run(ctx, args[1:])
	case "erase":
		err = (&EraseCommand{Main: m}).Run(ctx, args[1:])
	case "keys":
		err = (&KeysCommand{Main: m}).Run(ctx, args[1:])
	case "bench":
		err = (&BenchCommand{Main: m}).Run(ctx, args[1:])
	case "version", "-version", "--version":
		fmt.Fprintln(m.Stdout, "aigw", version())
		return exitOK
	case "help", "-h", "-help", "--help":
		m.usage()
		return exitOK
	default:
		fmt.Fprintf(m.Stderr, "aigw: unknown command %q\n\n", args[0])
		m.usage()
		return exitError
	}
	var mm mismatchExit
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitError
	case errors.As(err, &mm):
		fmt.Fprintln(m.Stderr, "aigw:", err)
		return exitMismatch
	default:
		fmt.Fprintln(m.Stderr, "aigw:", err)
		return exitError
	}
}

func (m *Main) usage() {
	fmt.Fprint(m.Stderr, `aigw: an AI gateway whose every decision can be proven later.

Usage: aigw <command> [flags]

Commands:
  serve     run the gateway and its audit ledger (no flags: everything embedded under ./data)
  sequence  run the ledger's sequencer alone (for gateways with ledger.sequence: [])
  append    append events to the ledger from a JSONL file or stdin
  verify    verify logs (server, database, data dir or export dir), a proof file, or an assessor package
  proof     fetch an inclusion or consistency proof
  export    export logs as C2SP tlog-tiles directories, or an assessor package (-framework)
  controls  list the controls of each framework and how they are evidenced, or evaluate them (-tenant)
  delegation  print and check a task's delegation tree (A2A) from the ledger
  usage     usage statements: per tenant and period, signed, checkable against the ledger
  erase     erase stored payloads (retention, erasure requests); recorded in the system log
  keys      create a checkpoint key, or print a key's verifier key
  bench     run the reproducible load commands (bench ingest)
  version   print the version

Run 'aigw <command> -h' for a command's flags.
`)
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "dev"
}

// parseArgs parses flags that may come before or after the positional
// arguments (`aigw verify DIR -vkey K` as well as `aigw verify -vkey K DIR`),
// and returns the positional arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// timeNow is the clock of the commands (a variable so tests can fix it).
var timeNow = time.Now
