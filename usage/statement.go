// Package usage produces usage statements from the ledger: for a tenant,
// a period [From, To) and optionally a team, what the gateway's calls used
// and cost, per provider, upstream model and price version (and optionally
// per team, key and agent), in exact decimal dollars, so that they can be
// reconciled line by line with providers' invoices. A statement names the
// ledger range it covers and the signed checkpoint that commits to it, is
// signed with the ledger's checkpoint key as a C2SP signed note, and can be
// checked against the ledger by anyone holding the log and its verifier
// key ([Verify]): the signature, the log's integrity up to the checkpoint,
// and a recomputation that names the first line that differs.
//
// The numbers come only from the events the gateway writes (ledger/FORMATS.md,
// STATEMENT.md here): a call is charged what its last event (`response` or
// `error`) says, in the period of that event's time; `budget` settlements
// are summed per budget window and compared with the counters they record.
//
// A statement is a pure function of the log up to its checkpoint and of
// its parameters: the same ledger and parameters give byte-identical JSON
// (no wall clock, sorted lines, deterministic signing with Ed25519).
package usage

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Format is the "format" of the statements this package writes, and the
// first line of their signed note.
const Format = "aigw-usage-statement/1"

// Dimensions a statement or summary can group by.
const (
	ByProvider     = "provider"      // the provider that answered (attrs.provider)
	ByModel        = "model"         // the upstream model (attrs.model of the outcome event)
	ByPriceVersion = "price_version" // the price table that priced the call
	ByTeam         = "team"          // the caller's team (attrs.team)
	ByKey          = "key"           // the API key (actor.key_id)
	ByAgent        = "agent"         // the agent (actor.agent_id)
)

// dims is the order of the dimensions in lines, sort keys and CSV columns.
var dims = [...]string{ByProvider, ByModel, ByPriceVersion, ByTeam, ByKey, ByAgent}

const (
	dProvider = iota
	dModel
	dPriceVersion
	dTeam
	dKey
	dAgent
	nDims
)

// dimMask is a set of dimensions (bit i: dims[i]).
type dimMask uint8

func parseDims(names []string) (dimMask, error) {
	var m dimMask
	for _, n := range names {
		i := slices.Index(dims[:], strings.TrimSpace(n))
		if i < 0 {
			return 0, fmt.Errorf("usage: unknown grouping %q (want %s)", n, strings.Join(dims[:], ", "))
		}
		m |= 1 << i
	}
	return m, nil
}

