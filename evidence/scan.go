package evidence

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"aigw/controls"
	"aigw/ledger"
)

// Population ids, in the order of a report.
const (
	PopCalls            = "calls"
	PopOutcomes         = "call-outcomes"
	PopRefusals         = "refusals"
	PopBlocked          = "blocked-requests"
	PopGuardrail        = "guardrail-decisions"
	PopProviderFailures = "provider-failures"
	PopFallbacks        = "fallbacks"
	PopToolCalls        = "tool-calls"
	PopAdmin            = "admin-changes"
	PopKeys             = "key-events"
	PopApprovals        = "approvals"
	PopOversight        = "oversight"
	PopDisclosures      = "disclosures"
	PopIncidents        = "incidents"
	PopAttestations     = "attestations"
	PopErasures         = "erasures"
)

// popDef says which entries a population holds.
type popDef struct {
	id, title string
	// where is the member condition in the query language of Population.Query.
	where string
	// listed: every member is written to the population's file.
	listed bool
	// system: the population reads the system log (else the tenant's).
	system bool
}

// Population numbers: their index in pops, in report order.
const (
	pCalls = iota
	pOutcomes
	pRefusals
	pBlocked
	pGuardrail
	pProviderFailures
	pFallbacks
	pToolCalls
	pAdmin
	pKeys
	pApprovals
	pOversight
	pDisclosures
	pIncidents
	pAttestations
	pErasures
	nPops
)

// pops is every population, in report order (indexed by number).
var pops = [nPops]popDef{
	{PopCalls, "Calls: every request received", `kind = "request"`, false, false},
	{PopOutcomes, "Call outcomes: every response and error", `kind IN ("response", "error")`, false, false},
	{PopRefusals, "Refused requests: authentication, authorisation, scope, validation, stops (4xx)", `kind = "error" AND 400 <= attrs.status < 500`, true, false},
	{PopBlocked, "Blocked requests and answers (guardrails): one per call", `kind = "error" AND attrs.error_code IN ("content_filter", "guardrail_blocked")`, true, false},
	{PopGuardrail, "Guardrail decisions: one event per inspection of a call's input or output, its checks' decisions in attrs.decisions", `kind = "guardrail"`, false, false},
	{PopProviderFailures, "Provider failures: attempts that did not succeed", `kind = "attempt" AND attrs.outcome != "ok"`, true, false},
	{PopFallbacks, "Fallbacks: failed attempts followed by another target", `kind = "attempt" AND attrs.next IS SET`, true, false},
	{PopToolCalls, "Tool calls", `kind = "tool_call"`, false, false},
	{PopAdmin, "Admin changes concerning the tenant", `log = "system" AND kind = "admin" AND attrs.tenant = TENANT`, true, true},
	{PopKeys, "Key events: API keys of the tenant and checkpoint signing keys", `log = "system" AND ((kind = "admin" AND attrs.action STARTS WITH "key." AND attrs.tenant = TENANT) OR kind = "key")`, true, true},
	{PopApprovals, "Human approvals and rejections", `kind = "approval"`, true, false},
	{PopOversight, "Human oversight: overrides, stops and resumes", `kind = "oversight"`, true, false},
	{PopDisclosures, "AI disclosures", `kind = "disclosure"`, true, false},
	{PopIncidents, "Incident records", `kind = "incident"`, true, false},
	{PopAttestations, "Human attestations", `kind = "attestation" AND (log = TENANT OR (log = "system" AND attrs.tenant IN (TENANT, NOT SET)))`, true, false},
	{PopErasures, "Payload erasures in the tenant's log", `log = "system" AND kind = "erasure" AND attrs.log = TENANT`, true, true},
}

// fields are the members of an entry the scan reads, as slices of it.
type fields struct {
	id, kind, time, traceID, policy []byte
	attrs, actor                    []byte
}

