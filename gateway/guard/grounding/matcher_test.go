package grounding

import (
	"math/rand/v2"
	"testing"
)

// bruteFind is matcher.find by definition: some window of len(phrase)
// words (or the whole text, if shorter) of one text holds need of the
// phrase's words in order.
func bruteFind(texts [][]int32, phrase []int32, need int) bool {
	for _, t := range texts {
		w := min(len(phrase), len(t))
		if w < need {
			continue
		}
		for s := 0; s+w <= len(t); s++ {
			if lcsBrute(phrase, t[s:s+w]) >= need {
				return true
			}
		}
	}
	return false
}

func lcsBrute(a, b []int32) int {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	if a[0] == b[0] && a[0] >= 0 {
		return 1 + lcsBrute(a[1:], b[1:])
	}
	return max(lcsBrute(a[1:], b), lcsBrute(a, b[1:]))
}

func TestMatcherBrute(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const vocab = 5
	for iter := range 3000 {
		var texts [][]int32
		m := &matcher{need: make([]int32, vocab), have: make([]int32, vocab), work: 1 << 30}
		for range 1 + rng.IntN(3) {
			var t []int32
			for range rng.IntN(12) {
				t = append(t, int32(rng.IntN(vocab)))
			}
			texts = append(texts, t)
			m.ids = append(m.ids, t...)
			m.segs = append(m.segs, len(m.ids))
		}
		phrase := make([]int32, 1+rng.IntN(7))
		for i := range phrase {
			phrase[i] = int32(rng.IntN(vocab+1)) - 1 // -1: a word the context lacks
		}
		need := 1 + rng.IntN(len(phrase))
		want := bruteFind(texts, phrase, need)
		found, ok := m.find(phrase, need)
		if !ok || found != want {
			t.Fatalf("iteration %d: find(%v, %d) in %v = %v, %v; want %v", iter, phrase, need, texts, found, ok, want)
		}
		for id := range vocab {
			if m.need[id] != 0 || m.have[id] != 0 {
				t.Fatalf("iteration %d: counters not reset: need %v have %v", iter, m.need, m.have)
			}
		}
	}
}
