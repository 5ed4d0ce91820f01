package usage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"aigw/ledger"
	"aigw/verify"

	"golang.org/x/mod/sumdb/note"
)

// Digest returns the SHA-256 that a statement's signature signs: of the
// RFC 8785 canonical form of the statement's JSON without its "signature"
// member. Any JCS implementation computes the same.
func Digest(stmtJSON []byte) ([32]byte, error) {
	canon, err := ledger.Canonicalize(stmtJSON)
	if err != nil {
		return [32]byte{}, fmt.Errorf("usage: statement is not JSON the canonical form accepts: %w", err)
	}
	out := make([]byte, 0, len(canon))
	out = append(out, '{')
	ok := members(canon, func(k, v []byte) bool {
		if string(k) == "signature" {
			return true
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, k...)
		out = append(out, `":`...)
		out = append(out, v...)
		return true
	})
	if !ok {
		return [32]byte{}, errors.New("usage: statement is not a JSON object")
	}
	out = append(out, '}')
	return sha256.Sum256(out), nil
}

// noteText is the text of a statement's signed note:
//
//	aigw-usage-statement/1
//	tenant <tenant>
//	period <from> <to>
//	sha256 <hex of Digest>
func noteText(st *Statement, d [32]byte) string {
	return fmt.Sprintf("%s\ntenant %s\nperiod %s %s\nsha256 %s\n", Format, st.Tenant, st.From, st.To, hex.EncodeToString(d[:]))
}

// Sign signs the statement with s (the ledger's checkpoint key, a
// ledger/signer.Signer): it sets st.Signature to the C2SP signed note of
// noteText, which names the statement's digest. An auditor verifies it
// with the log's verifier key (Verify, or any signed-note tool plus a
// JCS implementation).
func Sign(st *Statement, s note.Signer) error {
	st.Signature = ""
	b, err := st.JSON()
	if err != nil {
		return err
	}
	d, err := Digest(b)
	if err != nil {
		return err
	}
	signed, err := note.Sign(&note.Note{Text: noteText(st, d)}, s)
	if err != nil {
		return fmt.Errorf("usage: sign statement: %w", err)
	}
	st.Signature = string(signed)
	return nil
}

// Parse decodes a statement (strictly: an unknown member is an error). It
// checks nothing else; Verify does.
func Parse(stmtJSON []byte) (*Statement, error) { return parseStatement(stmtJSON) }

// Diff is one value where a statement differs from its recomputation
// from the ledger.
type Diff struct {
	// Where names the part: "statement", "ledger", "totals",
	// `line provider="openai" model="gpt-4o" price_version="p1"`,
	// `budget "b1" window 2026-11-01T00:00:00Z`, "budget_reconciliation".
	Where string
	// Field is the member that differs ("" when the whole line is missing
	// on one side).
	Field string
	// Statement and Ledger are the values in the statement and recomputed
	// from the ledger ("(none)" when absent).
	Statement, Ledger string
}

func (d Diff) String() string {
	if d.Field == "" {
		return fmt.Sprintf("%s: statement %s, ledger %s", d.Where, d.Statement, d.Ledger)
	}
	return fmt.Sprintf("%s: %s: statement %s, ledger %s", d.Where, d.Field, d.Statement, d.Ledger)
}

// VerifyError says why a statement did not verify. Each part is nil or
// empty when it checked out (or was not checked).
type VerifyError struct {
	// Signature: the statement is not signed by the key, or its digest
	// is not the one signed.
	Signature error
	// Ledger: the log does not verify up to the statement's checkpoint (it
	// wraps the *verify.MismatchError naming the entry, tile or
	// checkpoint), or the source served other entries than the verified ones.
	Ledger error
	// Diffs are the values where the statement differs from the ledger.
	Diffs []Diff
}

func (e *VerifyError) Error() string {
	var parts []string
	if e.Signature != nil {
		parts = append(parts, "signature: "+e.Signature.Error())
	}
	if e.Ledger != nil {
		parts = append(parts, "ledger: "+e.Ledger.Error())
	}
	for i, d := range e.Diffs {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("and %d more differences", len(e.Diffs)-i))
			break
		}
		parts = append(parts, d.String())
	}
	return "usage statement does not verify: " + strings.Join(parts, "; ")
}

