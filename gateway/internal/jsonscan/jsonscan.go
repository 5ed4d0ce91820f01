// Package jsonscan is the validating JSON scanner under the gateway's
// hand-written readers (upstream chat chunks and answers, A2A messages):
// it steps over white space, strings, numbers, literals and whole values
// exactly where encoding/json would accept them, so that a reader that
// meets anything else can hand the document to encoding/json instead.
package jsonscan

import "bytes"

// MaxDepth bounds the nesting Value follows (encoding/json allows 10,000):
// a reader gives deeper documents to encoding/json, which keeps the
// recursion here shallow.
const MaxDepth = 200

// Scanner reads B from I. Its methods start at the first byte of what they
// read (white space skipped by WS), leave I just past it, and report false
// on invalid JSON (I is then meaningless).
type Scanner struct {
	B []byte
	I int
}

// Valid reports whether b is one valid JSON value, white space around it
// allowed, nested at most MaxDepth deep.
func Valid(b []byte) bool {
	s := Scanner{B: b}
	s.WS()
	if !s.Value(0) {
		return false
	}
	s.WS()
	return s.I == len(b)
}

// WS skips JSON white space.
func (s *Scanner) WS() {
	for s.I < len(s.B) {
		switch s.B[s.I] {
		case ' ', '\t', '\n', '\r':
			s.I++
		default:
			return
		}
	}
}

// At reports whether the byte at I is c.
func (s *Scanner) At(c byte) bool { return s.I < len(s.B) && s.B[s.I] == c }

// Str skips the string at I (its opening quote) and reports whether it is
// valid (bytes from 0x20 up but '"' and '\\' as they are, valid escapes),
// and whether it holds escapes and bytes beyond ASCII.
func (s *Scanner) Str() (ok, esc, high bool) {
	b := s.B
	for i := s.I + 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			s.I = i + 1
			return true, esc, high
		case c == '\\':
			esc = true
			i++
			if i >= len(b) {
				return false, false, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return false, false, false
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false, false, false
					}
				}
				i += 4
			default:
				return false, false, false
			}
		case c < 0x20:
			return false, false, false
		case c >= 0x80:
			high = true
		}
	}
	return false, false, false
}

// Digits skips decimal digits and reports whether there was one.
func (s *Scanner) Digits() bool {
	start := s.I
	for s.I < len(s.B) && s.B[s.I] >= '0' && s.B[s.I] <= '9' {
		s.I++
	}
	return s.I > start
}

// Number skips the number at I.
func (s *Scanner) Number() bool {
	if s.B[s.I] == '-' {
		s.I++
	}
	switch {
	case s.I >= len(s.B):
		return false
	case s.B[s.I] == '0':
		s.I++
	case s.B[s.I] >= '1' && s.B[s.I] <= '9':
		s.Digits()
	default:
		return false
	}
	if s.I < len(s.B) && s.B[s.I] == '.' {
		s.I++
		if !s.Digits() {
			return false
		}
	}
	if s.I < len(s.B) && (s.B[s.I] == 'e' || s.B[s.I] == 'E') {
		s.I++
		if s.I < len(s.B) && (s.B[s.I] == '+' || s.B[s.I] == '-') {
			s.I++
		}
		if !s.Digits() {
			return false
		}
	}
	return true
}

// Literal skips lit (true, false or null) if it is at I.
func (s *Scanner) Literal(lit string) bool {
	if !bytes.HasPrefix(s.B[s.I:], []byte(lit)) {
		return false
	}
	s.I += len(lit)
	return true
}

// Value skips the value at I, depth levels below the document's top (0 for
// the top), and reports whether it is valid JSON nested at most MaxDepth
// deep.
func (s *Scanner) Value(depth int) bool {
	if s.I >= len(s.B) {
		return false
	}
	switch c := s.B[s.I]; {
	case c == '{' || c == '[':
		if depth >= MaxDepth {
			return false
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		s.I++
		s.WS()
		if s.At(end) {
			s.I++
			return true
		}
		for {
			if c == '{' {
				if !s.At('"') {
					return false
				}
				if ok, _, _ := s.Str(); !ok {
					return false
				}
				s.WS()
				if !s.At(':') {
					return false
				}
				s.I++
				s.WS()
			}
			if !s.Value(depth + 1) {
				return false
			}
			s.WS()
			if s.I >= len(s.B) {
				return false
			}
			switch s.B[s.I] {
			case ',':
				s.I++
				s.WS()
			case end:
				s.I++
				return true
			default:
				return false
			}
		}
	case c == '"':
		ok, _, _ := s.Str()
		return ok
	case c == '-' || c >= '0' && c <= '9':
		return s.Number()
	case c == 't':
		return s.Literal("true")
	case c == 'f':
		return s.Literal("false")
	case c == 'n':
		return s.Literal("null")
	}
	return false
}
