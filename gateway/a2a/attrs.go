package a2a

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// attrBuf builds an event's attributes as the JSON object of
// ledger.Event.RawAttrs, encoding each value as it is set: no map, and
// the ledger's canonicalization gets plain JSON to sort. A key set again
// takes its last value, as a map would. Strings are written byte for
// byte (only '"', '\\' and control characters escaped), so a string the
// ledger would refuse (invalid UTF-8) is still refused.
type attrBuf struct {
	kv  []attrKV
	buf []byte
	arr [16]attrKV
}

type attrKV struct {
	key        string
	start, end int // the value in buf
}

var attrPool = sync.Pool{New: func() any { return &attrBuf{buf: make([]byte, 0, 384)} }}

func newAttrs() *attrBuf {
	a := attrPool.Get().(*attrBuf)
	a.kv, a.buf = a.arr[:0], a.buf[:0]
	return a
}

// release gives a back for reuse (after json).
func (a *attrBuf) release() {
	if cap(a.buf) <= 4096 {
		attrPool.Put(a)
	}
}

// set sets attribute k to v (as ledger.Event.Attrs would hold it).
func (a *attrBuf) set(k string, v any) {
	start := len(a.buf)
	a.buf = appendAttrValue(a.buf, v, 0)
	a.kv = append(a.kv, attrKV{k, start, len(a.buf)})
}

// json returns the attributes as a JSON object, keys sorted.
func (a *attrBuf) json() []byte {
	slices.SortStableFunc(a.kv, func(x, y attrKV) int { return strings.Compare(x.key, y.key) })
	n := len(a.buf) + 2
	for _, kv := range a.kv {
		n += len(kv.key) + 4
	}
	out := make([]byte, 0, n)
	out = append(out, '{')
	first := true
	for i, kv := range a.kv {
		if i+1 < len(a.kv) && a.kv[i+1].key == kv.key {
			continue // set again later
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = appendAttrString(out, kv.key)
		out = append(out, ':')
		out = append(out, a.buf[kv.start:kv.end]...)
	}
	return append(out, '}')
}

// maxAttrDepth bounds the nesting of an attribute value (as the ledger's).
const maxAttrDepth = 64

func appendAttrValue(out []byte, v any, depth int) []byte {
	if depth > maxAttrDepth {
		return append(out, '!') // not JSON: the ledger refuses the event
	}
	switch t := v.(type) {
	case nil:
		return append(out, "null"...)
	case string:
		return appendAttrString(out, t)
	case bool:
		return strconv.AppendBool(out, t)
	case int:
		return strconv.AppendInt(out, int64(t), 10)
	case int64:
		return strconv.AppendInt(out, t, 10)
	case int32:
		return strconv.AppendInt(out, int64(t), 10)
	case uint32:
		return strconv.AppendUint(out, uint64(t), 10)
	case uint64:
		return strconv.AppendUint(out, t, 10)
	case Budget:
		out = append(out, `{"nano_usd":`...)
		out = strconv.AppendInt(out, t.NanoUSD, 10)
		out = append(out, `,"tokens":`...)
		out = strconv.AppendInt(out, t.Tokens, 10)
		return append(out, '}')
	case []string:
		return appendArray(out, t, appendAttrString)
	case []any:
		out = append(out, '[')
		for i, e := range t {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendAttrValue(out, e, depth+1)
		}
		return append(out, ']')
	case map[string]any:
		out = append(out, '{')
		i := 0
		for k, e := range t {
			if i > 0 {
				out = append(out, ',')
			}
			i++
			out = appendAttrString(out, k)
			out = append(out, ':')
			out = appendAttrValue(out, e, depth+1)
		}
		return append(out, '}')
	}
	b, err := json.Marshal(v)
	if err != nil {
		return append(out, '!')
	}
	return append(out, b...)
}

// appendAttrString appends s as a JSON string, its bytes as they are but
// for '"', '\\' and control characters.
func appendAttrString(out []byte, s string) []byte {
	out = append(out, '"')
	last := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		out = append(out, s[last:i]...)
		switch {
		case c == '"' || c == '\\':
			out = append(out, '\\', c)
		default:
			const hex = "0123456789abcdef"
			out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		last = i + 1
	}
	out = append(out, s[last:]...)
	return append(out, '"')
}
