package ledger

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
)

// entryFields are the members of an entry the fast path returns (slices of the entry).
type entryFields struct {
	id, tenant, payload []byte
}

// scanner walks an entry; each method consumes input only on success.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) lit(l string) bool {
	if len(s.b)-s.i >= len(l) && string(s.b[s.i:s.i+len(l)]) == l {
		s.i += len(l)
		return true
	}
	return false
}

// str reads a JSON string of printable ASCII without escapes (0x20..0x7e
// except '"' and '\\'), which every step of ParseEntry leaves unchanged.
func (s *scanner) str() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	end := bytes.IndexByte(s.b[s.i+1:], '"')
	if end < 0 {
		return nil, false
	}
	v := s.b[s.i+1 : s.i+1+end]
	if !plainASCII(v) {
		return nil, false
	}
	s.i += end + 2
	return v, true
}

// plainASCII reports whether every byte of v is in 0x20..0x7e and not '\\',
// eight bytes at a time.
func plainASCII(v []byte) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for len(v) >= 8 {
		// Exact "some byte is" tests (graphics.stanford.edu/~seander/bithacks.html):
		// below 0x20, above 0x7e, or zero after xor with '\\'.
		x := binary.LittleEndian.Uint64(v)
		bs := x ^ (ones * '\\')
		below := (x - ones*0x20) &^ x & highs
		above := ((x + ones) | x) & highs
		backslash := (bs - ones) &^ bs & highs
		if below|above|backslash != 0 {
			return false
		}
		v = v[8:]
	}
	for _, c := range v {
		if c < 0x20 || c > 0x7e || c == '\\' {
			return false
		}
	}
	return true
}

// text reads a string member value that ledger validates as text: 1 to 256 bytes.
func (s *scanner) text() ([]byte, bool) {
	v, ok := s.str()
	return v, ok && len(v) > 0 && len(v) <= 256
}

const maxFastDepth = 32

