package gateway

import (
	"encoding/json"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"aigw/gateway/internal/jsonscan"
)

// DecodeChatChunk decodes data, one chat.completion.chunk object, into c as
// json.Unmarshal(data, c) does into a zero ChatChunk: c is zeroed first and
// the result and any error are exactly encoding/json's. Raw is left nil.
//
// The plain shapes OpenAI-compatible upstreams send are read by a
// hand-written scanner, about five times faster than encoding/json and
// with a third of its allocations (BenchmarkDecodeChatChunk). Anything
// unusual (a key encoding/json would match case-insensitively, a duplicate
// key, a key that is escaped or not ASCII, a type encoding/json would
// refuse or convert, a number that is not a plain integer of at most 18
// digits, invalid UTF-8 in a decoded string, nesting beyond jsonscan.MaxDepth,
// invalid JSON) makes it give up, and json.Unmarshal decodes data instead.
// The FuzzDecodeChat fuzz tests check that both paths agree.
//
// In a document of up to chatShareMax bytes, the decoded strings without
// escapes share one copy of data, so a string kept keeps that copy alive;
// RawMessage fields get copies of their own. Nothing refers to data.
func DecodeChatChunk(data []byte, c *ChatChunk) error {
	*c = ChatChunk{}
	d := chatDecoder{Scanner: jsonscan.Scanner{B: data}}
	if d.top() && d.chunk(c) && d.end() {
		return nil
	}
	*c = ChatChunk{}
	return json.Unmarshal(data, c)
}

// DecodeChatResponse decodes data, one chat.completion object, into r as
// json.Unmarshal(data, r) does into a zero ChatResponse, as DecodeChatChunk
// does a chunk (array content, for one, takes encoding/json's path).
func DecodeChatResponse(data []byte, r *ChatResponse) error {
	*r = ChatResponse{}
	d := chatDecoder{Scanner: jsonscan.Scanner{B: data}}
	if d.top() && d.response(r) && d.end() {
		return nil
	}
	*r = ChatResponse{}
	return json.Unmarshal(data, r)
}

// chatDecoder reads one JSON document. Its methods that read a value start
// at the value's first byte (white space skipped), leave d.I just past it,
// and report false when the decoder must give up: the caller then stops at
// once.
type chatDecoder struct {
	jsonscan.Scanner // the document (B) and the position (I)
	// str is b as a string when b is at most chatShareMax bytes long,
	// made at the first non-empty string without escapes; such strings
	// are substrings of it.
	str string
}

// chatShareMax is the size up to which the strings of a document share one
// copy of it: one allocation instead of one per string (each chunk of a
// stream), at the cost of keeping the whole copy while any string is kept.
// Larger documents (long completions, whose strings with escapes do not
// share the copy) copy each string.
const chatShareMax = 4096

// Field names, as in the json tags of chat.go's types.
var (
	chunkFields        = []string{"id", "object", "created", "model", "choices", "usage", "system_fingerprint", "service_tier"}
	chunkChoiceFields  = []string{"index", "delta", "finish_reason", "logprobs"}
	deltaFields        = []string{"role", "content", "reasoning_content", "tool_calls", "refusal"}
	toolCallFields     = []string{"index", "id", "type", "function"}
	functionCallFields = []string{"name", "arguments"}
	usageFields        = []string{"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details", "completion_tokens_details"}
	promptDetailFields = []string{"cached_tokens", "audio_tokens", "cache_creation_tokens"}
	complDetailFields  = []string{"reasoning_tokens", "audio_tokens", "accepted_prediction_tokens", "rejected_prediction_tokens"}
	choiceFields       = []string{"index", "message", "finish_reason", "logprobs"}
	messageFields      = []string{"role", "content", "name", "tool_calls", "tool_call_id", "refusal", "reasoning_content", "audio", "function_call"}
)

// top moves to the document's value, which must be an object.
func (d *chatDecoder) top() bool {
	d.WS()
	return d.I < len(d.B) && d.B[d.I] == '{'
}

