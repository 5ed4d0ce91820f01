package spend

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"aigw/gateway"
)

// Budget events are built as JSON by appending (a call emits two of them:
// maps and reflection would cost more than the counter itself).

// windowKey names a budget window in the cache of its static JSON.
type windowKey struct {
	tenant, id string
	start      int64
}

// windowJSON is a budget window's members that do not change in a call's
// events, encoded once: its id, scope and window start (the window's end
// and the limits are in the budget's admin event).
type windowJSON struct {
	id, scope, start []byte
	key              string // the counter's key
}

// static returns the cached JSON of a budget window.
func (s *Spender) static(a applied) *windowJSON {
	k := windowKey{a.b.Tenant, a.b.ID, a.start.Unix()}
	s.mu.Lock()
	w, ok := s.statics[k]
	s.mu.Unlock()
	if ok {
		return w
	}
	w = &windowJSON{
		id:    appendString(nil, a.b.ID),
		scope: appendString(nil, a.b.Scope.String()),
		start: append(a.start.AppendFormat([]byte{'"'}, time.RFC3339), '"'),
		key:   lineKey(a.b, a.start),
	}
	s.mu.Lock()
	if len(s.statics) > 10000 { // windows roll over: forget the old ones
		clear(s.statics)
	}
	s.statics[k] = w
	s.mu.Unlock()
	return w
}

// appendBudgets appends "budgets":[...] with each window's counters after
// the operation (states nil: unknown; reserved false: spent only). Members
// are written in canonical (sorted) order, so the ledger's canonical
// encoding copies them as they are.
func (s *Spender) appendBudgets(b []byte, on []applied, states []State, reserved bool) []byte {
	b = append(b, `"budgets":[`...)
	for i, a := range on {
		if i > 0 {
			b = append(b, ',')
		}
		w := a.w
		if w == nil {
			w = s.static(a)
		}
		b = append(b, `{"id":`...)
		b = append(b, w.id...)
		var st State
		known := i < len(states)
		if known {
			st = states[i]
		}
		if known && reserved {
			b = append(b, `,"reserved_tokens":`...)
			b = strconv.AppendInt(b, st.ReservedTokens, 10)
			b = append(b, `,"reserved_usd":"`...)
			b = gateway.NanoUSD(st.ReservedUSD).Append(b)
			b = append(b, '"')
		}
		b = append(b, `,"scope":`...)
		b = append(b, w.scope...)
		if known {
			b = append(b, `,"spent_tokens":`...)
			b = strconv.AppendInt(b, st.SpentTokens, 10)
			b = append(b, `,"spent_usd":"`...)
			b = gateway.NanoUSD(st.SpentUSD).Append(b)
			b = append(b, '"')
		}
		b = append(b, `,"window_start":`...)
		b = append(b, w.start...)
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendUSD(b []byte, name string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":"`...)
	b = gateway.NanoUSD(v).Append(b)
	return append(b, '"')
}

func appendInt(b []byte, name string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":`...)
	return strconv.AppendInt(b, v, 10)
}

func appendField(b []byte, name, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":`...)
	return appendString(b, v)
}

// appendString appends s as a JSON string (invalid UTF-8 as U+FFFD, as
// encoding/json does).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

// mapEvent encodes a rare event's attrs (refusals, alerts).
func mapEvent(m map[string]any) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		return []byte(`{"action":"unencodable"}`)
	}
	return b
}
