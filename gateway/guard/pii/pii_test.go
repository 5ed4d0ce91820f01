package pii

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"aigw/gateway/guard"
	"aigw/gateway/guard/internal/swar"
)

// want is a finding a test expects: its type and the original text it
// covers.
type want struct {
	typ, text string
}

func show(text string, fs []guard.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "[%s %q %.2f %s] ", f.Type, text[f.Start:f.End], f.Score, f.Rule)
	}
	return b.String()
}

func TestDetects(t *testing.T) {
	for _, test := range []struct {
		name string
		text string
		want []want
	}{
		// Case 1: cards with spaces, dashes, dots, bare.
		{"case1/card spaces", "my card is 4111 1111 1111 1111 thanks", []want{{CreditCard, "4111 1111 1111 1111"}}},
		{"case1/card dashes", "4111-1111-1111-1111", []want{{CreditCard, "4111-1111-1111-1111"}}},
		{"case1/card dots", "pay with 4111.1111.1111.1111.", []want{{CreditCard, "4111.1111.1111.1111"}}},
		{"case1/card bare", "cc=4111111111111111;", []want{{CreditCard, "4111111111111111"}}},
		{"case1/amex 4-6-5", "amex 3782 822463 10005", []want{{CreditCard, "3782 822463 10005"}}},
		{"case1/mastercard", "(5555-5555-5555-4444)", []want{{CreditCard, "5555-5555-5555-4444"}}},
		{"case1/card after a date", "on 2024-01-15 4111 1111 1111 1111", []want{{CreditCard, "4111 1111 1111 1111"}}},
		// Case 2: zero-width characters and soft hyphens inside the groups.
		{"case2/zero-width spaces", "card 4111\u200b1111\u200b1111\u200b1111 ok", []want{{CreditCard, "4111\u200b1111\u200b1111\u200b1111"}}},
		{"case2/zero-width inside groups", "41\u200b11 11\u200d11 1111 1111", []want{{CreditCard, "41\u200b11 11\u200d11 1111 1111"}}},
		{"case2/soft hyphens", "4111\u00ad1111\u00ad1111\u00ad1111", []want{{CreditCard, "4111\u00ad1111\u00ad1111\u00ad1111"}}},
		{"case2/tag character", "x 4111 1111\U000E0041 1111 1111 y", []want{{CreditCard, "4111 1111\U000E0041 1111 1111"}}},
		// Case 3: full-width and Arabic-Indic digits.
		{"case3/full-width card", "カード ４１１１ １１１１ １１１１ １１１１ です", []want{{CreditCard, "４１１１ １１１１ １１１１ １１１１"}}},
		{"case3/arabic-indic card", "البطاقة ٤١١١ ١١١١ ١١١١ ١١١١", []want{{CreditCard, "٤١١١ ١١١١ ١١١١ ١١١١"}}},
		{"case3/devanagari bad grouping", "कार्ड ४१११-१११११११११११११११", nil},
		{"case3/devanagari card", "कार्ड ४१११-११११-११११-११११", []want{{CreditCard, "४१११-११११-११११-११११"}}},
		{"case3/full-width ssn", "SSN ５３６-２２-１２３４", []want{{USSSN, "５３６-２２-１２３４"}}},
		// Case 4: SSNs.
		{"case4/ssn dashes", "ssn 536-22-1234", []want{{USSSN, "536-22-1234"}}},
		{"case4/ssn spaces", "number 536 22 1234 on file", []want{{USSSN, "536 22 1234"}}},
		{"case4/ssn dots", "536.22.1234", []want{{USSSN, "536.22.1234"}}},
		// Case 5: IBANs.
		{"case5/iban spaces", "IBAN: GB82 WEST 1234 5698 7654 32.", []want{{IBAN, "GB82 WEST 1234 5698 7654 32"}}},
		{"case5/iban lowercase", "send to gb82 west 1234 5698 7654 32 today", []want{{IBAN, "gb82 west 1234 5698 7654 32"}}},
		{"case5/iban compact", "DE89370400440532013000", []want{{IBAN, "DE89370400440532013000"}}},
		{"case5/iban de", "DE89 3704 0044 0532 0130 00", []want{{IBAN, "DE89 3704 0044 0532 0130 00"}}},
		// Case 7: digits escaped inside a raw JSON string, and decoded.
		{"case7/json escaped digits", `{"card":"\u0034\u0031\u0031\u0031 1111 1111 1111"}`, []want{{CreditCard, `\u0034\u0031\u0031\u0031 1111 1111 1111`}}},
		{"case7/json escaped in arguments", `{"arguments":"{\"cc\":\"\u0034\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\"}"}`,
			[]want{{CreditCard, `\u0034\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031`}}},
		{"case7/json decoded", "{\"card\":\"4111 1111 1111 1111\"}", []want{{CreditCard, "4111 1111 1111 1111"}}},
		{"case7/raw json newline escape", `"note":"card:\n4111 1111 1111 1111"`, []want{{CreditCard, "4111 1111 1111 1111"}}},
		// Other entities.
		{"itin", "ITIN 912-70-1234", []want{{USITIN, "912-70-1234"}}},
		{"aba/context", "routing number 021000021", []want{{ABARouting, "021000021"}}},
		{"nhs/context", "NHS number 9434765919", []want{{UKNHS, "9434765919"}}},
		// Both a valid NHS number and a valid US phone number.
		{"nhs/phone", "NHS number 943 476 5919", []want{{UKNHS, "943 476 5919"}, {Phone, "943 476 5919"}}},
		{"sin/context", "my SIN is 046 454 286", []want{{CASIN, "046 454 286"}}},
		{"aadhaar/context", "Aadhaar 2345 6789 0124", []want{{INAadhaar, "2345 6789 0124"}}},
		{"email", "write to John.Doe+x@example.co.uk, please", []want{{Email, "John.Doe+x@example.co.uk"}}},
		{"email/obfuscated", "john.doe [at] example [dot] com", []want{{Email, "john.doe [at] example [dot] com"}}},
		{"email/obfuscated parens", "jane(AT)example(DOT)org", []want{{Email, "jane(AT)example(DOT)org"}}},
		{"email/at bracket dot real", "ops[at]acme.io", []want{{Email, "ops[at]acme.io"}}},
		{"ipv4", "server at 192.168.1.10:8080", []want{{IPAddress, "192.168.1.10"}}},
		{"ipv6", "ping 2001:db8::1 now", []want{{IPAddress, "2001:db8::1"}}},
		{"ipv6/full", "addr fe80:0000:0000:0000:0202:b3ff:fe1e:8329.", []want{{IPAddress, "fe80:0000:0000:0000:0202:b3ff:fe1e:8329"}}},
		{"ipv6/loopback", "bind ::1 only", []want{{IPAddress, "::1"}}},
		{"phone/international", "call +1 415 555 2671", []want{{Phone, "+1 415 555 2671"}}},
		{"phone/parens", "tel (415) 555-2671.", []want{{Phone, "(415) 555-2671"}}},
		{"phone/uk", "office +44 20 7946 0958", []want{{Phone, "+44 20 7946 0958"}}},
		{"phone/uk national", "office 020 7946 0958", []want{{Phone, "020 7946 0958"}}},
		{"phone/bare with context", "mobile: 4155552671", []want{{Phone, "4155552671"}}},
		{"btc/p2pkh", "send to 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", []want{{Crypto, "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"}}},
		{"btc/p2sh", "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", []want{{Crypto, "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"}}},
		{"btc/bech32", "wallet bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4.", []want{{Crypto, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"}}},
		{"btc/bech32m", "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", []want{{Crypto, "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"}}},
		{"eth/eip55", "to 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", []want{{Crypto, "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"}}},
		{"eth/lowercase", "to 0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", []want{{Crypto, "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"}}},
		{"several", "Card 4111 1111 1111 1111, mail a@b.com, ssn 536-22-1234",
			[]want{{CreditCard, "4111 1111 1111 1111"}, {Email, "a@b.com"}, {USSSN, "536-22-1234"}}},
	} {
		t.Run(test.name, func(t *testing.T) {
			fs := New(Config{}).Scan(test.text, nil)
			var got []want
			for _, f := range fs {
				if f.Start < 0 || f.End > len(test.text) || f.Start >= f.End {
					t.Fatalf("bad offsets %+v in %q", f, test.text)
				}
				got = append(got, want{f.Type, test.text[f.Start:f.End]})
			}
			if !slices.Equal(got, test.want) {
				t.Errorf("Scan(%q) = %s; want %v", test.text, show(test.text, fs), test.want)
			}
		})
	}
}

// TestIgnores is the false-positive control: none of these may fire.
func TestIgnores(t *testing.T) {
	for _, text := range []string{
		// Case 1: Luhn-invalid card numbers, and near misses.
		"card 4111 1111 1111 1112",
		"4111-1111-1111-1113",
		"41111111111111111111111", // too long
		"4111-1111-1111-1111-2222",
		"0000 0000 0000 0000",
		// Case 4: invalid SSNs.
		"ssn 536-22.1234",
		"ssn 536.22-1234",
		"ssn 000-12-3456",
		"ssn 666-12-3456",
		"ssn 912-34-5678",
		"ssn 078-05-1120",
		"ssn 123-45-6789",
		"ssn 536-00-1234",
		"ssn 536-22-0000",
		"ssn 111-11-1111",
		// Case 5: IBAN with a bad mod-97, or a wrong length.
		"GB82 WEST 1234 5698 7654 33",
		"GB82 WEST 1234 5698 7654 3",
		"GB82 WEST 1234 5698 7654 321",
		// Checksummed national numbers without context.
		"021000021",
		"9434765919",
		"046 454 286",
		"2345 6789 0124",
		// Case 9: identifiers and hashes.
		"request 550e8400-e29b-41d4-a716-446655440000 failed",
		"id 123e4567-e89b-12d3-a456-426614174001",
		"commit 3f786850e387550fdab836ed7e6dc881de23001b fixes it",
		"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"0x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		// Timestamps and dates.
		"ts=1700000000123",
		"at 1700000000 seconds",
		"2024-01-15T10:30:00Z",
		"on 15.03.2024 at 10:30:00",
		"12/03/2024",
		// Order numbers, prices, quantities.
		"Order #4111111111111112 shipped",
		"order 73500219461 confirmed",
		"price $1,299.99 or €4 111,00",
		"total: 12 345 678 items",
		// Versions.
		"v1.2.3",
		"Python 3.11.4 and go1.26.8",
		"version 1.2.3.4",
		"OID 1.3.6.1.4.1.311",
		// Base64 data.
		"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
		// E-mail look-alikes.
		"user@host.local",
		"user@example.notatld",
		"@decorator.property",
		"git@github",
		"x@co.uk",
		// Code.
		"std::vector<int> a; a::b; 10:30; 00:1a:2b:3c:4d:5e",
		"ISBN 978-3-16-148410-0",
		// Bitcoin look-alikes (bad checksums).
		"1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3",
		"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",
		"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD",
	} {
		if fs := New(Config{}).Scan(text, nil); len(fs) != 0 {
			t.Errorf("Scan(%q) = %s; want nothing", text, show(text, fs))
		}
	}
}

func TestConfig(t *testing.T) {
	text := "card 4111 1111 1111 1111 mail a@b.com"
	fs := New(Config{Entities: []string{Email}}).Scan(text, nil)
	if len(fs) != 1 || fs[0].Type != Email {
		t.Errorf("Entities=[EMAIL_ADDRESS]: %s", show(text, fs))
	}
	// Weak SSN patterns show with a low MinScore only.
	if fs := New(Config{}).Scan("536221234", nil); len(fs) != 0 {
		t.Errorf("bare 9 digits at default min score: %s", show("536221234", fs))
	}
	fs = New(Config{MinScore: 0.01, Entities: []string{USSSN}}).Scan("536221234", nil)
	if len(fs) != 1 || fs[0].Score != 0.05 {
		t.Errorf("bare 9 digits at min score 0.01: %s", show("536221234", fs))
	}
	// Context raises a weak match: 0.05 + 0.35 = 0.4.
	fs = New(Config{MinScore: 0.01, Entities: []string{USSSN}}).Scan("my ssn: 536221234", nil)
	if len(fs) != 1 || fs[0].Score != 0.4 {
		t.Errorf("bare 9 digits after ssn: %s", show("my ssn: 536221234", fs))
	}
	if err := (Config{Entities: []string{"NOPE"}}).Validate(); err == nil {
		t.Error("Validate accepted an unknown entity")
	}
	if err := (Config{Entities: Entities(), MinScore: 0.7}).Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	// Appends to out.
	out := []guard.Finding{{Type: "X"}}
	out = New(Config{}).Scan("a@b.com", out)
	if len(out) != 2 || out[0].Type != "X" || out[1].Type != Email {
		t.Errorf("Scan did not append: %+v", out)
	}
}

func TestKeccak(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470",
		"abc":                    "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45",
		strings.Repeat("a", 200): "",
	} {
		h := keccak256([]byte(in))
		if got := fmt.Sprintf("%x", h); want != "" && got != want {
			t.Errorf("keccak256(%q) = %s; want %s", in, got, want)
		}
	}
}

// TestManyPhones: past the libphonenumber budget numbers are still found
// (possible-number check, 0.1 less), and impossible ones are not.
func TestManyPhones(t *testing.T) {
	var b strings.Builder
	for k := 0; k < 2*phoneLibBudget; k++ {
		fmt.Fprintf(&b, "(415) 555-26%02d, +44 20 7946 09%02d; ", k, k)
	}
	b.WriteString("+1 415 555 26 and (415) 555-2")
	text := b.String()
	fs := New(Config{}).Scan(text, nil)
	if len(fs) != 4*phoneLibBudget {
		t.Fatalf("%d findings; want %d: %s", len(fs), 4*phoneLibBudget, show(text, fs))
	}
	for k, f := range fs {
		if f.Type != Phone || f.Score < 0.5 || k >= phoneLibBudget && f.Score > 0.6 {
			t.Errorf("finding %d: %s", k, show(text, fs[k:k+1]))
		}
	}
}

// triggers, eight bytes at a time, marks what the class table marks cTrig:
// every byte value at every position of a word.
func TestTriggersMatchClass(t *testing.T) {
	for c := range 256 {
		for pos := range 8 {
			b := []byte("xxxxxxxx")
			b[pos] = byte(c)
			got := triggers(swar.Load(string(b), 0))>>(8*pos)&0x80 != 0
			if want := class[c]&cTrig != 0; got != want {
				t.Fatalf("triggers marks byte %#x at %d: %v; class table: %v", c, pos, got, want)
			}
			if rest := triggers(swar.Load(string(b), 0)) &^ (0x80 << (8 * pos)); rest != 0 {
				t.Fatalf("triggers marks other bytes than %#x at %d: %#x", c, pos, rest)
			}
		}
	}
}
