// Package tokenize counts a chat request's prompt tokens offline, before the
// call, so that rate limits and token budgets can reserve them.
//
// OpenAI models are counted with their own BPE vocabulary (o200k_base or
// cl100k_base, compiled into the binary by github.com/tiktoken-go/tokenizer;
// nothing is downloaded, ever). Other providers publish no offline tokenizer
// we can rely on, so their models are counted with o200k_base and multiplied
// by a per-family factor (see [FamilyOf]). Counts are estimates that the
// caller reconciles with the usage the provider reports.
package tokenize

import (
	"encoding/base64"
	"encoding/json"
	"hash/maphash"
	"image"
	_ "image/gif" // image.DecodeConfig of data: URLs
	_ "image/jpeg"
	_ "image/png"
	"math"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"aigw/gateway"
	"aigw/gateway/guard/internal/swar"

	"github.com/tiktoken-go/tokenizer"
)

// Encoding names a BPE vocabulary.
type Encoding string

// The vocabularies the package counts with.
const (
	O200kBase  Encoding = "o200k_base"  // gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o-series, gpt-oss
	Cl100kBase Encoding = "cl100k_base" // gpt-4, gpt-3.5-turbo, text-embedding-3
)

// Family says how a model's tokens are counted: with Encoding, times Factor
// (1 for OpenAI models, whose counts are exact up to the chat framing).
type Family struct {
	Name     string // "openai", "anthropic", "google", "meta", "mistral", "deepseek", "qwen", "other"
	Encoding Encoding
	Factor   float64
}

// Factors for providers whose tokenizers are not available offline: o200k
// counts are multiplied by them and rounded up. They are estimates [inf],
// rounded up on purpose (a reservation that is too large is returned when the
// call is settled; one that is too small lets concurrent calls overshoot):
//
//   - anthropic 1.30: third-party comparisons on the same English prompts find
//     Claude 3.x/4.x tokenizers 16–30 % above GPT-4o's; Anthropic says the
//     newer tokenizer of Opus 4.7 maps the same text to up to 1.35× more.
//   - google 1.10: Gemini and Gemma use a 256k SentencePiece vocabulary, close
//     to o200k on English, better on most other scripts.
//   - meta 1.15: Llama 3 and 4 use 128k/202k tiktoken-style vocabularies,
//     between cl100k and o200k.
//   - mistral 1.25: older models use a 32k SentencePiece vocabulary (about
//     1.3× o200k); Tekken (Nemo and later) is closer to 1.1×.
//   - deepseek, qwen 1.15: 128k–152k byte-level BPE vocabularies.
//   - other 1.25: an unknown model (also an alias the caller did not resolve).
var families = []struct {
	names  []string // substrings of the normalized model name
	family Family
}{
	{[]string{"claude"}, Family{"anthropic", O200kBase, 1.30}},
	{[]string{"gemini", "gemma"}, Family{"google", O200kBase, 1.10}},
	{[]string{"llama"}, Family{"meta", O200kBase, 1.15}},
	{[]string{"mistral", "mixtral", "codestral", "ministral", "magistral", "pixtral", "devstral"}, Family{"mistral", O200kBase, 1.25}},
	{[]string{"deepseek"}, Family{"deepseek", O200kBase, 1.15}},
	{[]string{"qwen", "qwq"}, Family{"qwen", O200kBase, 1.15}},
}

var otherFamily = Family{"other", O200kBase, 1.25}

// FamilyOf says how tokens of model are counted. It accepts provider
// prefixes ("openai/gpt-4o", "azure/gpt-4.1", Bedrock's
// "us.anthropic.claude-sonnet-4-20250514-v1:0") and fine-tune names
// ("ft:gpt-4o-mini:acme::abc").
func FamilyOf(model string) Family {
	m := strings.ToLower(strings.TrimSpace(model))
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	m = strings.TrimPrefix(m, "ft:")
	if enc, ok := openAIEncoding(m); ok {
		return Family{"openai", enc, 1}
	}
	for _, f := range families {
		for _, n := range f.names {
			if strings.Contains(m, n) {
				return f.family
			}
		}
	}
	return otherFamily
}

