package a2a

import (
	"bytes"
	"encoding/json"
	"slices"
	"unicode/utf8"

	"aigw/gateway/internal/jsonscan"
)

// The proxy's hot path reads a message/send request and an agent's answer
// with a hand-written reader (over jsonscan, the validating scanner) instead of encoding/json into maps.
// It takes only the plain shapes of those documents: anything unusual
// (a key that encoding/json would match case-insensitively or that needs
// escaping, an escaped or non-UTF-8 string where a value is read, a
// duplicate key in an object forwarded as its members, a type
// encoding/json would refuse, nesting beyond jsonscan.MaxDepth, invalid JSON)
// makes it give up, and the caller decodes with encoding/json as before.
// So each document means what it meant, and every error is the one
// encoding/json's path gives (FuzzFastJSON checks both paths agree).

// member is a member of a JSON object: its key as decoded, the key as
// JSON (quoted, as encoding/json writes it), and its raw value.
type member struct {
	key, qkey, val []byte
}

func compareMembers(a, b member) int { return bytes.Compare(a.key, b.key) }

// lookup returns the value of key in ms (sorted), or nil.
func lookup(ms []member, key string) []byte {
	i, ok := slices.BinarySearchFunc(ms, key, func(m member, k string) int { return bytes.Compare(m.key, []byte(k)) })
	if !ok {
		return nil
	}
	return ms[i].val
}

// without returns ms without key (ms is not modified).
func without(ms []member, key string) []member {
	i, ok := slices.BinarySearchFunc(ms, key, func(m member, k string) int { return bytes.Compare(m.key, []byte(k)) })
	if !ok {
		return ms
	}
	return slices.Delete(slices.Clone(ms), i, i+1)
}

// membersOf turns a decoded object into members sorted by key.
func membersOf(m map[string]json.RawMessage) []member {
	if m == nil {
		return nil
	}
	ms := make([]member, 0, len(m))
	for k, v := range m {
		qk, _ := json.Marshal(k)
		ms = append(ms, member{key: []byte(k), qkey: qk, val: v})
	}
	slices.SortFunc(ms, compareMembers)
	return ms
}

// appendMembers appends the object of ms (sorted, without duplicates) in
// which each of specials (sorted keys) is written by val instead, given
// the member's value (nil when ms lacks it); val reports false to leave
// the member out.
func appendMembers(out []byte, ms []member, specials []string, val func(out []byte, i int, orig []byte) ([]byte, bool)) []byte {
	out = append(out, '{')
	n, j := 0, 0
	for i := 0; i < len(ms) || j < len(specials); {
		if j < len(specials) && (i >= len(ms) || specials[j] <= string(ms[i].key)) {
			var orig []byte
			if i < len(ms) && string(ms[i].key) == specials[j] {
				orig = ms[i].val
				i++
			}
			mark := len(out)
			if n > 0 {
				out = append(out, ',')
			}
			out = appendQuoted(out, specials[j])
			out = append(out, ':')
			var ok bool
			if out, ok = val(out, j, orig); ok {
				n++
			} else {
				out = out[:mark]
			}
			j++
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, ms[i].qkey...)
		out = append(out, ':')
		out = append(out, ms[i].val...)
		n++
		i++
	}
	return append(out, '}')
}

// appendQuoted appends s as a JSON string, as json.Marshal writes it.
func appendQuoted(out []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !safeKeyByte(s[i]) {
			b, _ := json.Marshal(s)
			return append(out, b...)
		}
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"')
}

