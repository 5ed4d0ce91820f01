package gateway

import (
	"strconv"
)

// NanoUSD is an amount of US dollars in billionths (1e-9 USD), the unit
// in which aigw prices calls, reserves and settles budgets: integers, so
// sums are exact and the spend of a period recomputed from the ledger
// equals the counters to the last unit. An int64 holds about ±9.2 billion
// dollars.
type NanoUSD int64

// String formats the amount as an exact decimal number of dollars with 9
// decimals, e.g. "0.000012500" or "-3.250000000".
func (n NanoUSD) String() string {
	var b [32]byte
	return string(n.Append(b[:0]))
}

// Append appends String's form of n to b.
func (n NanoUSD) Append(b []byte) []byte {
	u := uint64(n)
	if n < 0 {
		b = append(b, '-')
		u = uint64(-n)
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

// ParseNanoUSD parses a decimal number of dollars ("12", "0.25",
// "0.000000001") exactly; more than 9 decimals, a sign other than a
// leading '-', or an amount beyond the int64 range is an error.
func ParseNanoUSD(s string) (NanoUSD, error) {
	orig := s
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	whole, frac, dot := cutByte(s, '.')
	if whole == "" && frac == "" || dot && frac == "" || len(frac) > 9 {
		return 0, &strconv.NumError{Func: "ParseNanoUSD", Num: orig, Err: strconv.ErrSyntax}
	}
	var w uint64
	if whole != "" {
		var err error
		if w, err = strconv.ParseUint(whole, 10, 64); err != nil || w > (1<<63-1)/1_000_000_000 {
			return 0, &strconv.NumError{Func: "ParseNanoUSD", Num: orig, Err: strconv.ErrRange}
		}
	}
	var f uint64
	for i := 0; i < 9; i++ {
		f *= 10
		if i < len(frac) {
			c := frac[i]
			if c < '0' || c > '9' {
				return 0, &strconv.NumError{Func: "ParseNanoUSD", Num: orig, Err: strconv.ErrSyntax}
			}
			f += uint64(c - '0')
		}
	}
	v := w*1e9 + f
	if v > 1<<63-1 {
		return 0, &strconv.NumError{Func: "ParseNanoUSD", Num: orig, Err: strconv.ErrRange}
	}
	if neg {
		return -NanoUSD(v), nil
	}
	return NanoUSD(v), nil
}

func cutByte(s string, c byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// MarshalText encodes the amount as its exact decimal (String).
func (n NanoUSD) MarshalText() ([]byte, error) { return n.Append(nil), nil }

// UnmarshalText decodes an exact decimal amount of dollars.
func (n *NanoUSD) UnmarshalText(b []byte) error {
	v, err := ParseNanoUSD(string(b))
	if err != nil {
		return err
	}
	*n = v
	return nil
}