// Unwrap returns the signature and ledger errors, for errors.Is and errors.As
// (errors.As(err, &*verify.MismatchError) finds a ledger mismatch).
func (e *VerifyError) Unwrap() []error {
	var out []error
	for _, err := range []error{e.Signature, e.Ledger} {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// ErrNotSigned is the Signature error of a statement without a signature.
var ErrNotSigned = errors.New("the statement is not signed")

// Verify checks a statement (its JSON, as written) against verifier, the
// ledger's checkpoint key: its signature, and that it is in format 1. With
// a source (nil: the signature only) it also recomputes the statement
// from the log at the statement's checkpoint and compares every value,
// verifies the log (verify.Log) up to the source's latest checkpoint,
// that it extends the statement's checkpoint, and that the entries
// recomputed from are the verified ones. trusted are further checkpoint
// keys of the log (earlier keys, after a rotation).
//
// It returns a *VerifyError when the statement does not verify, another
// error when it could not be checked (unreadable statement or source).
func Verify(ctx context.Context, stmtJSON []byte, verifier note.Verifier, src verify.Source, trusted ...note.Verifier) error {
	st, err := parseStatement(stmtJSON)
	if err != nil {
		return err
	}
	// What was decoded must be all that the JSON says: no member that a
	// case-insensitive decoder matched or dropped.
	again, err := st.JSON()
	if err != nil {
		return err
	}
	c1, err1 := ledger.Canonicalize(stmtJSON)
	c2, err2 := ledger.Canonicalize(again)
	if err1 != nil || err2 != nil || !bytes.Equal(c1, c2) {
		return fmt.Errorf("usage: not a usage statement of format %s: members differ once decoded", Format)
	}
	ve := &VerifyError{Signature: checkSignature(st, stmtJSON, verifier)}
	if src != nil {
		re, b, err := recompute(ctx, src, st)
		if err != nil {
			return err
		}
		if err := b.check(ctx, src, note.VerifierList(append([]note.Verifier{verifier}, trusted...)...), "", 0); err != nil {
			ve.Ledger = err
		}
		ve.Diffs = diff(st, re)
	}
	if ve.Signature != nil || ve.Ledger != nil || len(ve.Diffs) > 0 {
		return ve
	}
	return nil
}

func checkSignature(st *Statement, stmtJSON []byte, verifier note.Verifier) error {
	if st.Signature == "" {
		return ErrNotSigned
	}
	d, err := Digest(stmtJSON)
	if err != nil {
		return err
	}
	n, err := note.Open([]byte(st.Signature), note.VerifierList(verifier))
	if err != nil {
		return fmt.Errorf("the signature does not verify with key %s: %w", verifier.Name(), err)
	}
	if want := noteText(st, d); n.Text != want {
		return fmt.Errorf("the statement was changed after it was signed (its digest is %s; the signed note says %q)", hex.EncodeToString(d[:]), n.Text)
	}
	return nil
}

// recompute computes a statement again from its own parameters, at its checkpoint.
func recompute(ctx context.Context, src verify.Source, st *Statement) (*Statement, *binding, error) {
	from, err1 := time.Parse(time.RFC3339Nano, st.From)
	to, err2 := time.Parse(time.RFC3339Nano, st.To)
	skew, err3 := time.ParseDuration(st.Skew)
	mask, err4 := st.mask()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, nil, fmt.Errorf("usage: statement parameters: %w", err)
	}
	const base = 1<<dProvider | 1<<dModel | 1<<dPriceVersion
	if mask&base != base {
		return nil, nil, fmt.Errorf("usage: statement groups by %v: a statement always groups by provider, model and price_version", st.GroupBy)
	}
	p := Params{Tenant: st.Tenant, From: from, To: to, Team: st.Team, Skew: skew}
	if _, err := p.check(); err != nil {
		return nil, nil, err
	}
	if st.Ledger.Checkpoint.Note == "" {
		return nil, nil, errors.New("usage: the statement cites no checkpoint")
	}
	return compute(ctx, src, &p, mask, []byte(st.Ledger.Checkpoint.Note), true)
}

// diff lists where a statement differs from its recomputation re.
func diff(st, re *Statement) []Diff {
	var out []Diff
	add := func(where, field, a, b string) {
		if a != b {
			out = append(out, Diff{Where: where, Field: field, Statement: a, Ledger: b})
		}
	}
	add("statement", "tenant", st.Tenant, re.Tenant)
	add("statement", "team", st.Team, re.Team)
	add("statement", "from", st.From, re.From)
	add("statement", "to", st.To, re.To)
	add("statement", "group_by", strings.Join(st.GroupBy, ","), strings.Join(re.GroupBy, ","))
	add("statement", "skew", st.Skew, re.Skew)

	a, b := &st.Ledger, &re.Ledger
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	opt := func(v *uint64) string {
		if v == nil {
			return "(none)"
		}
		return u(*v)
	}
	add("ledger", "log", a.Log, b.Log)
	add("ledger", "origin", a.Origin, b.Origin)
	add("ledger", "checkpoint.size", u(a.Checkpoint.Size), u(b.Checkpoint.Size))
	add("ledger", "checkpoint.root", a.Checkpoint.Root, b.Checkpoint.Root)
	add("ledger", "checkpoint.note", strconv.Quote(a.Checkpoint.Note), strconv.Quote(b.Checkpoint.Note))
	add("ledger", "period_closed", strconv.FormatBool(a.PeriodClosed), strconv.FormatBool(b.PeriodClosed))
	add("ledger", "scan_from", u(a.ScanFrom), u(b.ScanFrom))
	add("ledger", "entries", u(a.Entries), u(b.Entries))
	add("ledger", "first_index", opt(a.FirstIndex), opt(b.FirstIndex))
	add("ledger", "last_index", opt(a.LastIndex), opt(b.LastIndex))
	add("ledger", "anomalies", u(a.Anomalies), u(b.Anomalies))
	add("ledger", "anomaly_samples", fmt.Sprint(a.AnomalySamples), fmt.Sprint(b.AnomalySamples))

	mask, err := st.mask()
	if err != nil {
		mask = 1<<nDims - 1
	}
	lines := func(ls []Line) (map[string]*Line, []string) {
		m := map[string]*Line{}
		var order []string
		for i := range ls {
			k := ls[i].describe(mask)
			if _, dup := m[k]; !dup {
				order = append(order, k)
			}
			m[k] = &ls[i]
		}
		return m, order
	}
	sm, sorder := lines(st.Lines)
	rm, rorder := lines(re.Lines)
	if len(sm) != len(st.Lines) {
		add("statement", "lines", fmt.Sprintf("%d lines, some with the same keys", len(st.Lines)), fmt.Sprintf("%d lines", len(re.Lines)))
	}
	for _, k := range sorder {
		if rl := rm[k]; rl == nil {
			out = append(out, Diff{Where: k, Statement: "present", Ledger: "(none)"})
		} else {
			diffCounts(&out, k, &sm[k].Counts, &rl.Counts)
		}
	}
	for _, k := range rorder {
		if sm[k] == nil {
			out = append(out, Diff{Where: k, Statement: "(none)", Ledger: "present: " + strings.Join(rm[k].values(), ",")})
		}
	}
	diffCounts(&out, "totals", &st.Totals, &re.Totals)

	add("budget_reconciliation", "status", st.Budgets.Status, re.Budgets.Status)
	add("budget_reconciliation", "mismatches", u(st.Budgets.Mismatches), u(re.Budgets.Mismatches))
	windows := func(ws []BudgetWindow) map[string]*BudgetWindow {
		m := map[string]*BudgetWindow{}
		for i := range ws {
			m[fmt.Sprintf("budget %q window %s", ws[i].Budget, ws[i].WindowStart)] = &ws[i]
		}
		return m
	}
	sw, rw := windows(st.Budgets.Windows), windows(re.Budgets.Windows)
	for i := range st.Budgets.Windows {
		w := &st.Budgets.Windows[i]
		k := fmt.Sprintf("budget %q window %s", w.Budget, w.WindowStart)
		r := rw[k]
		if r == nil {
			out = append(out, Diff{Where: k, Statement: "present", Ledger: "(none)"})
			continue
		}
		i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
		add(k, "window_end", w.WindowEnd, r.WindowEnd)
		add(k, "settlements", u(w.Settlements), u(r.Settlements))
		add(k, "cost_usd", w.CostUSD.String(), r.CostUSD.String())
		add(k, "tokens", i64(w.Tokens), i64(r.Tokens))
		add(k, "spent_usd", w.SpentUSD.String(), r.SpentUSD.String())
		add(k, "spent_tokens", i64(w.SpentTokens), i64(r.SpentTokens))
		add(k, "last_index", u(w.LastIndex), u(r.LastIndex))
		add(k, "status", w.Status, r.Status)
	}
	for i := range re.Budgets.Windows {
		w := &re.Budgets.Windows[i]
		k := fmt.Sprintf("budget %q window %s", w.Budget, w.WindowStart)
		if sw[k] == nil {
			out = append(out, Diff{Where: k, Statement: "(none)", Ledger: "present"})
		}
	}
	return out
}

func diffCounts(out *[]Diff, where string, a, b *Counts) {
	av, bv := a.values(), b.values()
	for i := range av {
		if av[i] != bv[i] {
			*out = append(*out, Diff{Where: where, Field: countColumns[i], Statement: av[i], Ledger: bv[i]})
		}
	}
}