// end reports whether only white space follows the value read.
func (d *chatDecoder) end() bool {
	d.WS()
	return d.I == len(d.B)
}

// null reads a null literal, reporting false (and reading nothing) when
// the value is anything else.
func (d *chatDecoder) null() bool {
	if len(d.B)-d.I >= 4 && string(d.B[d.I:d.I+4]) == "null" {
		d.I += 4
		return true
	}
	return false
}

// field reads the key and colon of the next member of the object being
// read (n: the members read so far; at 0, d.I is at the '{') and returns
// the key's index in names (-1: none of them), with d.I at the value.
// seen holds the fields read so far. It reports end after the closing
// brace, and false for a duplicate field, for a key encoding/json could
// match to a field case-insensitively, for a key that is escaped or not
// ASCII, and for invalid JSON.
func (d *chatDecoder) field(n int, names []string, seen *uint32) (f int, end, ok bool) {
	b := d.B
	if n == 0 {
		d.I++
	}
	d.WS()
	if d.I >= len(b) {
		return 0, false, false
	}
	if b[d.I] == '}' {
		d.I++
		return 0, true, true
	}
	if n > 0 {
		if b[d.I] != ',' {
			return 0, false, false
		}
		d.I++
		d.WS()
	}
	if d.I >= len(b) || b[d.I] != '"' {
		return 0, false, false
	}
	ks := d.I + 1
	j := ks
	for j < len(b) && keyByte[b[j]] {
		j++
	}
	if j >= len(b) || b[j] != '"' {
		return 0, false, false
	}
	key := b[ks:j]
	d.I = j + 1
	d.WS()
	if d.I >= len(b) || b[d.I] != ':' {
		return 0, false, false
	}
	d.I++
	d.WS()
	for k, name := range names {
		if string(key) == name {
			if *seen&(1<<k) != 0 {
				return 0, false, false
			}
			*seen |= 1 << k
			return k, false, true
		}
	}
	for _, name := range names {
		if foldsTo(key, name) {
			return 0, false, false
		}
	}
	return -1, false, true
}

// foldsTo reports whether key (ASCII) equals name but for the case of
// letters, as encoding/json matches keys to field names.
func foldsTo(key []byte, name string) bool {
	if len(key) != len(name) {
		return false
	}
	for i, c := range key {
		if c == name[i] {
			continue
		}
		if l := c | 0x20; l < 'a' || l > 'z' || l != name[i]|0x20 {
			return false
		}
	}
	return true
}

// keyByte: the ASCII bytes a JSON string holds as they are.
var keyByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// elem moves to the next element of the array being read (n: the elements
// read so far; at 0, d.I is at the '['), reporting end after the closing
// bracket.
func (d *chatDecoder) elem(n int) (end, ok bool) {
	if n == 0 {
		d.I++
	}
	d.WS()
	if d.I >= len(d.B) {
		return false, false
	}
	if d.B[d.I] == ']' {
		d.I++
		return true, true
	}
	if n > 0 {
		if d.B[d.I] != ',' {
			return false, false
		}
		d.I++
		d.WS()
	}
	return false, true
}

// object reads an object: read is called with the index in names of each
// member's key (-1 for a key not in names), d.I at the member's value, and
// must read that value. It reports false as field does, or when read does.
func (d *chatDecoder) object(names []string, read func(f int) bool) bool {
	if !d.At('{') {
		return false
	}
	var seen uint32
	for n := 0; ; n++ {
		f, end, ok := d.field(n, names, &seen)
		if !ok || end {
			return ok
		}
		if !read(f) {
			return false
		}
	}
}

// objectPtr reads null (leaving *p nil) or an object into a new T, read
// by read.
func objectPtr[T any](d *chatDecoder, p **T, read func(v *T) bool) bool {
	if d.null() {
		*p = nil
		return true
	}
	if !d.At('{') {
		return false
	}
	v := new(T)
	*p = v
	return read(v)
}

