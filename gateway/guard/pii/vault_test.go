package pii

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"aigw/gateway/guard"
)

func TestVaultRedactRestore(t *testing.T) {
	r := New(Config{})
	text := "Card 4111 1111 1111 1111 and 5555-5555-5555-4444; mail a@b.com; again 4111 1111 1111 1111 and a@b.com."
	v := NewVault()
	red := v.Redact(text, r.Scan(text, nil))
	want := "Card <CREDIT_CARD_1> and <CREDIT_CARD_2>; mail <EMAIL_ADDRESS_1>; again <CREDIT_CARD_1> and <EMAIL_ADDRESS_1>."
	if red != want {
		t.Fatalf("Redact = %q; want %q", red, want)
	}
	if v.Len() != 3 {
		t.Errorf("Len = %d; want 3", v.Len())
	}
	// A second message in the same call reuses the placeholders.
	if got := v.Redact("a@b.com", r.Scan("a@b.com", nil)); got != "<EMAIL_ADDRESS_1>" {
		t.Errorf("second Redact = %q", got)
	}
	if got := v.Restore(red); got != text {
		t.Errorf("Restore = %q; want %q", got, text)
	}
	// The model's answer repeats placeholders; unknown ones stay.
	answer := "I charged <CREDIT_CARD_2> and wrote to <EMAIL_ADDRESS_1>, not <EMAIL_ADDRESS_9> or <b>."
	if got, want := v.Restore(answer), "I charged 5555-5555-5555-4444 and wrote to a@b.com, not <EMAIL_ADDRESS_9> or <b>."; got != want {
		t.Errorf("Restore(answer) = %q; want %q", got, want)
	}
}

func TestVaultEdges(t *testing.T) {
	var v Vault // the zero value works
	if got := v.Restore("<CREDIT_CARD_1>"); got != "<CREDIT_CARD_1>" {
		t.Errorf("empty vault Restore = %q", got)
	}
	text := "x <CREDIT_CARD_1> 4111 1111 1111 1111"
	fs := New(Config{}).Scan(text, nil)
	red := v.Redact(text, fs)
	if red != "x <CREDIT_CARD_1> <CREDIT_CARD_2>" {
		t.Errorf("Redact beside a literal placeholder = %q", red)
	}
	if got := v.Restore(red); got != text {
		t.Errorf("Restore = %q; want %q", got, text)
	}
	// Overlapping and invalid findings.
	fs = []guard.Finding{
		{Type: "A", Start: 0, End: 4}, {Type: "B", Start: 2, End: 9}, {Type: "C", Start: 20, End: 99}, {Type: "D", Start: 5, End: 5},
		{Type: "aws-access-key-id", Start: 10, End: 12},
	}
	if got := v.Redact("abcdefghijklmnop", fs); got != "<B_1>j<AWS_ACCESS_KEY_ID_1>mnop" {
		t.Errorf("Redact(overlaps) = %q", got)
	}
}

// TestRestoreStream: a placeholder split across chunks at any point, or
// over one byte per chunk, is restored.
func TestRestoreStream(t *testing.T) {
	r := New(Config{})
	v := NewVault()
	in := "Card 4111 1111 1111 1111, mail a@b.com."
	v.Redact(in, r.Scan(in, nil))
	answer := "Use <CREDIT_CARD_1> (or <EMAIL_ADDRESS_1>) <not a placeholder> 3 < 4 <CREDIT_CARD_1>"
	want := "Use 4111 1111 1111 1111 (or a@b.com) <not a placeholder> 3 < 4 4111 1111 1111 1111"
	for cut1 := 0; cut1 <= len(answer); cut1++ {
		for cut2 := cut1; cut2 <= len(answer); cut2 += 7 {
			rs := v.RestoreStream()
			got := rs.Write(answer[:cut1]) + rs.Write(answer[cut1:cut2]) + rs.Write(answer[cut2:]) + rs.Flush()
			if got != want {
				t.Fatalf("cuts %d,%d: %q; want %q", cut1, cut2, got, want)
			}
		}
	}
	rs := v.RestoreStream()
	var b strings.Builder
	for i := 0; i < len(answer); i++ {
		b.WriteString(rs.Write(answer[i : i+1]))
	}
	b.WriteString(rs.Flush())
	if b.String() != want {
		t.Errorf("byte by byte: %q", b.String())
	}
	// Text that cannot be a placeholder is not held back.
	rs = v.RestoreStream()
	if got := rs.Write("a < b and <lower"); got != "a < b and <lower" {
		t.Errorf("held back %q", got)
	}
	if got := rs.Write("x <CRED"); got != "x " {
		t.Errorf("Write(partial) = %q; want %q", got, "x ")
	}
	if got := rs.Flush(); got != "<CRED" {
		t.Errorf("Flush = %q", got)
	}
}

// TestVaultNoLeak: printing or logging a vault shows no value.
func TestVaultNoLeak(t *testing.T) {
	v := NewVault()
	text := "4111 1111 1111 1111"
	v.Redact(text, New(Config{}).Scan(text, nil))
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("call", "vault", v)
	j, _ := json.Marshal(v)
	for _, s := range []string{
		fmt.Sprint(v), fmt.Sprintf("%v %+v %#v %s", v, v, v, v), fmt.Sprintf("%+v", *v.clone()), buf.String(), string(j),
	} {
		if strings.Contains(s, "4111") {
			t.Errorf("vault output leaks the value: %s", s)
		}
	}
	if !strings.Contains(buf.String(), `"values":1`) {
		t.Errorf("log = %s", buf.String())
	}
}

// clone copies the vault's fields (what a careless %+v of a dereferenced
// vault prints) without copying its lock.
func (v *Vault) clone() *struct{ M *vaultMap } { return &struct{ M *vaultMap }{v.m} }

func TestVaultConcurrent(t *testing.T) {
	r := New(Config{})
	v := NewVault()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 50; k++ {
				text := fmt.Sprintf("mail u%d@example.com card 4111 1111 1111 1111", k%5)
				red := v.Redact(text, r.Scan(text, nil))
				if v.Restore(red) != text {
					t.Errorf("round trip of %q failed", text)
				}
			}
		}()
	}
	wg.Wait()
	if v.Len() != 6 {
		t.Errorf("Len = %d; want 6", v.Len())
	}
}

// Types whose placeholder tags are one share its numbers; a type seen
// again continues them.
func TestVaultTagsShared(t *testing.T) {
	v := NewVault()
	fs := []guard.Finding{{Type: "a-b", Start: 0, End: 1}, {Type: "a_b", Start: 2, End: 3}, {Type: "A-B", Start: 4, End: 5}, {Type: "c", Start: 6, End: 7}}
	if got, want := v.Redact("w x y z", fs), "<A_B_1> <A_B_2> <A_B_3> <C_1>"; got != want {
		t.Errorf("Redact = %q; want %q", got, want)
	}
	if got, want := v.Redact("q", []guard.Finding{{Type: "a_b", Start: 0, End: 1}}), "<A_B_4>"; got != want {
		t.Errorf("second Redact = %q; want %q", got, want)
	}
}