// parseFields slices the members the scan needs out of a canonical entry
// (verify has checked it is one). The members after attrs are walked from
// the end, where their layout is fixed (FORMATS.md §2); an entry that does
// not fit it has no id (the scan counts it as unreadable).
func parseFields(e []byte) fields {
	f, idAt, ok := parseTail(e)
	if !ok {
		return fields{}
	}
	rest := e[1:]
	if bytes.HasPrefix(rest, []byte(`"actor":{`)) {
		// The actor's strings hold no unescaped quote, so the first `},"`
		// after it ends it.
		end := bytes.Index(rest, []byte(`},"`))
		if end < 0 {
			return f
		}
		f.actor = rest[len(`"actor":`) : end+1]
		rest = rest[end+2:]
	}
	if bytes.HasPrefix(rest, []byte(`"attrs":{`)) {
		if start := len(e) - len(rest) + len(`"attrs":`); idAt > start {
			f.attrs = e[start:idAt]
		}
	}
	return f
}

// parseTail reads id, kind, policy, time and trace id from the end of a
// canonical entry: ...,"id":"<36>","kind":"k"[,"payload_sha256":"<64>"]
// [,"policy":"p"],"tenant":"t","time":"<27>"[,"trace_id":"<32>"],"v":1}
// idAt is the offset of the comma before "id".
func parseTail(e []byte) (f fields, idAt int, ok bool) {
	const v = `,"v":1}`
	if !bytes.HasSuffix(e, []byte(v)) {
		return f, 0, false
	}
	p := e[:len(e)-len(v)]
	cut := func(key string, n int) []byte { // a fixed-length value
		if len(p) < len(key)+n+1 || p[len(p)-1] != '"' || string(p[len(p)-1-n-len(key):len(p)-1-n]) != key {
			return nil
		}
		val := p[len(p)-1-n : len(p)-1]
		p = p[:len(p)-1-n-len(key)]
		return val
	}
	f.traceID = cut(`,"trace_id":"`, 32)
	if f.time = cut(`,"time":"`, len(ledger.TimeFormat)); f.time == nil {
		return f, 0, false
	}
	// tenant: a log name, no escapes.
	if len(p) < 2 || p[len(p)-1] != '"' {
		return f, 0, false
	}
	q := bytes.LastIndexByte(p[:len(p)-1], '"')
	const tk = `,"tenant":`
	if q < len(tk) || string(p[q-len(tk):q]) != tk {
		return f, 0, false
	}
	p = p[:q-len(tk)]
	// policy: any string; find its opening quote (one not escaped).
	if len(p) > 0 && p[len(p)-1] == '"' {
		end := len(p) - 1
		q := end
		for {
			q = bytes.LastIndexByte(p[:q], '"')
			if q < 0 {
				return f, 0, false
			}
			bs := 0
			for q-1-bs >= 0 && p[q-1-bs] == '\\' {
				bs++
			}
			if bs%2 == 0 {
				break
			}
		}
		const pk = `,"policy":`
		if q >= len(pk) && string(p[q-len(pk):q]) == pk {
			f.policy = p[q+1 : end]
			p = p[:q-len(pk)]
		}
	}
	cut(`,"payload_sha256":"`, 64)
	// kind: [a-z][a-z0-9_.]*, then the id.
	if len(p) < 2 || p[len(p)-1] != '"' {
		return f, 0, false
	}
	q = bytes.LastIndexByte(p[:len(p)-1], '"')
	const kk = `,"kind":`
	if q < len(kk) || string(p[q-len(kk):q]) != kk {
		return f, 0, false
	}
	f.kind = p[q+1 : len(p)-1]
	p = p[:q-len(kk)]
	if f.id = cut(`"id":"`, 36); f.id == nil {
		return f, 0, false
	}
	return f, len(p) - 1, true
}