func openAIEncoding(m string) (Encoding, bool) {
	hasModel := func(name string) bool { return m == name || strings.HasPrefix(m, name+"-") }
	switch {
	case strings.HasPrefix(m, "gpt-4o"), strings.HasPrefix(m, "chatgpt-4o"), strings.HasPrefix(m, "gpt-4.1"),
		strings.HasPrefix(m, "gpt-4.5"), strings.HasPrefix(m, "gpt-5"), strings.HasPrefix(m, "gpt-oss"),
		hasModel("o1"), hasModel("o3"), hasModel("o4"), hasModel("codex-mini"),
		strings.HasPrefix(m, "gpt-realtime"), strings.HasPrefix(m, "gpt-audio"), strings.HasPrefix(m, "computer-use"):
		return O200kBase, true
	case strings.HasPrefix(m, "gpt-4"), strings.HasPrefix(m, "gpt-3.5"), strings.HasPrefix(m, "gpt-35"),
		strings.HasPrefix(m, "text-embedding-3"), m == "text-embedding-ada-002":
		return Cl100kBase, true
	case strings.HasPrefix(m, "gpt-"):
		return O200kBase, true // a newer OpenAI model
	}
	return "", false
}

// Encoders are built once, on first use, and are safe for concurrent use.
// Building one reads the vocabulary that github.com/tiktoken-go/tokenizer
// compiles in into tables of our own: o200k takes about 170 ms of CPU and
// 11 MB, cl100k about 70 ms and 6 MB (the library's own copy, 70 ms and
// 7 MB, 22 ms and 3 MB, included).
var (
	o200kOnce, cl100kOnce sync.Once
	o200k, cl100k         *encoder
)

// An encoder counts tokens: its splitter cuts text into pieces, and each
// piece counts as the tokens BPE merges it into.
type encoder struct {
	split splitter
	vocab *vocab
	cache *pieceCache // nil: no cache
	// words says how an ASCII word ends for count's fast path (see
	// fastPiece): wordsO200k, wordsCl100k, or 0 (no fast path).
	words uint8
}

func encoderOf(enc Encoding) *encoder {
	if enc == Cl100kBase {
		cl100kOnce.Do(func() { cl100k = newEncoder(tokenizer.Cl100kBase, splitCl100k) })
		return cl100k
	}
	o200kOnce.Do(func() { o200k = newEncoder(tokenizer.O200kBase, splitO200k) })
	return o200k
}

// What ends a lower-case ASCII word in an encoding's pre-tokenizer (after
// which the piece is the word, with the space before it if any): any
// ASCII byte but a lower-case letter and an apostrophe (which may start a
// contraction) in o200k_base, whose words are [\p{Lu}…]*[\p{Ll}…]+; in
// cl100k_base, whose words are \p{L}+, not an upper-case letter either.
// (After a capitalized word, in either, no letter: see fastPiece.)
const (
	wordsO200k = 1 + iota
	wordsCl100k
)

// Warm builds the encoders of both vocabularies now, so that the first
// calls to count tokens do not wait for them (a gateway with token limits
// calls it when it starts, in the background).
func Warm() {
	encoderOf(O200kBase)
	encoderOf(Cl100kBase)
}

func newEncoder(enc tokenizer.Encoding, split splitter) *encoder {
	c, err := tokenizer.Get(enc)
	if err != nil { // both vocabularies are compiled in
		panic("tokenize: " + err.Error())
	}
	words := uint8(wordsO200k)
	if enc == tokenizer.Cl100kBase {
		words = wordsCl100k
	}
	return &encoder{split: split, vocab: newVocab(readVocab(c)), cache: newPieceCache(), words: words}
}

// count returns the number of tokens of s, which is what the library's
// Codec.Count returns (with its default error mode).
func (e *encoder) count(s string) int {
	s = validRunes(s)
	n := 0
	for i := 0; i < len(s); {
		// The commonest pieces, ASCII words after a space or not and
		// punctuation before a space, are cut and looked up here, from
		// the eight or sixteen bytes their end is found in (fastPiece),
		// without the splitter.
		if e.words != 0 && i+16 <= len(s) {
			if j, key := e.fastPiece(s, i); j > i {
				r := uint32(noRank)
				if key != 0 {
					r = e.vocab.shortRank(key)
				} else {
					r = e.vocab.rank(s[i:j])
				}
				if r != noRank {
					n++
				} else {
					n += e.cache.count(e.vocab, s[i:j])
				}
				i = j
				continue
			}
		}
		j := e.split(s, i)
		if j < 0 { // matched by no alternative of the pattern: skipped
			size, _ := at(s, i)
			i += size
			continue
		}
		n += e.cache.count(e.vocab, s[i:j])
		i = j
	}
	return n
}