// array reads null (leaving *out nil) or an array whose elements are read
// by elem; [] makes *out empty, not nil, as encoding/json does.
func array[T any](d *chatDecoder, out *[]T, elem func(v *T) bool) bool {
	if d.null() {
		*out = nil
		return true
	}
	if !d.At('[') {
		return false
	}
	var s []T
	for n := 0; ; n++ {
		end, ok := d.elem(n)
		if !ok {
			return false
		}
		if end {
			if s == nil {
				s = []T{}
			}
			*out = s
			return true
		}
		var zero T
		s = append(s, zero)
		if !elem(&s[len(s)-1]) {
			return false
		}
	}
}

// chunk reads a chat.completion.chunk object.
func (d *chatDecoder) chunk(c *ChatChunk) bool {
	return d.object(chunkFields, func(f int) bool {
		if f == 4 {
			return array(d, &c.Choices, d.chunkChoice)
		}
		return d.head(f, &c.ID, &c.Object, &c.Created, &c.Model, &c.Usage, &c.SystemFingerprint, &c.ServiceTier)
	})
}

// response reads a chat.completion object (its members are named as a
// chunk's).
func (d *chatDecoder) response(r *ChatResponse) bool {
	return d.object(chunkFields, func(f int) bool {
		if f == 4 {
			return array(d, &r.Choices, d.choice)
		}
		return d.head(f, &r.ID, &r.Object, &r.Created, &r.Model, &r.Usage, &r.SystemFingerprint, &r.ServiceTier)
	})
}

// head reads member f of chunkFields other than choices (4), the members
// a chunk and a response share.
func (d *chatDecoder) head(f int, id, object *string, created *int64, model *string, usage **Usage, fingerprint, tier *string) bool {
	switch f {
	case 0:
		return d.string(id)
	case 1:
		return d.string(object)
	case 2:
		return d.int64(created)
	case 3:
		return d.string(model)
	case 5:
		return objectPtr(d, usage, d.usage)
	case 6:
		return d.string(fingerprint)
	case 7:
		return d.string(tier)
	}
	return d.Value(0)
}

func (d *chatDecoder) chunkChoice(cc *ChunkChoice) bool {
	return d.object(chunkChoiceFields, func(f int) bool {
		switch f {
		case 0:
			return d.int(&cc.Index)
		case 1:
			return d.null() || d.delta(&cc.Delta) // null leaves a struct as it is
		case 2:
			return d.stringPtr(&cc.FinishReason)
		case 3:
			return d.raw(&cc.Logprobs)
		}
		return d.Value(0)
	})
}

func (d *chatDecoder) delta(dl *Delta) bool {
	return d.object(deltaFields, func(f int) bool {
		switch f {
		case 0:
			return d.string(&dl.Role)
		case 1:
			return d.stringPtr(&dl.Content)
		case 2:
			return d.stringPtr(&dl.ReasoningContent)
		case 3:
			return array(d, &dl.ToolCalls, d.toolCall)
		case 4:
			return d.stringPtr(&dl.Refusal)
		}
		return d.Value(0)
	})
}

func (d *chatDecoder) toolCall(tc *ToolCall) bool {
	return d.object(toolCallFields, func(f int) bool {
		switch f {
		case 0:
			return d.intPtr(&tc.Index)
		case 1:
			return d.string(&tc.ID)
		case 2:
			return d.string(&tc.Type)
		case 3:
			return d.null() || d.functionCall(&tc.Function)
		}
		return d.Value(0)
	})
}

func (d *chatDecoder) functionCall(fc *FunctionCall) bool {
	return d.object(functionCallFields, func(f int) bool {
		switch f {
		case 0:
			return d.string(&fc.Name)
		case 1:
			return d.string(&fc.Arguments)
		}
		return d.Value(0)
	})
}