func (m dimMask) names() []string {
	out := []string{}
	for i, n := range dims {
		if m&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// Counts are what a line (or the totals) adds up.
type Counts struct {
	// Calls counts the calls charged (their response or error event is in
	// the period); FailedCalls those that ended in an error event.
	Calls       uint64 `json:"calls"`
	FailedCalls uint64 `json:"failed_calls"`
	// EstimatedCalls counts calls whose tokens the gateway estimated
	// (the upstream reported none); UnpricedCalls calls that used tokens
	// but carry no cost (no price for their target).
	EstimatedCalls uint64 `json:"estimated_calls"`
	UnpricedCalls  uint64 `json:"unpriced_calls"`
	// Tokens, as the outcome events report them. Cached tokens are part of
	// the prompt tokens, reasoning tokens part of the completion tokens.
	PromptTokens     int64 `json:"prompt_tokens"`
	CachedTokens     int64 `json:"cached_tokens"`
	CacheWriteTokens int64 `json:"cache_write_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	ReasoningTokens  int64 `json:"reasoning_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
	// CostUSD is the sum of the calls' cost_usd, exact.
	CostUSD NanoUSD `json:"cost_usd"`
}

// countColumns are the JSON names of Counts' fields, in order: the CSV
// columns and the fields Verify compares.
var countColumns = []string{"calls", "failed_calls", "estimated_calls", "unpriced_calls", "prompt_tokens",
	"cached_tokens", "cache_write_tokens", "completion_tokens", "reasoning_tokens", "total_tokens", "cost_usd"}

// values returns Counts' fields as text, in countColumns' order.
func (c *Counts) values() []string {
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	return []string{u(c.Calls), u(c.FailedCalls), u(c.EstimatedCalls), u(c.UnpricedCalls), i(c.PromptTokens),
		i(c.CachedTokens), i(c.CacheWriteTokens), i(c.CompletionTokens), i(c.ReasoningTokens), i(c.TotalTokens), c.CostUSD.String()}
}

// add adds o to c; false on overflow.
func (c *Counts) add(o *Counts) bool {
	c.Calls += o.Calls
	c.FailedCalls += o.FailedCalls
	c.EstimatedCalls += o.EstimatedCalls
	c.UnpricedCalls += o.UnpricedCalls
	return addInt(&c.PromptTokens, o.PromptTokens) && addInt(&c.CachedTokens, o.CachedTokens) &&
		addInt(&c.CacheWriteTokens, o.CacheWriteTokens) && addInt(&c.CompletionTokens, o.CompletionTokens) &&
		addInt(&c.ReasoningTokens, o.ReasoningTokens) && addInt(&c.TotalTokens, o.TotalTokens) &&
		addNano(&c.CostUSD, o.CostUSD)
}

// Line is one group of calls. Provider, Model and PriceVersion are always
// present in a statement ("" for calls that never reached a provider or
// were not priced); Team, KeyID and AgentID only when grouped by them.
type Line struct {
	Provider     string `json:"provider"`
	Model        string `json:"model"`
	PriceVersion string `json:"price_version"`
	Team         string `json:"team,omitempty"`
	KeyID        string `json:"key_id,omitempty"`
	AgentID      string `json:"agent_id,omitempty"`
	Counts
}

func (l *Line) key(i int) string {
	switch i {
	case dProvider:
		return l.Provider
	case dModel:
		return l.Model
	case dPriceVersion:
		return l.PriceVersion
	case dTeam:
		return l.Team
	case dKey:
		return l.KeyID
	default:
		return l.AgentID
	}
}

func (l *Line) setKey(i int, v string) {
	switch i {
	case dProvider:
		l.Provider = v
	case dModel:
		l.Model = v
	case dPriceVersion:
		l.PriceVersion = v
	case dTeam:
		l.Team = v
	case dKey:
		l.KeyID = v
	default:
		l.AgentID = v
	}
}

func compareLines(a, b *Line) int {
	for i := range nDims {
		if c := strings.Compare(a.key(i), b.key(i)); c != 0 {
			return c
		}
	}
	return 0
}

// describe names a line by its grouped keys, for Verify's reports.
func (l *Line) describe(m dimMask) string {
	var parts []string
	for i, n := range dims {
		if m&(1<<i) != 0 {
			parts = append(parts, n+"="+strconv.Quote(l.key(i)))
		}
	}
	return "line " + strings.Join(parts, " ")
}

// Checkpoint is the signed checkpoint a statement cites.
type Checkpoint struct {
	Size uint64 `json:"size"`
	// Root is the tree's root hash, base64.
	Root string `json:"root"`
	// Note is the signed checkpoint note, verbatim (C2SP tlog-checkpoint).
	Note string `json:"note"`
}

// Ledger is the part of the ledger a statement covers.
type Ledger struct {
	Log    string `json:"log"`
	Origin string `json:"origin"`
	// Checkpoint commits to every entry the statement read: the first
	// checkpoint of the log that includes an entry dated at or after
	// To+Skew when the period is closed, else the latest one.
	Checkpoint Checkpoint `json:"checkpoint"`
	// PeriodClosed says whether the log held, at the checkpoint, an entry
	// dated at or after To+Skew: later events of the period (within the
	// skew tolerance) can no longer appear. When false, the statement is
	// provisional: a later one may count more.
	PeriodClosed bool `json:"period_closed"`
	// ScanFrom is the first index read (entries before it are dated before
	// From-Skew, or before the budget windows' starts); entries [ScanFrom,
	// Checkpoint.Size) were read.
	ScanFrom uint64 `json:"scan_from"`
	// Entries counts the entries dated in the period; FirstIndex and
	// LastIndex are the first and last of them (absent when none).
	Entries    uint64  `json:"entries"`
	FirstIndex *uint64 `json:"first_index,omitempty"`
	LastIndex  *uint64 `json:"last_index,omitempty"`
	// Anomalies counts the entries the statement could not use as the
	// formats say (unreadable, another tenant's, a malformed cost or token
	// count); AnomalySamples lists the first of them.
	Anomalies      uint64    `json:"anomalies"`
	AnomalySamples []Anomaly `json:"anomaly_samples,omitempty"`
}

// Anomaly is an entry a statement could not use.
type Anomaly struct {
	Index  uint64 `json:"index"`
	Reason string `json:"reason"`
}

// maxAnomalies is how many anomalies a statement lists.
const maxAnomalies = 20

// BudgetWindow is the reconciliation of one budget window: the spend
// recomputed from the ledger's settlements against the counter they recorded.
type BudgetWindow struct {
	Budget string `json:"budget"`
	// Scope is the budget's scope as its events say ("tenant",
	// "team=a,key=k1"), absent when they do not.
	Scope       string `json:"scope,omitempty"`
	WindowStart string `json:"window_start"`
	WindowEnd   string `json:"window_end,omitempty"`
	// Settlements counts the settle events listing the window; CostUSD and
	// Tokens are the sums of their cost_usd and tokens.
	Settlements uint64  `json:"settlements"`
	CostUSD     NanoUSD `json:"cost_usd"`
	Tokens      int64   `json:"tokens"`
	// SpentUSD and SpentTokens are the counter after the last settlement:
	// the largest spent_usd and spent_tokens recorded (settlements of
	// concurrent calls can reach the ledger out of counter order; a
	// counter only grows).
	SpentUSD    NanoUSD `json:"spent_usd"`
	SpentTokens int64   `json:"spent_tokens"`
	// LastIndex is the index of the window's last settle event read.
	LastIndex uint64 `json:"last_index"`
	// Status is "ok" when the sums equal the counter, else "mismatch".
	Status string `json:"status"`
}

// Budget reconciliation statuses.
const (
	StatusOK       = "ok"
	StatusMismatch = "mismatch"
)

// BudgetReconciliation checks the budget counters against the ledger: for
// every budget window that a settlement dated in the period lists, the
// sum of all its settlements read equals the counter's spend. A team's
// statement reconciles the budgets whose scope names the team (or, for
// events without scopes, whose settlements name it), with all their
// settlements. Duplicate settlements (attrs.duplicate: a retry the counter
// applied once) are not added; a settlement the counter missed
// (attrs.error) is, so it shows as a mismatch.
type BudgetReconciliation struct {
	// Status is "ok" when every window is, else "mismatch".
	Status     string         `json:"status"`
	Windows    []BudgetWindow `json:"windows"`
	Mismatches uint64         `json:"mismatches"`
}

// Statement is a usage statement. Its JSON form (Statement.JSON) is the
// document; STATEMENT.md specifies it.
type Statement struct {
	Format string `json:"format"`
	Tenant string `json:"tenant"`
	// Team, when not empty, restricts the statement to the calls (and
	// budget settlements) whose events name that team.
	Team string `json:"team,omitempty"`
	// From and To bound the period (RFC 3339, UTC): calls whose outcome
	// event is dated From <= time < To.
	From string `json:"from"`
	To   string `json:"to"`
	// GroupBy lists the dimensions of the lines, in order.
	GroupBy []string `json:"group_by"`
	// Skew is how far entry times may run out of index order (Go duration).
	Skew   string `json:"skew"`
	Ledger Ledger `json:"ledger"`
	// Lines, sorted by their keys in GroupBy order; Totals adds them up.
	Lines  []Line `json:"lines"`
	Totals Counts `json:"totals"`
	// Budgets reconciles budget counters with the ledger.
	Budgets BudgetReconciliation `json:"budget_reconciliation"`
	// Signature is the signed note over the SHA-256 of the statement's
	// canonical JSON without this member (Sign, Verify); empty if unsigned.
	Signature string `json:"signature,omitempty"`
}

// JSON returns the statement as indented JSON, ending in a newline: the
// same bytes for the same statement.
func (st *Statement) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("usage: encode statement: %w", err)
	}
	return append(b, '\n'), nil
}

