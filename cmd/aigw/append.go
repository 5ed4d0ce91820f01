package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"aigw/ledger"
)

// AppendCommand appends events from a JSONL file or stdin.
type AppendCommand struct{ *Main }

// jsonlEvent is one input line of `aigw append`. Only tenant and kind are
// required; id (a UUIDv7) and time (RFC 3339) are filled in when absent.
type jsonlEvent struct {
	ID            string          `json:"id"`
	Tenant        string          `json:"tenant"`
	Kind          string          `json:"kind"`
	Time          string          `json:"time"`
	Actor         *ledger.Actor   `json:"actor"`
	TraceID       string          `json:"trace_id"`
	Policy        string          `json:"policy"`
	Attrs         json.RawMessage `json:"attrs"`
	Payload       *string         `json:"payload"`
	PayloadBase64 *string         `json:"payload_base64"`
}

// maxLine bounds one JSONL line: an entry (64 KiB) plus a payload.
const maxLine = 8 << 20

// parseJSONL reads and validates every line before anything is appended, so
// a malformed line anywhere appends nothing.
func parseJSONL(r io.Reader, now func() time.Time) ([]*ledger.Event, [][]byte, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var evs []*ledger.Event
	var payloads [][]byte
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		ev, payload, err := parseEventLine(b, now)
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", line, err)
		}
		evs = append(evs, ev)
		payloads = append(payloads, payload)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, nil, fmt.Errorf("line %d: longer than %d bytes", len(evs)+1, maxLine)
		}
		return nil, nil, err
	}
	return evs, payloads, nil
}

func parseEventLine(b []byte, now func() time.Time) (*ledger.Event, []byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var in jsonlEvent
	if err := dec.Decode(&in); err != nil {
		return nil, nil, fmt.Errorf("not a JSON event: %w", err)
	}
	if dec.More() {
		return nil, nil, errors.New("more than one JSON value on the line")
	}
	ev := &ledger.Event{ID: in.ID, Tenant: in.Tenant, Kind: in.Kind, TraceID: in.TraceID, Policy: in.Policy}
	if ev.ID == "" {
		ev.ID = ledger.NewEventID()
	}
	if in.Actor != nil {
		ev.Actor = *in.Actor
	}
	if in.Time == "" {
		ev.Time = now()
	} else {
		t, err := time.Parse(time.RFC3339Nano, in.Time)
		if err != nil {
			return nil, nil, fmt.Errorf("time %q is not RFC 3339", in.Time)
		}
		ev.Time = t
	}
	if len(in.Attrs) > 0 && string(in.Attrs) != "null" {
		ev.RawAttrs = in.Attrs
	}
	var payload []byte
	switch {
	case in.Payload != nil && in.PayloadBase64 != nil:
		return nil, nil, errors.New("payload and payload_base64 are exclusive")
	case in.Payload != nil:
		payload = []byte(*in.Payload)
	case in.PayloadBase64 != nil:
		p, err := base64.StdEncoding.DecodeString(*in.PayloadBase64)
		if err != nil {
			return nil, nil, fmt.Errorf("payload_base64: %w", err)
		}
		payload = p
	}
	if payload != nil {
		ev.PayloadSHA256 = "0000000000000000000000000000000000000000000000000000000000000000" // placeholder for validation; the producer commits
	}
	if _, err := ev.Entry(); err != nil {
		return nil, nil, err
	}
	ev.PayloadSHA256 = ""
	return ev, payload, nil
}

func (c *AppendCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("aigw append", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	var lf ledgerFlags
	lf.register(fs)
	fs.Usage = func() {
		fmt.Fprint(c.Stderr, `Usage: aigw append [flags] [FILE.jsonl]   (no FILE: read stdin)

Each line is one event: {"tenant":"acme","kind":"request","attrs":{...},"payload":"..."}.
Optional: id (UUIDv7), time (RFC 3339), actor {key_id, agent_id}, trace_id, policy,
payload or payload_base64 (stored beside the entry; the entry holds a salted commitment).
Every line is validated first: one malformed line appends nothing. Each event is
acknowledged by JetStream (durable) before the command reports it; it prints one
event id per line.
`)
		fs.PrintDefaults()
	}
	posArgs, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	cfg, err := lf.load()
	if err != nil {
		return err
	}
	in := c.Stdin
	if len(posArgs) == 1 && posArgs[0] != "-" {
		f, err := os.Open(posArgs[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	} else if len(posArgs) > 1 {
		fs.Usage()
		return flag.ErrHelp
	}
	evs, payloads, err := parseJSONL(in, time.Now)
	if err != nil {
		return fmt.Errorf("nothing appended: %w", err)
	}
	p, closeFn, err := openProducer(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeFn()
	for i, ev := range evs {
		if err := p.Record(ctx, ev, payloads[i]); err != nil {
			return fmt.Errorf("event %d (%s): %w (%d appended before it)", i+1, ev.ID, err, i)
		}
		fmt.Fprintln(c.Stdout, ev.ID)
	}
	fmt.Fprintf(c.Stderr, "appended %d events\n", len(evs))
	return nil
}