func (d *chatDecoder) usage(v *Usage) bool {
	return d.object(usageFields, func(f int) bool {
		switch f {
		case 0:
			return d.int(&v.PromptTokens)
		case 1:
			return d.int(&v.CompletionTokens)
		case 2:
			return d.int(&v.TotalTokens)
		case 3:
			return objectPtr(d, &v.PromptTokensDetails, d.promptDetails)
		case 4:
			return objectPtr(d, &v.CompletionTokensDetails, d.completionDetails)
		}
		return d.Value(0)
	})
}

func (d *chatDecoder) promptDetails(v *PromptTokensDetails) bool {
	return d.object(promptDetailFields, func(f int) bool {
		switch f {
		case 0:
			return d.int(&v.CachedTokens)
		case 1:
			return d.int(&v.AudioTokens)
		case 2:
			return d.int(&v.CacheCreationTokens)
		}
		return d.Value(0)
	})
}

func (d *chatDecoder) completionDetails(v *CompletionTokensDetails) bool {
	return d.object(complDetailFields, func(f int) bool {
		switch f {
		case 0:
			return d.int(&v.ReasoningTokens)
		case 1:
			return d.int(&v.AudioTokens)
		case 2:
			return d.int(&v.AcceptedPredictionTokens)
		case 3:
			return d.int(&v.RejectedPredictionTokens)
		}
		return d.Value(0)
	})
}

func (d *chatDecoder) choice(c *Choice) bool {
	return d.object(choiceFields, func(f int) bool {
		switch f {
		case 0:
			return d.int(&c.Index)
		case 1:
			return d.null() || d.message(&c.Message)
		case 2:
			return d.string(&c.FinishReason)
		case 3:
			return d.raw(&c.Logprobs)
		}
		return d.Value(0)
	})
}

func (d *chatDecoder) message(m *Message) bool {
	return d.object(messageFields, func(f int) bool {
		switch f {
		case 0:
			return d.string(&m.Role)
		case 1:
			return d.content(&m.Content)
		case 2:
			return d.string(&m.Name)
		case 3:
			return array(d, &m.ToolCalls, d.toolCall)
		case 4:
			return d.string(&m.ToolCallID)
		case 5:
			return d.string(&m.Refusal)
		case 6:
			return d.string(&m.ReasoningContent)
		case 7:
			return d.raw(&m.Audio)
		case 8:
			return d.raw(&m.FunctionCall)
		}
		return d.Value(0)
	})
}

// content reads string or null content as Content.UnmarshalJSON does
// (an array of parts is left to encoding/json).
func (d *chatDecoder) content(c *Content) bool {
	if d.null() {
		*c = Content{Null: true}
		return true
	}
	*c = Content{}
	return d.At('"') && d.string(&c.Text)
}

// string reads a string into *s; null leaves *s as it is.
func (d *chatDecoder) string(s *string) bool {
	if d.null() {
		return true
	}
	v, ok := d.text()
	if ok {
		*s = v
	}
	return ok
}

// stringPtr reads a string into a new *p; null sets *p to nil.
func (d *chatDecoder) stringPtr(p **string) bool {
	if d.null() {
		*p = nil
		return true
	}
	v, ok := d.text()
	if ok {
		*p = &v
	}
	return ok
}

// text reads a string as encoding/json decodes it, and reports false for
// anything else and for a string that is not valid UTF-8 (encoding/json
// would replace the bad bytes with U+FFFD).
func (d *chatDecoder) text() (string, bool) {
	b := d.B
	if d.I >= len(b) || b[d.I] != '"' {
		return "", false
	}
	start := d.I + 1
	j := start
	for j < len(b) {
		c := b[j]
		if keyByte[c] {
			j++
			continue
		}
		switch {
		case c == '"':
			d.I = j + 1
			switch {
			case j == start:
				return "", true
			case len(b) > chatShareMax:
				return string(b[start:j]), true
			case d.str == "":
				d.str = string(b)
			}
			return d.str[start:j], true
		case c == '\\':
			return d.escaped(start, j)
		case c < 0x20:
			return "", false
		}
		r, size := utf8.DecodeRune(b[j:])
		if r == utf8.RuneError && size == 1 {
			return "", false
		}
		j += size
	}
	return "", false
}

