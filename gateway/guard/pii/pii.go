// Package pii finds personal data in text and redacts it reversibly.
//
// The recognizers follow Presidio's model (pattern → base score,
// validation → 1.0 or dropped, a context word among the five words before
// the match → +0.35), but each one is a hand-written scanner instead of a
// regular expression: one pass over the bytes finds digit runs (cards,
// national numbers, IBANs, phones, IPv4, crypto addresses), '@' and
// "[at]" (e-mail) and ':' (IPv6), and only those candidates are validated.
// Text is scanned as is unless normalizing could change a finding
// (invisible characters next to ASCII, non-ASCII decimal digits,
// characters NFKC maps to ASCII letters, digits or '@', or to other ASCII
// next to a letter or digit; accented letters, curly quotes, CJK and
// emoji do not count): then it is scanned on its normalized shadow
// (textnorm, Digits on), and findings are mapped back to the original's
// offsets.
//
// Scores (after validation, before context):
//
//	CREDIT_CARD   12–19 digits (bare, or grouped 4-x-x… by one of space - .),
//	              issuer prefix 2–6 (1 unless 13 digits, as Presidio), Luhn → 1.0
//	IBAN_CODE     country length table and mod-97 → 1.0 (spaces every 4, any case)
//	US_SSN        ddd-dd-dddd with one delimiter (- . space) 0.5; 5-4, 3-6 and 9 bare
//	              0.05; Presidio's invalidations plus area 9xx
//	US_ITIN       9dd-[5-9]d-dddd 0.5, bare 0.3
//	ABA_ROUTING,
//	UK_NHS,
//	CA_SIN,
//	IN_AADHAAR    checksum (3-7-1 mod 10, mod 11, Luhn, Verhoeff) required, then
//	              0.4 in the entity's grouping, 0.15 bare: one random number in
//	              ten passes these checksums, so unlike Presidio (1.0) they need a
//	              context word to reach the default 0.5
//	EMAIL_ADDRESS TLD in the public-suffix list → 1.0; also "[at]"/"(at)"/"{at}" and
//	              "[dot]" obfuscation
//	IP_ADDRESS    net/netip → 1.0 (0.3 after "version"/"v" words)
//	PHONE_NUMBER  libphonenumber valid: 0.7 with +country code, 0.6 formatted,
//	              0.4 bare (bare digit runs are only tried after a phone context
//	              word); only digit groups shaped like a phone number reach the
//	              library, and past 8 numbers in one Scan its possible-number
//	              check stands in for validation (0.1 less) to bound the cost
//	CRYPTO        BTC base58check and bech32/bech32m → 1.0; ETH 0x+40 hex: EIP-55 → 1.0,
//	              single-case 0.5
//
// JSON escapes: Scan decodes \uXXXX escapes (and the other JSON string
// escapes) in a shadow copy when the text holds a "\u" escape, so digits
// escaped as \u0034\u0031… inside a raw JSON string are found, with
// offsets covering the escapes. A bare "\n" before a number counts as a
// word boundary. Callers that have parsed the JSON should still scan the
// decoded strings.
package pii

import (
	"fmt"
	"slices"
	"strings"

	"aigw/gateway/guard"
)

// Entity types.
const (
	CreditCard = "CREDIT_CARD"
	IBAN       = "IBAN_CODE"
	USSSN      = "US_SSN"
	USITIN     = "US_ITIN"
	ABARouting = "ABA_ROUTING"
	UKNHS      = "UK_NHS"
	CASIN      = "CA_SIN"
	INAadhaar  = "IN_AADHAAR"
	Email      = "EMAIL_ADDRESS"
	IPAddress  = "IP_ADDRESS"
	Phone      = "PHONE_NUMBER"
	Crypto     = "CRYPTO"
)

// entity indexes.
const (
	eCard = iota
	eIBAN
	eSSN
	eITIN
	eABA
	eNHS
	eSIN
	eAadhaar
	eEmail
	eIP
	ePhone
	eCrypto
	numEntities
)

var entityNames = [numEntities]string{
	eCard: CreditCard, eIBAN: IBAN, eSSN: USSSN, eITIN: USITIN, eABA: ABARouting,
	eNHS: UKNHS, eSIN: CASIN, eAadhaar: INAadhaar, eEmail: Email, eIP: IPAddress,
	ePhone: Phone, eCrypto: Crypto,
}

// Entities lists every entity type the recognizer knows.
func Entities() []string { return slices.Clone(entityNames[:]) }

// DefaultMinScore is the score from which a finding is reported.
const DefaultMinScore = 0.5

// contextBoost is what a context word adds (Presidio's
// context_similarity_factor); contextFloor is the least score a match with
// context gets (min_score_with_context_similarity).
const (
	contextBoost = 0.35
	contextFloor = 0.4
)

// Config configures a Recognizer. The zero value finds every entity with
// score at least 0.5.
type Config struct {
	// Entities to look for (names as in Entities()); nil means all.
	// Unknown names are ignored by New and reported by Validate.
	Entities []string
	// MinScore is the least score reported (default 0.5; to see weak
	// matches too, set a small positive value).
	MinScore float64
}

// Validate reports unknown entity names and an out-of-range MinScore.
func (c Config) Validate() error {
	for _, e := range c.Entities {
		if !slices.Contains(entityNames[:], e) {
			return fmt.Errorf("pii: unknown entity %q (one of %s)", e, strings.Join(entityNames[:], ", "))
		}
	}
	if c.MinScore < 0 || c.MinScore > 1 {
		return fmt.Errorf("pii: min score %v out of [0, 1]", c.MinScore)
	}
	return nil
}

// Recognizer finds PII. It is safe for concurrent use.
type Recognizer struct {
	on  uint32 // bit per entity index
	min float64
}

var _ guard.Detector = (*Recognizer)(nil)

// New returns a recognizer for cfg.
func New(cfg Config) *Recognizer {
	r := &Recognizer{min: cfg.MinScore}
	if r.min <= 0 {
		r.min = DefaultMinScore
	}
	if cfg.Entities == nil {
		r.on = 1<<numEntities - 1
	}
	for _, name := range cfg.Entities {
		if i := slices.Index(entityNames[:], name); i >= 0 {
			r.on |= 1 << i
		}
	}
	return r
}

// Scan appends the PII found in text to out, in text order, with offsets
// in text. text[f.Start:f.End] is the value (for a value split by
// invisible characters or JSON escapes, the range covering all of it).
func (r *Recognizer) Scan(text string, out []guard.Finding) []guard.Finding {
	return r.scan(text, out, false)
}

// scan is Scan; force normalizes even when textnorm.Affects says it is not needed
// (for the tests that check textnorm.Affects).
func (r *Recognizer) scan(text string, out []guard.Finding, force bool) []guard.Finding {
	if r.on == 0 || len(text) == 0 {
		return out
	}
	base := len(out)
	sh := newShadow(text, true, force)
	sc := scanner{r: r, s: sh.text, out: out}
	sc.run()
	out = sc.out
	if !sh.identity() {
		for i := base; i < len(out); i++ {
			out[i].Start, out[i].End = sh.span(out[i].Start, out[i].End)
		}
	}
	return out
}