// mask returns the statement's grouping.
func (st *Statement) mask() (dimMask, error) { return parseDims(st.GroupBy) }

// WriteCSV writes the lines as CSV: a header row, one row per line (the
// grouped keys, then the counts in countColumns' order), and a totals row
// whose first cell is "TOTAL". The numbers are the JSON's, as text.
// Key cells that a spreadsheet would take for a formula (starting with
// =, +, -, @, tab or CR) are prefixed with a single quote.
func (st *Statement) WriteCSV(w io.Writer) error {
	m, err := st.mask()
	if err != nil {
		return err
	}
	return writeCSV(w, m, st.Lines, &st.Totals)
}

func writeCSV(w io.Writer, m dimMask, lines []Line, totals *Counts) error {
	cw := csv.NewWriter(w)
	keys := m.names()
	lead := len(keys) == 0 // no key column: one empty one, for "TOTAL"
	if lead {
		keys = []string{""}
	}
	if err := cw.Write(append(slices.Clone(keys), countColumns...)); err != nil {
		return err
	}
	for i := range lines {
		l := &lines[i]
		row := make([]string, 0, len(keys)+len(countColumns))
		if lead {
			row = append(row, "")
		}
		for d := range nDims {
			if m&(1<<d) != 0 {
				row = append(row, csvText(l.key(d)))
			}
		}
		if err := cw.Write(append(row, l.values()...)); err != nil {
			return err
		}
	}
	row := make([]string, len(keys))
	row[0] = "TOTAL"
	if err := cw.Write(append(row, totals.values()...)); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// csvText defuses a cell a spreadsheet would evaluate as a formula.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// formatTime is how a statement writes its period bounds.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// parseStatement decodes a statement strictly: unknown members are refused.
func parseStatement(b []byte) (*Statement, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var st Statement
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("usage: not a usage statement: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("usage: not a usage statement: trailing data")
	}
	if st.Format != Format {
		return nil, fmt.Errorf("usage: statement format %q, want %q", st.Format, Format)
	}
	return &st, nil
}