// fastPiece returns the end of the piece at s[i] (i+16 <= len(s)) when it
// is one of the commonest, which count takes without the splitter, and,
// for a piece of at most shortMax bytes, its shortKey:
//   - a word of ASCII letters, lower-case but maybe the first, of at most
//     15 bytes with the space before it if any, that an ASCII byte ends
//     (e.words says which; after a capital, never a letter);
//   - a punctuation byte (but an apostrophe) before a space.
//
// It returns i (and 0) for any other piece: the splitter cuts it.
func (e *encoder) fastPiece(s string, i int) (int, uint64) {
	x := swar.Load(s, i)
	c := byte(x)
	if byte(x>>8) == ' ' && c < utf8.RuneSelf && asciiClass[c]&clPunct != 0 && c != '\'' {
		return i + 1, uint64(c) | 1<<8
	}
	from := 0 // the bit where the word starts
	if c == ' ' {
		from = 8
	}
	stop := notLower(x) >> from << from // bytes that are not lower-case letters, from the word on
	capital := false
	if first := byte(x >> from); 'A' <= first && first <= 'Z' {
		stop &^= 0x80 << from
		capital = true
	}
	if stop>>(from+7)&1 != 0 {
		return i, 0 // no word there
	}
	k := 0 // the piece's length
	var end byte
	if stop != 0 {
		k = bits.TrailingZeros64(stop) / 8
		end = byte(x >> (8 * k))
	} else {
		x2 := swar.Load(s, i+8)
		stop2 := notLower(x2)
		if stop2 == 0 {
			return i, 0 // a longer word
		}
		k = 8 + bits.TrailingZeros64(stop2)/8
		end = byte(x2 >> (8 * (k - 8)))
	}
	if end >= utf8.RuneSelf || end == '\'' || (capital || e.words == wordsCl100k) && 'A' <= end && end <= 'Z' {
		return i, 0 // the word may go on, or take a contraction
	}
	if k > shortMax {
		return i + k, 0
	}
	return i + k, x&(1<<(8*k)-1) | 1<<(8*k) // shortKey(s[i:i+k])
}

// Text returns the number of tokens of s in enc (o200k_base unless enc is
// cl100k_base). Special tokens such as "<|endoftext|>" are counted as the
// ordinary text they are when they arrive in a message.
func Text(enc Encoding, s string) int {
	if s == "" {
		return 0
	}
	if len(s) < cacheMin {
		return count(enc, s)
	}
	// Agents resend the same long texts on every turn (system prompt,
	// tool declarations, the history): counts of long texts are cached.
	h := maphash.String(cacheSeed, s)
	if enc == Cl100kBase {
		h ^= 0xd6e8feb86659fd93
	}
	slot := &countCache[h&(cacheSlots-1)]
	tag := h >> cacheCountBits << cacheCountBits
	if e := slot.Load(); e != 0 && e&^(1<<cacheCountBits-1) == tag {
		return int(e & (1<<cacheCountBits - 1))
	}
	n := count(enc, s)
	if n < 1<<cacheCountBits {
		slot.Store(tag | uint64(n))
	}
	return n
}

func count(enc Encoding, s string) int {
	return encoderOf(enc).count(s)
}

// The cache of counts of long texts: cacheSlots slots, each 0 (empty) or
// the high bits of a 64-bit hash of the encoding and the bytes (a
// collision would only skew an estimate that the provider's usage
// settles) above a count; a text evicts the one in its slot. The cache
// holds no pointers, so the garbage collector has nothing to scan in it,
// and Text allocates nothing.
const (
	cacheMin       = 256
	cacheSlots     = 1 << 16
	cacheCountBits = 28 // counts from 1<<28 on are not cached
)

var (
	cacheSeed  = maphash.MakeSeed()
	countCache [cacheSlots]atomic.Uint64
)

// Chat framing, as OpenAI's cookbook counts it ("How to count tokens with
// tiktoken", which matches the API's prompt_tokens for gpt-3.5-turbo, gpt-4,
// gpt-4o and gpt-4o-mini): every message costs 3 tokens
// (<|start|>{role}...<|end|>) plus its role and content, a name costs one
// more, and every reply is primed with <|start|>assistant<|message|> (3).
const (
	TokensPerMessage = 3
	TokensPerName    = 1
	TokensReplyPrime = 3
)

