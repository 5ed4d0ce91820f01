package usage

import (
	"aigw/money"
)

// NanoUSD is an exact amount of US dollars (see package money).
type NanoUSD = money.NanoUSD

// ParseNanoUSD parses an exact decimal amount of dollars (money.Parse).
func ParseNanoUSD(s string) (NanoUSD, error) { return money.Parse(s) }

// parseNano is ParseNanoUSD on bytes, without allocating.
func parseNano(s []byte) (NanoUSD, bool) { return money.ParseBytes(s) }

// addNano adds b to *a, reporting false (and leaving *a) on overflow.
func addNano(a *NanoUSD, b NanoUSD) bool {
	s := *a + b
	if (b > 0 && s < *a) || (b < 0 && s > *a) {
		return false
	}
	*a = s
	return true
}

// addInt adds b to *a, reporting false (and leaving *a) on overflow.
func addInt(a *int64, b int64) bool {
	s := *a + b
	if (b > 0 && s < *a) || (b < 0 && s > *a) {
		return false
	}
	*a = s
	return true
}