// escaped decodes the string that starts at start and has its first
// escape at j.
func (d *chatDecoder) escaped(start, j int) (string, bool) {
	b := d.B
	// The decoded string is no longer than the raw one: find its end to
	// allocate once.
	end := j
	for end < len(b) && b[end] != '"' {
		if b[end] == '\\' {
			end++
		}
		end++
	}
	if end >= len(b) {
		return "", false
	}
	var sb strings.Builder
	sb.Grow(end - start)
	sb.Write(b[start:j])
	for j < end {
		if b[j] != '\\' {
			k := j
			for k < end && b[k] != '\\' && b[k] >= 0x20 {
				k++
			}
			if k < end && b[k] < 0x20 || !utf8.Valid(b[j:k]) {
				return "", false
			}
			sb.Write(b[j:k])
			j = k
			continue
		}
		// An escape: the scan for end read the byte after the backslash.
		c := b[j+1]
		j += 2
		switch c {
		case '"', '\\', '/':
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'u':
			// Four hex digits cannot hold the closing quote, so they lie
			// before end.
			r := hex4(b, j)
			if r < 0 {
				return "", false
			}
			j += 4
			if utf16.IsSurrogate(r) {
				// As encoding/json: a valid pair is one rune, anything
				// else U+FFFD (and a second escape stays to be read).
				r2 := rune(-1)
				if j+1 < end && b[j] == '\\' && b[j+1] == 'u' {
					r2 = hex4(b, j+2)
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
					j += 6
				} else {
					r = utf8.RuneError
				}
			}
			sb.WriteRune(r)
			continue
		default:
			return "", false
		}
		sb.WriteByte(c)
	}
	d.I = end + 1
	return sb.String(), true
}

// hex4 returns the rune of the four hex digits at b[i:], or -1.
func hex4(b []byte, i int) rune {
	if i+4 > len(b) {
		return -1
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// integer reads a number encoding/json stores in an integer field as it
// is: no fraction or exponent, at most 18 digits (longer ones, which may
// overflow, are left to encoding/json).
func (d *chatDecoder) integer() (int64, bool) {
	b := d.B
	j := d.I
	neg := j < len(b) && b[j] == '-'
	if neg {
		j++
	}
	start := j
	switch {
	case j >= len(b):
		return 0, false
	case b[j] == '0':
		j++
	case '1' <= b[j] && b[j] <= '9':
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
	default:
		return 0, false
	}
	if j-start > 18 || j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
		return 0, false
	}
	var n int64
	for _, c := range b[start:j] {
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	d.I = j
	return n, true
}

// int64 reads an integer into *v; null leaves *v as it is.
func (d *chatDecoder) int64(v *int64) bool {
	if d.null() {
		return true
	}
	n, ok := d.integer()
	if ok {
		*v = n
	}
	return ok
}

// int reads an integer into *v; null leaves *v as it is.
func (d *chatDecoder) int(v *int) bool {
	if d.null() {
		return true
	}
	n, ok := d.integer()
	if !ok || int64(int(n)) != n {
		return false
	}
	*v = int(n)
	return true
}

// intPtr reads an integer into a new *p; null sets *p to nil.
func (d *chatDecoder) intPtr(p **int) bool {
	if d.null() {
		*p = nil
		return true
	}
	n, ok := d.integer()
	if !ok || int64(int(n)) != n {
		return false
	}
	v := int(n)
	*p = &v
	return true
}

// raw reads any value into *m as a copy of its bytes, as
// json.RawMessage's UnmarshalJSON does (null included).
func (d *chatDecoder) raw(m *json.RawMessage) bool {
	start := d.I
	if !d.Value(0) {
		return false
	}
	*m = append(json.RawMessage(nil), d.B[start:d.I]...)
	return true
}