// Image tokens (OpenAI's tile formula for gpt-4o, gpt-4.1 and gpt-5: 85 per
// image plus 170 per 512 px tile after scaling). A remote image, whose size
// is unknown offline, is counted as 1024×1024 (765); detail "low" is 85.
const (
	ImageBaseTokens    = 85
	ImageTileTokens    = 170
	ImageUnknownTokens = ImageBaseTokens + 4*ImageTileTokens
)

// Count returns the prompt tokens of req for model, counted offline:
// message roles, contents, names, tool calls and tool call ids, the chat
// framing above, images by OpenAI's tile formula, and the tool (and
// deprecated function) declarations and a json_schema response format by
// their JSON. OpenAI renders tool declarations more compactly than JSON, so
// requests with tools count a little above what OpenAI reports; audio and
// file parts are not counted (their size says little about their tokens).
// For non-OpenAI models the whole count is multiplied by the family's
// factor and rounded up. Count is safe for concurrent use.
func Count(model string, req *gateway.ChatRequest) int {
	if req == nil {
		return 0
	}
	f := FamilyOf(model)
	enc := f.Encoding
	n := TokensReplyPrime
	for i := range req.Messages {
		m := &req.Messages[i]
		n += TokensPerMessage + Text(enc, m.Role)
		if m.Content.IsParts {
			for _, p := range m.Content.Parts {
				n += partTokens(enc, &p)
			}
		} else {
			n += Text(enc, m.Content.Text)
		}
		if m.Name != "" {
			n += TokensPerName + Text(enc, m.Name)
		}
		n += Text(enc, m.Refusal) + Text(enc, m.ToolCallID)
		for _, tc := range m.ToolCalls {
			n += TokensPerMessage + Text(enc, tc.Function.Name) + Text(enc, tc.Function.Arguments)
		}
		if len(m.FunctionCall) > 0 {
			n += Text(enc, string(m.FunctionCall))
		}
	}
	for i := range req.Tools {
		b, err := json.Marshal(&req.Tools[i])
		if err != nil { // a Parameters value that is not JSON
			b = append([]byte(req.Tools[i].Function.Name+req.Tools[i].Function.Description), req.Tools[i].Function.Parameters...)
		}
		n += Text(enc, string(b))
	}
	if len(req.Functions) > 0 {
		n += Text(enc, string(req.Functions))
	}
	if rf := req.ResponseFormat; rf != nil && rf.JSONSchema != nil {
		n += Text(enc, rf.JSONSchema.Name) + Text(enc, rf.JSONSchema.Description) + Text(enc, string(rf.JSONSchema.Schema))
	}
	if f.Factor != 1 {
		n = int(math.Ceil(float64(n) * f.Factor))
	}
	return n
}

func partTokens(enc Encoding, p *gateway.ContentPart) int {
	switch p.Type {
	case "text":
		return Text(enc, p.Text)
	case "refusal":
		return Text(enc, p.Refusal)
	case "image_url":
		if p.ImageURL == nil {
			return 0
		}
		return ImageTokens(p.ImageURL.URL, p.ImageURL.Detail)
	}
	return 0
}

// ImageTokens estimates an image's tokens with OpenAI's tile formula: 85 at
// detail "low"; otherwise the image is scaled to fit 2048×2048, then so that
// its shorter side is at most 768 px, and costs 85 + 170 per 512 px tile. The
// size of a data: URL image (PNG, JPEG, GIF) is read from its header; any
// other image counts as 1024×1024.
func ImageTokens(url, detail string) int {
	if detail == "low" {
		return ImageBaseTokens
	}
	w, h, ok := dataURLSize(url)
	if !ok {
		return ImageUnknownTokens
	}
	fw, fh := float64(w), float64(h)
	if s := 2048 / math.Max(fw, fh); s < 1 {
		fw, fh = fw*s, fh*s
	}
	if s := 768 / math.Min(fw, fh); s < 1 {
		fw, fh = fw*s, fh*s
	}
	tiles := math.Ceil(fw/512) * math.Ceil(fh/512)
	return ImageBaseTokens + ImageTileTokens*int(tiles)
}

func dataURLSize(url string) (w, h int, ok bool) {
	rest, found := strings.CutPrefix(url, "data:")
	if !found {
		return 0, 0, false
	}
	meta, data, found := strings.Cut(rest, ",")
	if !found || !strings.HasSuffix(meta, ";base64") {
		return 0, 0, false
	}
	cfg, _, err := image.DecodeConfig(base64.NewDecoder(base64.StdEncoding, strings.NewReader(data)))
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 {
		return 0, 0, false
	}
	return cfg.Width, cfg.Height, true
}