// attrString returns the string value of a top-level attrs key of an
// attrs object without nested objects holding the same key (the callers
// only ask for keys of flat attrs: attempt, error).
func attrString(attrs []byte, key string) ([]byte, bool) {
	pat := make([]byte, 0, len(key)+4)
	pat = append(append(append(pat, '"'), key...), `":"`...)
	i := bytes.Index(attrs, pat)
	if i < 0 {
		return nil, false
	}
	v := attrs[i+len(pat):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return nil, false
	}
	return v[:j], true
}

func attrInt(attrs []byte, key string) (int64, bool) {
	pat := make([]byte, 0, len(key)+3)
	pat = append(append(append(pat, '"'), key...), `":`...)
	i := bytes.Index(attrs, pat)
	if i < 0 {
		return 0, false
	}
	v := attrs[i+len(pat):]
	n := 0
	for n < len(v) && (v[n] >= '0' && v[n] <= '9' || n == 0 && v[n] == '-') {
		n++
	}
	x, err := strconv.ParseInt(string(v[:n]), 10, 64)
	return x, err == nil
}

// cand is a sample candidate: a member with its sampling key.
type cand struct {
	key   uint64
	index uint64
	id    string
	leaf  ledger.Hash
}

// memberLine is one line of a population file.
type memberLine struct {
	pop  int
	line []byte
}

// openCall is a request of the period whose outcome was not yet seen.
type openCall struct {
	trace string
	index uint64
}

// blockScan is what the scan of one block of entries found; scans are
// merged in index order by the scanner's fold.
type blockScan struct {
	start, n uint64
	counts   [nPops]uint64
	members  []memberLine
	cands    [nPops][]cand
	// calls opened by a request and closed by an outcome, in index order;
	// the ones matched inside the block are dropped.
	opens  []openCall
	closes []string
	// time order: the times of the block's first and last entries, and
	// the regressions beyond the tolerance inside it.
	firstTime, lastTime string
	// gaps between consecutive entries of the period (index order): the
	// first and last such entry's time in microseconds, the largest gap
	// and the index of the entry after it.
	firstUS, lastUS int64
	maxGap          int64
	maxGapAt        uint64
	regressions     uint64
	maxRegression   time.Duration
	regressionAt    uint64
	// inPeriod counts entries of the period, first and last their indexes.
	inPeriod           uint64
	firstIdx, lastIdx  uint64
	after              uint64 // entries dated after the period
	policies           map[string]*PolicyInForce
	incomplete         uint64 // activity events missing a field AU-3 needs
	incompleteAt       uint64
	attestationMembers []attestation
	incidentMembers    []incident
	invalid            uint64 // entries whose fields could not be read
	guardChecks        uint64 // the checks' decisions in guardrail events
	invalidAt          uint64
}

// scanner scans the entries of one log for a period.
type scanner struct {
	log, tenant string
	system      bool
	from, to    string // ledger.TimeFormat
	skew        time.Duration
	seed        [32]byte
	k           int // samples per population
}

func (s *scanner) sampleKey(id []byte) uint64 {
	h := sha256.New()
	h.Write(s.seed[:])
	h.Write(id)
	var sum [32]byte
	h.Sum(sum[:0])
	return binary.BigEndian.Uint64(sum[:8])
}

// addCand keeps the k candidates with the smallest keys.
func addCand(cs []cand, c cand, k int) []cand {
	if len(cs) == k && c.key >= cs[k-1].key {
		return cs
	}
	i, _ := slices.BinarySearchFunc(cs, c, func(a, b cand) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return 0
	})
	cs = slices.Insert(cs, i, c)
	if len(cs) > k {
		cs = cs[:k]
	}
	return cs
}

