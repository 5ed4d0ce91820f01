package usage

import "testing"

// The parser and its cases are money's (money/money_test.go); ParseNanoUSD
// is money.Parse. Here: usage's own checked addition.
func TestNanoUSD(t *testing.T) {
	if got, err := ParseNanoUSD("0.000012500"); err != nil || got != 12_500 {
		t.Errorf("ParseNanoUSD = %d, %v", got, err)
	}
	a := NanoUSD(1<<63 - 2)
	if addNano(&a, 2) || a != 1<<63-2 {
		t.Errorf("overflow not detected: %d", a)
	}
}
