package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"

	"aigw/ledger/signer"
)

// KeysCommand creates checkpoint keys and prints verifier keys.
type KeysCommand struct{ *Main }

func (c *KeysCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("aigw keys", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	out := fs.String("out", "", "with 'generate': where to write the new key file (default ./data/checkpoint.key)")
	name := fs.String("name", signer.DefaultName, "with 'generate': the key name (C2SP recommends the origin prefix)")
	fs.Usage = func() {
		fmt.Fprint(c.Stderr, `Usage:
  aigw keys generate [-name NAME] [-out FILE]   create an Ed25519 checkpoint key (mode 0600) and print its verifier key
  aigw keys show FILE|KMS-URI                   print the verifier key of a key

The verifier key (name+hash+base64) is what auditors pass to 'aigw verify -vkey'
and to standard signed-note tools (golang.org/x/mod/sumdb/note).
`)
		fs.PrintDefaults()
	}
	if len(args) == 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	sub := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch sub {
	case "generate":
		path := *out
		if path == "" {
			path = filepath.Join("data", "checkpoint.key")
		}
		s, priv, err := signer.Generate(*name)
		if err != nil {
			return err
		}
		if err := signer.WriteKeyFile(path, s.Name(), priv); err != nil {
			return fmt.Errorf("write key: %w", err)
		}
		fmt.Fprintf(c.Stderr, "wrote %s (keep it secret; the verifier key below is public)\n", path)
		fmt.Fprintln(c.Stdout, s.VerifierKey())
		return nil
	case "show":
		if fs.NArg() != 1 {
			fs.Usage()
			return flag.ErrHelp
		}
		s, err := signer.Open(ctx, fs.Arg(0), "")
		if err != nil {
			return err
		}
		fmt.Fprintln(c.Stdout, s.VerifierKey())
		return nil
	default:
		fs.Usage()
		return fmt.Errorf("keys: unknown subcommand %q", sub)
	}
}