// scan implements verify.Options.Scan.
func (s *scanner) scan(start uint64, entries [][]byte) any {
	b := &blockScan{start: start, n: uint64(len(entries))}
	var prevTime string
	for i, e := range entries {
		idx := start + uint64(i)
		f := parseFields(e)
		if f.id == nil || f.kind == nil || len(f.time) != len(ledger.TimeFormat) {
			if b.invalid == 0 {
				b.invalidAt = idx
			}
			b.invalid++
			continue
		}
		t := string(f.time)
		if b.firstTime == "" {
			b.firstTime = t
		}
		if prevTime != "" && t < prevTime {
			b.regress(idx, prevTime, t, s.skew)
		}
		prevTime = t
		b.lastTime = t
		if t < s.from {
			continue
		}
		if t >= s.to {
			b.after++
			continue
		}
		if !s.classify(b, idx, e, f) {
			continue // another tenant's event in the system log
		}
		if us, ok := micros(f.time); ok {
			if b.inPeriod == 0 {
				b.firstUS = us
			} else if g := us - b.lastUS; g > b.maxGap {
				b.maxGap, b.maxGapAt = g, idx
			}
			b.lastUS = us
		}
		if b.inPeriod == 0 {
			b.firstIdx = idx
		}
		b.lastIdx = idx
		b.inPeriod++
		if len(f.policy) > 0 {
			if b.policies == nil {
				b.policies = map[string]*PolicyInForce{}
			}
			p := b.policies[string(f.policy)]
			if p == nil {
				p = &PolicyInForce{Policy: unquote(f.policy), Log: s.log, FirstIndex: idx}
				b.policies[string(f.policy)] = p
			}
			p.Events++
			p.LastIndex = idx
		}
	}
	// Drop the calls closed inside the block.
	if len(b.opens) > 0 && len(b.closes) > 0 {
		closed := make(map[string]bool, len(b.closes))
		for _, c := range b.closes {
			closed[c] = true
		}
		kept := b.opens[:0]
		for _, o := range b.opens {
			if closed[o.trace] {
				delete(closed, o.trace)
				continue
			}
			kept = append(kept, o)
		}
		b.opens = kept
		rest := b.closes[:0]
		for _, c := range b.closes {
			if closed[c] {
				rest = append(rest, c)
				delete(closed, c)
			}
		}
		b.closes = rest
	}
	return b
}

// regress notes entry idx, dated t, if it is earlier than the entry
// before it (dated prev) by more than skew.
func (b *blockScan) regress(idx uint64, prev, t string, skew time.Duration) {
	p, ok1 := micros([]byte(prev))
	c, ok2 := micros([]byte(t))
	d := time.Duration(p-c) * time.Microsecond
	if !ok1 || !ok2 || d <= skew {
		return
	}
	b.regressions++
	if d > b.maxRegression {
		b.maxRegression, b.regressionAt = d, idx
	}
}

// micros reads an entry time (ledger.TimeFormat) as microseconds since
// 1970, without time.Parse (this runs for every entry).
func micros(t []byte) (int64, bool) {
	if len(t) != len(ledger.TimeFormat) || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':' || t[19] != '.' || t[26] != 'Z' {
		return 0, false
	}
	num := func(b []byte) int64 {
		var n int64
		for _, c := range b {
			n = n*10 + int64(c-'0')
		}
		return n
	}
	y, m, d := num(t[0:4]), num(t[5:7]), num(t[8:10])
	// Days from civil (H. Hinnant), proleptic Gregorian.
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	days := era*146097 + doe - 719468
	secs := days*86400 + num(t[11:13])*3600 + num(t[14:16])*60 + num(t[17:19])
	return secs*1_000_000 + num(t[20:26]), true
}

func unquote(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	var out string
	if err := json.Unmarshal(append(append([]byte{'"'}, b...), '"'), &out); err != nil {
		return string(b)
	}
	return out
}

func (s *scanner) add(b *blockScan, pop int, idx uint64, e []byte, f fields) {
	b.counts[pop]++
	key := s.sampleKey(f.id)
	cs := b.cands[pop]
	listed := pops[pop].listed
	if !listed && len(cs) == s.k && key >= cs[s.k-1].key {
		return // neither listed nor sampled: the leaf hash is not needed
	}
	leaf := ledger.LeafHash(e)
	b.cands[pop] = addCand(cs, cand{key: key, index: idx, id: string(f.id), leaf: leaf}, s.k)
	if listed {
		b.members = append(b.members, memberLine{pop: pop, line: memberJSON(s.log, idx, e, leaf)})
	}
}

