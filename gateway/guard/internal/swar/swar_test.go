package swar

import "testing"

// GE and EQ agree with byte comparisons on every ASCII byte in every lane.
func TestCompare(t *testing.T) {
	for lane := range 8 {
		for b := range 0x80 {
			v := uint64(0x41)*Ones&^(0xff<<(8*lane)) | uint64(b)<<(8*lane)
			for c := 1; c <= 0x80; c++ {
				got := GE(v, byte(c))>>(8*lane+7)&1 == 1
				if want := b >= c; got != want {
					t.Fatalf("GE lane %d byte %#x c %#x = %v; want %v", lane, b, c, got, want)
				}
				if c < 0x80 {
					got = EQ(v, byte(c))>>(8*lane+7)&1 == 1
					if want := b == c; got != want {
						t.Fatalf("EQ lane %d byte %#x c %#x = %v; want %v", lane, b, c, got, want)
					}
				}
			}
		}
	}
}

func TestLoadStore(t *testing.T) {
	s := "0123456789"
	if got, want := Load(s, 2), uint64(0x3938373635343332); got != want {
		t.Errorf("Load(%q, 2) = %#x; want %#x", s, got, want)
	}
	b := make([]byte, 10)
	Store(b, 1, Load(s, 2))
	if got := string(b[1:9]); got != "23456789" {
		t.Errorf("Store wrote %q; want 23456789", got)
	}
}
