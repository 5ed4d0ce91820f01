package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"aigw/ledger"
)

// EraseCommand erases stored payloads (a data-subject request, a retention
// decision) and records each erasure in the system log. The entries, and so
// every hash and proof, are unchanged: `verify -payloads` then reports the
// payload as erased, not as tampered.
type EraseCommand struct{ *Main }

func (c *EraseCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("aigw erase", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	var lf ledgerFlags
	lf.register(fs)
	log := fs.String("log", "", "the log (tenant) (required)")
	reason := fs.String("reason", "", "why, recorded in the system log (required), e.g. 'GDPR Art. 17 request #123'")
	actor := fs.String("actor", "", "who asked, recorded in the system log")
	fs.Usage = func() {
		fmt.Fprint(c.Stderr, `Usage: aigw erase -log L -reason TEXT INDEX...

Deletes the payload (and its salt) of each entry, after recording an "erasure"
event in the system log (fail-closed: nothing is erased unless the event is
acknowledged by JetStream, so 'aigw serve' or the configured NATS must be up).
`)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *log == "" || strings.TrimSpace(*reason) == "" || len(pos) == 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	var idx []uint64
	for _, p := range pos {
		i, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return fmt.Errorf("index %q: %w", p, err)
		}
		idx = append(idx, i)
	}
	cfg, store, err := lf.openStore(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	head, err := store.Head(ctx, *log)
	if err != nil {
		return err
	}
	for _, i := range idx {
		if i >= head.Size {
			return fmt.Errorf("log %q has no entry %d (size %d)", *log, i, head.Size)
		}
		if _, err := store.ReadPayload(ctx, *log, i); err != nil && !errors.Is(err, ledger.ErrPayloadErased) {
			return fmt.Errorf("entry %d of log %q: payload: %w", i, *log, err)
		}
	}
	p, closeFn, err := openProducer(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeFn()
	for _, i := range idx {
		ev := &ledger.Event{ID: ledger.NewEventID(), Tenant: ledger.SystemLog, Kind: ledger.KindErasure, Time: timeNow(),
			Actor: ledger.Actor{AgentID: *actor},
			Attrs: map[string]any{"log": *log, "index": i, "reason": *reason, "what": "payload and salt"}}
		if err := p.Record(ctx, ev, nil); err != nil {
			return fmt.Errorf("record erasure of %s/%d: %w (nothing erased)", *log, i, err)
		}
		if err := store.ErasePayload(ctx, *log, i); err != nil {
			return fmt.Errorf("erase payload %s/%d (erasure event %s recorded): %w", *log, i, ev.ID, err)
		}
		fmt.Fprintf(c.Stdout, "erased log=%s index=%d event=%s\n", *log, i, ev.ID)
	}
	return nil
}