// classify adds an entry of the period to the populations it belongs to.
// It reports whether the entry concerns the tenant: every entry of the
// tenant's log does; in the system log, only the tenant's events and
// deployment-wide ones (signing keys, attestations without a tenant).
func (s *scanner) classify(b *blockScan, idx uint64, e []byte, f fields) bool {
	kind := string(f.kind)
	if s.system {
		switch kind {
		case ledger.KindAdmin:
			tenant, _ := attrString(f.attrs, "tenant")
			if string(tenant) != s.tenant {
				return false
			}
			s.add(b, pAdmin, idx, e, f)
			if action, _ := attrString(f.attrs, "action"); bytes.HasPrefix(action, []byte("key.")) {
				s.add(b, pKeys, idx, e, f)
			}
		case ledger.KindKey:
			s.add(b, pKeys, idx, e, f)
		case ledger.KindErasure:
			if l, _ := attrString(f.attrs, "log"); string(l) != s.tenant {
				return false
			}
			s.add(b, pErasures, idx, e, f)
		case controls.KindAttestation:
			a, ok := parseAttestation(s.log, idx, e)
			if !ok || a.Tenant != "" && a.Tenant != s.tenant {
				return false
			}
			s.add(b, pAttestations, idx, e, f)
			b.attestationMembers = append(b.attestationMembers, a)
		default:
			return false
		}
		return true
	}
	switch kind {
	case ledger.KindRequest:
		s.add(b, pCalls, idx, e, f)
		if len(f.traceID) == 0 || !bytes.Contains(f.actor, []byte(`"key_id":"`)) {
			s.markIncomplete(b, idx)
		}
		if len(f.traceID) > 0 {
			b.opens = append(b.opens, openCall{trace: string(f.traceID), index: idx})
		}
	case ledger.KindResponse, ledger.KindError:
		s.add(b, pOutcomes, idx, e, f)
		status, ok := attrInt(f.attrs, "status")
		if !ok || len(f.traceID) == 0 {
			s.markIncomplete(b, idx)
		}
		if len(f.traceID) > 0 {
			b.closes = append(b.closes, string(f.traceID))
		}
		if kind == ledger.KindError {
			if status >= 400 && status < 500 {
				s.add(b, pRefusals, idx, e, f)
			}
			if code, _ := attrString(f.attrs, "error_code"); string(code) == "content_filter" || string(code) == "guardrail_blocked" {
				s.add(b, pBlocked, idx, e, f)
			}
		}
	case ledger.KindAttempt:
		if out, _ := attrString(f.attrs, "outcome"); string(out) != "ok" {
			s.add(b, pProviderFailures, idx, e, f)
		}
		if _, ok := attrString(f.attrs, "next"); ok {
			s.add(b, pFallbacks, idx, e, f)
		}
	case ledger.KindGuardrail:
		s.add(b, pGuardrail, idx, e, f)
		// Its checks' decisions (an event of one decision, as written
		// before 2026-11-29, has no count). attrInt finds the top-level
		// count: canonical JSON sorts "checks" before "decisions", and no
		// decision or finding has a key of that name.
		if n, ok := attrInt(f.attrs, "checks"); ok && n > 0 {
			b.guardChecks += uint64(n)
		} else {
			b.guardChecks++
		}
	case ledger.KindToolCall:
		s.add(b, pToolCalls, idx, e, f)
	case ledger.KindApproval:
		s.add(b, pApprovals, idx, e, f)
	case controls.KindOversight:
		s.add(b, pOversight, idx, e, f)
	case controls.KindDisclosure:
		s.add(b, pDisclosures, idx, e, f)
	case controls.KindIncident:
		s.add(b, pIncidents, idx, e, f)
		if in, ok := parseIncident(idx, e); ok {
			b.incidentMembers = append(b.incidentMembers, in)
		}
	case controls.KindAttestation:
		if a, ok := parseAttestation(s.log, idx, e); ok {
			s.add(b, pAttestations, idx, e, f)
			b.attestationMembers = append(b.attestationMembers, a)
		}
	}
	return true
}

