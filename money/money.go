// Package money is the exact money type of aigw's prices, budgets,
// ledger events and usage statements. It imports nothing of aigw, so both
// the gateway and the ledger's readers (usage) share it.
package money

import (
	"strconv"
)

// NanoUSD is an amount of US dollars in billionths (1e-9 USD), the unit
// in which aigw prices calls, reserves and settles budgets and writes
// costs into the ledger: integers, so sums are exact and the spend of a
// period recomputed from the ledger equals the counters to the last unit.
// An int64 holds about ±9.2 billion dollars. Its text form is an exact
// decimal with 9 decimals, e.g. "0.000012500" or "-3.250000000".
type NanoUSD int64

// String formats the amount as an exact decimal number of dollars with 9 decimals.
func (n NanoUSD) String() string {
	var b [32]byte
	return string(n.Append(b[:0]))
}

// Append appends String's form of n to b.
func (n NanoUSD) Append(b []byte) []byte {
	u := uint64(n)
	if n < 0 {
		b = append(b, '-')
		u = -u
	}
	b = strconv.AppendUint(b, u/1e9, 10)
	b = append(b, '.')
	frac := u % 1e9
	var d [9]byte
	for i := 8; i >= 0; i-- {
		d[i] = byte('0' + frac%10)
		frac /= 10
	}
	return append(b, d[:]...)
}

// Parse parses a decimal number of dollars ("12", "0.25",
// "0.000012500") exactly; more than 9 decimals, a sign other than a
// leading '-', or an amount beyond the int64 range is an error.
func Parse(s string) (NanoUSD, error) {
	v, ok := ParseBytes([]byte(s))
	if !ok {
		return 0, &strconv.NumError{Func: "money.Parse", Num: s, Err: strconv.ErrSyntax}
	}
	return v, nil
}

// ParseBytes is Parse on bytes, without allocating; ok is false where
// Parse fails.
func ParseBytes(s []byte) (NanoUSD, bool) {
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	whole, frac := s, []byte(nil)
	dot := false
	for i, c := range s {
		if c == '.' {
			whole, frac, dot = s[:i], s[i+1:], true
			break
		}
	}
	if len(whole) == 0 && len(frac) == 0 || dot && len(frac) == 0 || len(frac) > 9 || len(whole) > 19 {
		return 0, false
	}
	var w uint64
	for _, c := range whole {
		if c < '0' || c > '9' {
			return 0, false
		}
		w = w*10 + uint64(c-'0')
	}
	if w > (1<<63-1)/1_000_000_000 {
		return 0, false
	}
	var f uint64
	for i := 0; i < 9; i++ {
		f *= 10
		if i < len(frac) {
			c := frac[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			f += uint64(c - '0')
		}
	}
	v := w*1e9 + f
	if v > 1<<63-1 {
		return 0, false
	}
	if neg {
		return -NanoUSD(v), true
	}
	return NanoUSD(v), true
}

// MarshalText encodes the amount as its exact decimal (String).
func (n NanoUSD) MarshalText() ([]byte, error) { return n.Append(nil), nil }

// UnmarshalText decodes an exact decimal amount of dollars.
func (n *NanoUSD) UnmarshalText(b []byte) error {
	v, ok := ParseBytes(b)
	if !ok {
		return &strconv.NumError{Func: "money.Parse", Num: string(b), Err: strconv.ErrSyntax}
	}
	*n = v
	return nil
}