// value reads a JSON value in canonical form.
func (s *scanner) value(depth int) bool {
	if s.i >= len(s.b) || depth > maxFastDepth {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, ok := s.str()
		return ok
	case c == '{':
		return s.object(depth+1, false)
	case c == '[':
		s.i++
		if s.lit("]") {
			return true
		}
		for {
			if !s.value(depth + 1) {
				return false
			}
			if s.lit("]") {
				return true
			}
			if !s.lit(",") {
				return false
			}
		}
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return false
}

// object reads an object whose member names (ASCII, so UTF-16 order is byte
// order) strictly increase, so there are no duplicates.
func (s *scanner) object(depth int, nonEmpty bool) bool {
	if !s.lit("{") {
		return false
	}
	if s.lit("}") {
		return !nonEmpty
	}
	var prev []byte
	for first := true; ; first = false {
		k, ok := s.str()
		if !ok || !first && bytes.Compare(prev, k) >= 0 || !s.lit(":") || !s.value(depth) {
			return false
		}
		prev = k
		if s.lit("}") {
			return true
		}
		if !s.lit(",") {
			return false
		}
	}
}

// number reads a JSON number that RFC 8785 leaves unchanged and ledger
// accepts: what ledger's canonicalNumber does, on the literal.
func (s *scanner) number() bool {
	j := s.i
	if j < len(s.b) && s.b[j] == '-' {
		j++
	}
	digits := func() int {
		k := j
		for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
			j++
		}
		return j - k
	}
	intStart := j
	n := digits()
	if n == 0 || n > 1 && s.b[intStart] == '0' {
		return false
	}
	integer := true
	if j < len(s.b) && s.b[j] == '.' {
		j++
		integer = false
		if digits() == 0 {
			return false
		}
	}
	if j < len(s.b) && (s.b[j] == 'e' || s.b[j] == 'E') {
		j++
		integer = false
		if j < len(s.b) && (s.b[j] == '+' || s.b[j] == '-') {
			j++
		}
		if digits() == 0 {
			return false
		}
	}
	lit := s.b[s.i:j]
	if integer && n <= 15 && !(lit[0] == '-' && lit[1] == '0') {
		s.i = j // at most 15 digits: exact in a double, and already canonical
		return true
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || integer && math.Abs(f) > 1<<53 {
		return false
	}
	if FormatNumber(f) != string(lit) {
		return false
	}
	s.i = j
	return true
}

// validTime reports whether ts is a time as TimeFormat writes it
// (2006-01-02T15:04:05.000000Z), a real date in the years 2000 to 9999:
// what time.Parse and Event.Validate accept, without allocating.
func validTime(ts []byte) bool {
	if len(ts) != len(TimeFormat) {
		return false
	}
	for i, c := range []byte(TimeFormat) {
		digit := c >= '0' && c <= '9'
		if digit != (ts[i] >= '0' && ts[i] <= '9') || !digit && ts[i] != c {
			return false
		}
	}
	num := func(i, j int) int {
		n := 0
		for _, c := range ts[i:j] {
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(0, 4), num(5, 7), num(8, 10)
	if year < 2000 || month < 1 || month > 12 || day < 1 || num(11, 13) > 23 || num(14, 16) > 59 || num(17, 19) > 59 {
		return false
	}
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month-1]
	if month == 2 && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		days = 29
	}
	return day <= days
}

func isLowerHex(b []byte, n int) bool {
	if len(b) != n {
		return false
	}
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// isEventID is ValidEventID on bytes (a lowercase UUIDv7), without a string conversion.
func isEventID(b []byte) bool {
	if len(b) != 36 {
		return false
	}
	for i, c := range b {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return b[14] == '7' && (b[19] == '8' || b[19] == '9' || b[19] == 'a' || b[19] == 'b')
}

// isLogName is ValidLogName on bytes.
func isLogName(b []byte) bool {
	if len(b) == 0 || len(b) > 63 {
		return false
	}
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (c == '-' || c == '_') && i > 0) {
			return false
		}
	}
	return true
}

func isKind(b []byte) bool {
	if len(b) == 0 || len(b) > 64 || b[0] < 'a' || b[0] > 'z' {
		return false
	}
	for _, c := range b[1:] {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// fastEntry reports whether e is certainly an entry that ParseEntry
// accepts, and if so returns its fields. false means "not proven", not "invalid".
func fastEntry(e []byte) (f entryFields, ok bool) {
	if len(e) > MaxEntrySize {
		return f, false
	}
	s := &scanner{b: e}
	if !s.lit("{") {
		return f, false
	}
	if s.lit(`"actor":{`) {
		agent := s.lit(`"agent_id":`)
		if agent {
			if _, ok := s.text(); !ok {
				return f, false
			}
		}
		if !agent || s.lit(",") {
			if !s.lit(`"key_id":`) {
				return f, false
			}
			if _, ok := s.text(); !ok {
				return f, false
			}
		}
		if !s.lit("},") {
			return f, false
		}
	}
	if s.lit(`"attrs":`) {
		if !s.object(1, true) || !s.lit(",") {
			return f, false
		}
	}
	if !s.lit(`"id":`) {
		return f, false
	}
	id, ok := s.str()
	if !ok || !isEventID(id) || !s.lit(`,"kind":`) {
		return f, false
	}
	if kind, ok := s.str(); !ok || !isKind(kind) || !s.lit(",") {
		return f, false
	}
	if s.lit(`"payload_sha256":`) {
		if f.payload, ok = s.str(); !ok || !isLowerHex(f.payload, 64) || !s.lit(",") {
			return f, false
		}
	}
	if s.lit(`"policy":`) {
		if _, ok := s.text(); !ok || !s.lit(",") {
			return f, false
		}
	}
	if !s.lit(`"tenant":`) {
		return f, false
	}
	tenant, ok := s.str()
	if !ok || !isLogName(tenant) || !s.lit(`,"time":`) {
		return f, false
	}
	if ts, ok := s.str(); !ok || !validTime(ts) || !s.lit(",") {
		return f, false
	}
	if s.lit(`"trace_id":`) {
		if trace, ok := s.str(); !ok || !isLowerHex(trace, 32) || !s.lit(",") {
			return f, false
		}
	}
	if !s.lit(`"v":1}`) || s.i != len(e) {
		return f, false
	}
	f.id, f.tenant = id, tenant
	return f, true
}

// EntryInfo holds the members of a valid entry that a sequencer or a
// verifier needs without decoding the whole event.
type EntryInfo struct {
	ID, Tenant    string
	PayloadSHA256 string // empty when the entry commits to no payload
}

// CheckEntry validates an entry exactly as [ParseEntry] does (it accepts
// the same entries and refuses the same ones) and returns its id, tenant and
// payload commitment. A zero-allocation scanner proves the common case
// canonical (printable ASCII strings without escapes, integers, members in
// their fixed order) in well under a microsecond; anything outside that
// subset falls back to ParseEntry, which stays the one authority
// (FuzzFastEntry checks the fast path never accepts what ParseEntry refuses).
func CheckEntry(e []byte) (EntryInfo, error) {
	if f, ok := fastEntry(e); ok {
		return EntryInfo{ID: string(f.id), Tenant: string(f.tenant), PayloadSHA256: string(f.payload)}, nil
	}
	ev, err := ParseEntry(e)
	if err != nil {
		return EntryInfo{}, err
	}
	return EntryInfo{ID: ev.ID, Tenant: ev.Tenant, PayloadSHA256: ev.PayloadSHA256}, nil
}