func (s *scanner) markIncomplete(b *blockScan, idx uint64) {
	if b.incomplete == 0 {
		b.incompleteAt = idx
	}
	b.incomplete++
}

// memberJSON encodes a population file line: the entry's fields with its
// position and leaf hash.
func memberJSON(log string, idx uint64, e []byte, leaf ledger.Hash) []byte {
	var ev struct {
		Actor   map[string]any `json:"actor"`
		Attrs   map[string]any `json:"attrs"`
		ID      string         `json:"id"`
		Kind    string         `json:"kind"`
		Time    string         `json:"time"`
		TraceID string         `json:"trace_id"`
	}
	d := json.NewDecoder(bytes.NewReader(e))
	d.UseNumber()
	d.Decode(&ev) // verify checked the entry
	m := Member{Log: log, Index: idx, EventID: ev.ID, Time: ev.Time, Kind: ev.Kind, LeafHash: leaf.String(),
		TraceID: ev.TraceID, Actor: ev.Actor, Attrs: ev.Attrs}
	line, _ := json.Marshal(m) // maps are encoded with sorted keys
	return append(line, '\n')
}

// attestation is an attestation event, as the controls' evaluation reads it.
type attestation struct {
	Payload    string // the entry's payload commitment: the attached document
	Log        string
	Index      uint64
	EventID    string
	Tenant     string
	Framework  string
	Controls   []string
	Time       string
	ValidUntil string
}

func parseAttestation(log string, idx uint64, e []byte) (attestation, bool) {
	var ev struct {
		ID      string `json:"id"`
		Time    string `json:"time"`
		Payload string `json:"payload_sha256"`
		Attrs   struct {
			Framework  string   `json:"framework"`
			Controls   []string `json:"controls"`
			Tenant     string   `json:"tenant"`
			ValidUntil string   `json:"valid_until"`
		} `json:"attrs"`
	}
	if json.Unmarshal(e, &ev) != nil || ev.Attrs.Framework == "" || len(ev.Attrs.Controls) == 0 {
		return attestation{}, false
	}
	return attestation{Payload: ev.Payload, Log: log, Index: idx, EventID: ev.ID, Tenant: ev.Attrs.Tenant, Framework: ev.Attrs.Framework,
		Controls: ev.Attrs.Controls, Time: ev.Time, ValidUntil: ev.Attrs.ValidUntil}, true
}

// incident is an incident event, for the reporting-deadline rule.
type incident struct {
	Index      uint64
	EventID    string
	ID         string
	Action     string
	Severity   string
	AwareAt    string
	ReportedAt string
	ReportDue  string
}

func parseIncident(idx uint64, e []byte) (incident, bool) {
	var ev struct {
		ID    string `json:"id"`
		Attrs struct {
			IncidentID string `json:"incident_id"`
			Action     string `json:"action"`
			Severity   string `json:"severity"`
			AwareAt    string `json:"aware_at"`
			ReportedAt string `json:"reported_at"`
			ReportDue  string `json:"report_due"`
		} `json:"attrs"`
	}
	if json.Unmarshal(e, &ev) != nil || ev.Attrs.IncidentID == "" {
		return incident{}, false
	}
	a := ev.Attrs
	return incident{Index: idx, EventID: ev.ID, ID: a.IncidentID, Action: a.Action, Severity: a.Severity,
		AwareAt: a.AwareAt, ReportedAt: a.ReportedAt, ReportDue: a.ReportDue}, true
}
