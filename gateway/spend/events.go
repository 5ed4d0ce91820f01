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

// window is a budget window: its bounds, its counter's line, and its
// members that do not change in a call's events, encoded once: its id,
// scope and window start (the window's end and the limits are in the
// budget's admin event).
type window struct {
	start, end time.Time
	line       Line
	id, scope  []byte
	startJSON  []byte
}

func newWindow(b *Budget, start, end time.Time) *window {
	w := &window{
		start: start, end: end,
		line:      Line{Key: lineKey(b, start), LimitTokens: b.LimitTokens, Expires: end.Add(counterGrace)},
		id:        appendString(nil, b.ID),
		scope:     appendString(nil, b.Scope.String()),
		startJSON: append(start.AppendFormat([]byte{'"'}, time.RFC3339), '"'),
	}
	if b.LimitUSD != nil {
		w.line.LimitUSD = int64(*b.LimitUSD)
	}
	return w
}

// budgetsSize is about what appendBudgets writes for on (more for
// counters of more than 11 digits).
func budgetsSize(on []applied, reserved bool) int {
	n := 16
	for _, a := range on {
		n += 90 + len(a.w.id) + len(a.w.scope) + len(a.w.startJSON)
		if reserved {
			n += 55
		}
	}
	return n
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
		b = append(b, w.startJSON...)
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
