package injection

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// morseCue is strings.Contains of ".-", "-." or "..." in one pass.
func TestMorseCue(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = ".-. x"[rng.IntN(5)]
		}
		s := string(b)
		want := strings.Contains(s, ".-") || strings.Contains(s, "-.") || strings.Contains(s, "...")
		if got := morseCue(s); got != want {
			t.Fatalf("morseCue(%q) = %v; want %v", s, got, want)
		}
	}
}
