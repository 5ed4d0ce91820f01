// Package ac is the guardrail detectors' Aho-Corasick automaton (content
// phrases, injection phrases and tokens, secrets keywords): a dense DFA
// over byte classes that reports every occurrence of every pattern,
// overlapping ones included, ordered by where they end, then longest
// first.
//
// Bytes that occur in no pattern share class 0; with Options.Fold, ASCII
// upper and lower case letters share one class, so that patterns match
// case-insensitively without a lowered copy of the text. State numbers are
// premultiplied by the row width, and a flag bit marks transitions into
// states that end a pattern. Each row has one more column than there are
// classes: the start of the state's output list, so that reporting needs
// no division.
//
// A transition waits for the one before it (a dependent load), so a long
// text is walked as four quarters at once, interleaved: each quarter but
// the first starts MaxLen-1 bytes early, from the start state, and reports
// only the patterns that end in it. From there on its state has every
// pattern that ends at a byte among its outputs (a pattern is at most
// MaxLen bytes long), so the matches, and their order, are those of one
// walk from the start.
package ac

import (
	"errors"
	"fmt"
	"slices"
	"unsafe"
)

// Options configure an Automaton.
type Options struct {
	// Fold matches ASCII letters case-insensitively (patterns and text).
	Fold bool
}

// Automaton finds patterns in texts. It is safe for concurrent use.
type Automaton struct {
	cls    [256]uint16
	stride uint32 // classes + 1: the last column is the output list's start
	trans  []uint32
	outs   []int32 // output lists (pattern ids, longest first), each ending with -1
	lens   []int
	maxLen int
}

// Match is an occurrence of pattern Pattern at text[Start:End].
type Match struct {
	Pattern    int
	Start, End int
}

const matchFlag = 1 << 31

// New builds the automaton of patterns (none empty). Pattern ids are their
// indexes in patterns.
func New(patterns []string, opt Options) (*Automaton, error) {
	a := &Automaton{lens: make([]int, len(patterns))}
	fold := func(c byte) byte {
		if opt.Fold && 'A' <= c && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	// Byte classes.
	var seen [256]uint16
	ncls := uint32(1)
	for id, p := range patterns {
		if p == "" {
			return nil, fmt.Errorf("ac: pattern %d is empty", id)
		}
		for i := 0; i < len(p); i++ {
			if c := fold(p[i]); seen[c] == 0 {
				seen[c] = uint16(ncls)
				ncls++
			}
		}
		a.lens[id] = len(p)
		a.maxLen = max(a.maxLen, len(p))
	}
	for b := range 256 {
		a.cls[b] = seen[fold(byte(b))]
	}
	a.stride = ncls + 1
	stride := int(a.stride)

	// The trie, in the table of state numbers (0: no child yet; the
	// start state is no one's child).
	next := make([]uint32, stride)
	own := [][]int32{nil}
	for id, p := range patterns {
		s := 0
		for i := 0; i < len(p); i++ {
			c := int(a.cls[p[i]])
			t := int(next[s*stride+c])
			if t == 0 {
				t = len(own)
				if uint64(t+1)*uint64(stride) >= matchFlag {
					return nil, errors.New("ac: too many patterns")
				}
				own = append(own, nil)
				next = append(next, make([]uint32, stride)...)
				next[s*stride+c] = uint32(t)
			}
			s = t
		}
		own[s] = append(own[s], int32(id))
	}

	// Failure transitions and output lists, breadth first (a state's
	// failure state is shallower, so done before it).
	ns := len(own)
	fail := make([]int, ns)
	out := make([][]int32, ns)
	queue := make([]int, 1, ns)
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if s != 0 {
			out[s] = slices.Concat(own[s], out[fail[s]])
		}
		for c := 1; c < stride-1; c++ {
			i := s*stride + c
			if t := next[i]; t != 0 {
				if s != 0 {
					fail[t] = int(next[fail[s]*stride+c])
				}
				queue = append(queue, int(t))
			} else if s != 0 {
				next[i] = next[fail[s]*stride+c]
			}
		}
	}

	// The table, in place: premultiplied state numbers, flagged.
	a.trans = next
	for s := range ns {
		row := a.trans[s*stride : (s+1)*stride]
		for c := range stride - 1 {
			t := row[c]
			if len(out[t]) > 0 {
				row[c] = t*a.stride | matchFlag
			} else {
				row[c] = t * a.stride
			}
		}
		if len(out[s]) > 0 {
			row[stride-1] = uint32(len(a.outs))
			a.outs = append(a.outs, out[s]...)
			a.outs = append(a.outs, -1)
		}
	}
	return a, nil
}

// Len returns the length of pattern id.
func (a *Automaton) Len(id int) int { return a.lens[id] }

// MaxLen returns the length of the longest pattern.
func (a *Automaton) MaxLen() int { return a.maxLen }

// Contains reports whether s holds a pattern.
func (a *Automaton) Contains(s string) bool {
	trans, cls := a.trans, &a.cls
	st := uint32(0)
	for i := 0; i < len(s); i++ {
		st = trans[st+uint32(cls[s[i]])]
		if st&matchFlag != 0 {
			return true
		}
	}
	return false
}

// splitMin is the shortest quarter Append walks at once with the others.
const splitMin = 64