// safeKeyByte reports whether json.Marshal writes byte c of a string as
// it is (and encoding/json matches no other struct field name with it).
func safeKeyByte(c byte) bool {
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

// readObject returns the members of the object b (one valid JSON object,
// white space around it allowed), in document order, appended to dst. It
// fails on anything else, on a key that is not plain (see safeKeyByte),
// and on invalid JSON. Values are capped subslices of b.
func readObject(b []byte, dst []member) ([]member, bool) {
	s := jsonscan.Scanner{B: b}
	s.WS()
	if s.I >= len(b) || b[s.I] != '{' {
		return nil, false
	}
	s.I++
	s.WS()
	if s.I < len(b) && b[s.I] == '}' {
		s.I++
	} else {
		for {
			if s.I >= len(b) || b[s.I] != '"' {
				return nil, false
			}
			ks := s.I
			if ok, _, _ := s.Str(); !ok {
				return nil, false
			}
			qkey := b[ks:s.I:s.I]
			key := qkey[1 : len(qkey)-1]
			for _, c := range key {
				if !safeKeyByte(c) {
					return nil, false
				}
			}
			s.WS()
			if s.I >= len(b) || b[s.I] != ':' {
				return nil, false
			}
			s.I++
			s.WS()
			vs := s.I
			if !s.Value(1) {
				return nil, false
			}
			dst = append(dst, member{key: key, qkey: qkey, val: b[vs:s.I:s.I]})
			s.WS()
			if s.I >= len(b) {
				return nil, false
			}
			if b[s.I] == '}' {
				s.I++
				break
			}
			if b[s.I] != ',' {
				return nil, false
			}
			s.I++
			s.WS()
		}
	}
	s.WS()
	if s.I != len(b) {
		return nil, false
	}
	return dst, true
}

// sortedMembers sorts ms by key, failing on a duplicate key.
func sortedMembers(ms []member) bool {
	if !slices.IsSortedFunc(ms, compareMembers) {
		slices.SortFunc(ms, compareMembers)
	}
	for i := 1; i < len(ms); i++ {
		if bytes.Equal(ms[i-1].key, ms[i].key) {
			return false
		}
	}
	return true
}

// fieldOf returns which of names key is (-1 for none), and false when
// encoding/json could match it differently (it matches field names
// case-insensitively).
func fieldOf(key []byte, names ...string) (int, bool) {
	for i, n := range names {
		if string(key) == n {
			return i, true
		}
		if bytes.EqualFold(key, []byte(n)) {
			return -1, false
		}
	}
	return -1, true
}

// plainString returns the string value raw decodes to, and false when raw
// is not a string without escapes in valid UTF-8 (raw is valid JSON).
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	v := raw[1 : len(raw)-1]
	for _, c := range v {
		if c == '\\' || c >= 0x80 {
			if bytes.IndexByte(v, '\\') >= 0 || !utf8.Valid(v) {
				return "", false
			}
			break
		}
	}
	return string(v), true
}

// stringField sets *dst to the string raw holds (null leaves it), and
// reports false for anything else.
func stringField(dst *string, raw []byte) bool {
	if string(raw) == "null" {
		return true
	}
	s, ok := plainString(raw)
	if ok {
		*dst = s
	}
	return ok
}

// readStruct reads the object b as json.Unmarshal into a struct whose
// JSON field names are names does: set gets each member, in document
// order (so the last of duplicate keys wins, as in encoding/json), with
// its field's index in names (-1: none), and reports false when it cannot
// decode the value as encoding/json would. readStruct reports false for
// anything but a plain object (see readObject) and for a key that
// encoding/json could match to a field case-insensitively.
func readStruct(b []byte, names []string, set func(f int, val []byte) bool) bool {
	var buf [16]member
	ms, ok := readObject(b, buf[:0])
	if !ok {
		return false
	}
	for _, m := range ms {
		f, ok := fieldOf(m.key, names...)
		if !ok || !set(f, m.val) {
			return false
		}
	}
	return true
}

// fastRequest decodes a JSON-RPC request as json.Unmarshal into Request
// does, and reports false when it cannot say the same.
func fastRequest(body []byte) (Request, bool) {
	var req Request
	ok := readStruct(body, []string{"jsonrpc", "id", "method", "params"}, func(f int, val []byte) bool {
		switch f {
		case 0:
			return string(val) != "null" && stringField(&req.JSONRPC, val)
		case 1:
			req.ID = val
		case 2:
			return string(val) != "null" && stringField(&req.Method, val)
		case 3:
			req.Params = val
		}
		return true
	})
	return req, ok
}

