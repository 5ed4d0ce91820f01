package usage

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// A small reader of the JSON of ledger entries: it finds the extent of
// values and walks objects and arrays without decoding what it does not
// need, and never allocates unless a string holds an escape. It trusts
// nothing: malformed input makes it report false, never panic.

// skipString returns the index after the string that starts at b[i] ('"').
func skipString(b []byte, i int) (int, bool) {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, false
		}
		j += k
		bs := 0
		for p := j - 1; p > i && b[p] == '\\'; p-- {
			bs++
		}
		if bs%2 == 0 {
			return j + 1, true
		}
		j++
	}
}

// skipValue returns the index after the JSON value that starts at b[i].
// Objects and arrays are walked iteratively (no recursion on hostile depth).
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, ok := skipString(b, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' {
			j++
		}
		if j == i {
			return 0, false
		}
		return j, true
	}
}

// members calls fn with the raw key (without quotes, escapes kept) and raw
// value of each member of the object obj, in order, until fn returns false.
// It reports false if obj is not a well-formed object.
func members(obj []byte, fn func(key, val []byte) bool) bool {
	if len(obj) < 2 || obj[0] != '{' {
		return false
	}
	i := 1
	if obj[i] == '}' {
		return i+1 == len(obj)
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return false
		}
		kend, ok := skipString(obj, i)
		if !ok || kend >= len(obj) || obj[kend] != ':' {
			return false
		}
		key := obj[i+1 : kend-1]
		vend, ok := skipValue(obj, kend+1)
		if !ok || vend >= len(obj) {
			return false
		}
		if !fn(key, obj[kend+1:vend]) {
			return true
		}
		switch obj[vend] {
		case ',':
			i = vend + 1
		case '}':
			return vend+1 == len(obj)
		default:
			return false
		}
	}
}

// elements calls fn with each raw element of the array arr, until fn
// returns false. It reports false if arr is not a well-formed array.
func elements(arr []byte, fn func(val []byte) bool) bool {
	if len(arr) < 2 || arr[0] != '[' {
		return false
	}
	i := 1
	if arr[i] == ']' {
		return i+1 == len(arr)
	}
	for {
		end, ok := skipValue(arr, i)
		if !ok || end >= len(arr) {
			return false
		}
		if !fn(arr[i:end]) {
			return true
		}
		switch arr[end] {
		case ',':
			i = end + 1
		case ']':
			return end+1 == len(arr)
		default:
			return false
		}
	}
}

// strVal returns the contents of a JSON string value: a slice of it when
// it has no escape, else its decoded copy.
func strVal(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, false
	}
	s := v[1 : len(v)-1]
	if bytes.IndexByte(s, '\\') < 0 {
		return s, true
	}
	var out string
	if err := json.Unmarshal(v, &out); err != nil {
		return nil, false
	}
	return []byte(out), true
}

// intVal reads an integer value: a JSON integer, or a string of one (the
// ledger writes integers beyond 2^53 as strings).
func intVal(v []byte) (int64, bool) {
	if len(v) > 0 && v[0] == '"' {
		s, ok := strVal(v)
		if !ok {
			return 0, false
		}
		v = s
	}
	if len(v) == 0 || len(v) > 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64) // does not allocate for short input
	return n, err == nil
}

// moneyVal reads an exact decimal amount: a string ("0.000012500"), or a
// JSON number written as a plain decimal (tolerated: older producers).
func moneyVal(v []byte) (NanoUSD, bool) {
	if len(v) > 0 && v[0] == '"' {
		s, ok := strVal(v)
		if !ok {
			return 0, false
		}
		v = s
	}
	return parseNano(v)
}