// Append appends every occurrence of a pattern in s to dst, overlapping
// ones included, ordered by End, then longest first (then by id, for equal
// patterns).
func (a *Automaton) Append(dst []Match, s string) []Match {
	if a.maxLen == 0 {
		return dst
	}
	pre := a.maxLen - 1
	q := len(s) / 4
	if q < splitMin || q < 2*pre {
		dst, _ = a.walk(dst, s, 0, len(s), 0)
		return dst
	}
	// Quarter k is s[k*q:(k+1)*q] (the last one runs to the end); walker k
	// starts at b[k] = k*q-pre (0 for the first) and walks q bytes in step
	// with the others, then the rest of its quarter alone.
	b1, b2, b3 := q-pre, 2*q-pre, 3*q-pre
	t := [4]string{s[:q], s[b1 : b1+q], s[b2 : b2+q], s[b3 : b3+q]}
	var scratch [3][16]Match
	m1, m2, m3 := scratch[0][:0], scratch[1][:0], scratch[2][:0]
	var st [4]uint32
	for i := 0; ; i++ {
		if i = a.step4(&t, i, &st); i == q {
			break
		}
		if st[0]&matchFlag != 0 {
			st[0] &^= matchFlag
			dst = a.emit(dst, st[0], i)
		}
		if st[1]&matchFlag != 0 {
			st[1] &^= matchFlag
			if i >= pre {
				m1 = a.emit(m1, st[1], b1+i)
			}
		}
		if st[2]&matchFlag != 0 {
			st[2] &^= matchFlag
			if i >= pre {
				m2 = a.emit(m2, st[2], b2+i)
			}
		}
		if st[3]&matchFlag != 0 {
			st[3] &^= matchFlag
			if i >= pre {
				m3 = a.emit(m3, st[3], b3+i)
			}
		}
	}
	s1, s2, s3 := st[1], st[2], st[3]
	dst = append(dst, m1...)
	dst, _ = a.walk(dst, s, b1+q, 2*q, s1)
	dst = append(dst, m2...)
	dst, _ = a.walk(dst, s, b2+q, 3*q, s2)
	dst = append(dst, m3...)
	dst, _ = a.walk(dst, s, b3+q, len(s), s3)
	return dst
}

// step4 walks t[0][i:], t[1][i:], t[2][i:] and t[3][i:] (of one length)
// at once from states st until one of them enters a state that ends a
// pattern, and returns the index of the byte it entered on (or the length).
// st holds the states reached (the flag left on).
//
// The table is read without bounds checks: every state is a row of it
// (New checks that they fit) and every class a column.
func (a *Automaton) step4(t *[4]string, i int, st *[4]uint32) int {
	t0, t1, t2, t3 := t[0], t[1], t[2], t[3]
	t1, t2, t3 = t1[:len(t0)], t2[:len(t0)], t3[:len(t0)]
	s0, s1, s2, s3 := st[0], st[1], st[2], st[3]
	trans, cls := unsafe.Pointer(unsafe.SliceData(a.trans)), &a.cls
	for ; i < len(t0); i++ {
		s0 = *(*uint32)(unsafe.Add(trans, 4*uintptr(s0+uint32(cls[t0[i]]))))
		s1 = *(*uint32)(unsafe.Add(trans, 4*uintptr(s1+uint32(cls[t1[i]]))))
		s2 = *(*uint32)(unsafe.Add(trans, 4*uintptr(s2+uint32(cls[t2[i]]))))
		s3 = *(*uint32)(unsafe.Add(trans, 4*uintptr(s3+uint32(cls[t3[i]]))))
		if (s0|s1|s2|s3)&matchFlag != 0 {
			break
		}
	}
	*st = [4]uint32{s0, s1, s2, s3}
	return i
}

// State is where a walk of an Automaton stands after the bytes it read.
// The zero State is the start.
type State uint32

// Walk walks s[i:] from state st in one pass, appending the occurrences
// that end in s[i:] to dst in the order of Append (offsets in s), and
// returns the state it ends in. Walking s[:k] from the start, then s[k:]
// from the state that returns, finds what Append finds in s.
func (a *Automaton) Walk(dst []Match, s string, i int, st State) ([]Match, State) {
	dst, end := a.walk(dst, s, i, len(s), uint32(st))
	return dst, State(end)
}

// walk walks s[i:j] from state st (premultiplied, without the flag),
// appending the occurrences that end in s[i:j] to dst, and returns the
// state it ends in.
func (a *Automaton) walk(dst []Match, s string, i, j int, st uint32) ([]Match, uint32) {
	trans, cls := a.trans, &a.cls
	for ; i < j; i++ {
		st = trans[st+uint32(cls[s[i]])]
		if st&matchFlag != 0 {
			st &^= matchFlag
			dst = a.emit(dst, st, i)
		}
	}
	return dst, st
}

// emit appends the output of state st (premultiplied, without the flag),
// entered on s[i], to dst.
func (a *Automaton) emit(dst []Match, st uint32, i int) []Match {
	for _, id := range a.outs[a.trans[st+a.stride-1]:] {
		if id < 0 {
			break
		}
		dst = append(dst, Match{Pattern: int(id), Start: i + 1 - a.lens[id], End: i + 1})
	}
	return dst
}