// fastSend reads message/send params as parseSend does, and reports false
// when it cannot say the same (parseSend then decodes them).
func fastSend(params []byte) (*sendParams, bool) {
	sp := &sendParams{}
	var ok bool
	if sp.top, ok = readObject(params, make([]member, 0, 4)); !ok || !sortedMembers(sp.top) {
		return nil, false
	}
	raw := lookup(sp.top, "message")
	if isNull(raw) {
		return nil, false
	}
	sp.rawMessage = raw
	if sp.msg, ok = readObject(raw, make([]member, 0, 8)); !ok {
		return nil, false
	}
	m := &sp.message
	for _, mb := range sp.msg {
		f, ok := fieldOf(mb.key, "kind", "role", "messageId", "taskId", "parts")
		if !ok {
			return nil, false
		}
		switch f {
		case 0:
			ok = stringField(&m.Kind, mb.val)
		case 1:
			ok = stringField(&m.Role, mb.val)
		case 2:
			ok = stringField(&m.MessageID, mb.val)
		case 3:
			ok = stringField(&m.TaskID, mb.val)
		case 4:
			ok = readParts(m, mb.val)
		}
		if !ok {
			return nil, false
		}
	}
	if !sortedMembers(sp.msg) {
		return nil, false
	}
	switch {
	case m.Kind != "" && m.Kind != KindMessage, m.Role != "user", m.MessageID == "" || len(m.MessageID) > 256,
		len(m.Parts) == 0, len(m.TaskID) > 256:
		return nil, false
	}
	for _, part := range m.Parts {
		switch {
		case part.Kind == "text":
		case part.Kind == "file" && !isNull(part.File), part.Kind == "data" && !isNull(part.Data):
		default:
			return nil, false
		}
	}
	if mm := lookup(sp.msg, "metadata"); !isNull(mm) {
		if sp.msgMeta, ok = readObject(mm, nil); !ok || !sortedMembers(sp.msgMeta) {
			return nil, false
		}
		if t := lookup(sp.msgMeta, MetaDelegation); t != nil {
			if !isNull(t) {
				if sp.token, ok = plainString(t); !ok {
					return nil, false
				}
			}
			sp.msgMeta = without(sp.msgMeta, MetaDelegation)
		}
	}
	if pm := lookup(sp.top, "metadata"); !isNull(pm) {
		if sp.meta, ok = readObject(pm, nil); !ok || !sortedMembers(sp.meta) {
			return nil, false
		}
		if dr := lookup(sp.meta, MetaDelegationRequest); dr != nil {
			if !isNull(dr) {
				var req DelegationRequest
				if strictJSON(dr, &req) != nil {
					return nil, false
				}
				sp.request = &req
			}
			sp.meta = without(sp.meta, MetaDelegationRequest)
		}
	}
	if cf := lookup(sp.top, "configuration"); !isNull(cf) {
		if sp.conf, ok = readObject(cf, nil); !ok || !sortedMembers(sp.conf) {
			return nil, false
		}
		if pc := lookup(sp.conf, "pushNotificationConfig"); pc != nil {
			if !isNull(pc) {
				sp.push = &PushNotificationConfig{}
				if json.Unmarshal(pc, sp.push) != nil {
					return nil, false
				}
			}
			sp.conf = without(sp.conf, "pushNotificationConfig")
		}
	}
	return sp, true
}

// readParts reads message.parts into m.Parts.
func readParts(m *messageHead, raw []byte) bool {
	if string(raw) == "null" {
		return false // parts are required: parseSend says so
	}
	s := jsonscan.Scanner{B: raw}
	if raw[0] != '[' {
		return false
	}
	s.I = 1
	s.WS()
	if s.I < len(raw) && raw[s.I] == ']' {
		m.Parts = m.Parts[:0]
		return true
	}
	for {
		vs := s.I
		if !s.Value(1) {
			return false
		}
		var part struct {
			Kind string          `json:"kind"`
			File json.RawMessage `json:"file"`
			Data json.RawMessage `json:"data"`
		}
		ok := readStruct(raw[vs:s.I], []string{"kind", "file", "data"}, func(f int, val []byte) bool {
			switch f {
			case 0:
				return stringField(&part.Kind, val)
			case 1:
				part.File = val
			case 2:
				part.Data = val
			}
			return true
		})
		if !ok {
			return false
		}
		m.Parts = append(m.Parts, part)
		s.WS()
		if s.I >= len(raw) {
			return false
		}
		if raw[s.I] == ']' {
			return true
		}
		if raw[s.I] != ',' {
			return false
		}
		s.I++
		s.WS()
	}
}

// fastResponse decodes an agent's JSON-RPC answer as json.Unmarshal into
// Response does, when it holds no error object; it reports false when it
// cannot say the same.
func fastResponse(b []byte) (Response, bool) {
	var res Response
	ok := readStruct(b, []string{"jsonrpc", "id", "result", "error"}, func(f int, val []byte) bool {
		switch f {
		case 0:
			return stringField(&res.JSONRPC, val)
		case 1:
			res.ID = val
		case 2:
			res.Result = val
		case 3:
			return string(val) == "null"
		}
		return true
	})
	return res, ok
}

// fastResultHead decodes a result as json.Unmarshal into resultHead does,
// and reports false when it cannot say the same.
func fastResultHead(b []byte) (resultHead, bool) {
	var h resultHead
	ok := readStruct(b, []string{"kind", "id", "taskId", "contextId", "status", "final"}, func(f int, val []byte) bool {
		switch f {
		case 0:
			return stringField(&h.Kind, val)
		case 1:
			return stringField(&h.ID, val)
		case 2:
			return stringField(&h.TaskID, val)
		case 3:
			return stringField(&h.ContextID, val)
		case 4:
			h.Status = val
		case 5:
			switch string(val) {
			case "true":
				h.Final = true
			case "false":
				h.Final = false
			case "null":
			default:
				return false
			}
		}
		return true
	})
	return h, ok
}

// fastState reads status.state as state does, and reports false when it
// cannot say the same.
func fastState(status []byte) (TaskState, bool) {
	var st string
	ok := readStruct(status, []string{"state"}, func(f int, val []byte) bool { return f != 0 || stringField(&st, val) })
	return TaskState(st), ok
}
