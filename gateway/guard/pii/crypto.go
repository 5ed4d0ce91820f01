package pii

import (
	"crypto/sha256"
)

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

var base58Index = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(base58Alphabet); i++ {
		t[base58Alphabet[i]] = int8(i)
	}
	return t
}()

// btc checks for a legacy Bitcoin address at i ('1' or '3'): 26 to 35
// base58 characters decoding to version 0 or 5, a 20-byte hash and a
// double-SHA-256 checksum.
func (sc *scanner) btc(i int) (int, bool) {
	s := sc.s
	e := sc.skipWord(i)
	if e-i < 26 || e-i > 35 {
		return 0, false
	}
	var b [25]byte
	for k := i; k < e; k++ {
		v := base58Index[s[k]]
		if v < 0 {
			return 0, false
		}
		carry := int(v)
		for j := len(b) - 1; j >= 0; j-- {
			carry += int(b[j]) * 58
			b[j] = byte(carry)
			carry >>= 8
		}
		if carry != 0 {
			return 0, false
		}
	}
	// Leading '1's are leading zero bytes: the version byte of a P2PKH
	// address is 0 and its encoding starts with exactly one '1'.
	if s[i] == '1' && b[0] != 0 || s[i] == '3' && b[0] != 5 {
		return 0, false
	}
	h := sha256.Sum256(b[:21])
	h = sha256.Sum256(h[:])
	if [4]byte(h[:4]) != [4]byte(b[21:]) {
		return 0, false
	}
	return e, sc.emit(eCrypto, i, e, 1, "btc")
}

const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

var bech32Index = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(bech32Charset); i++ {
		c := bech32Charset[i]
		t[c] = int8(i)
		if 'a' <= c && c <= 'z' {
			t[c-'a'+'A'] = int8(i)
		}
	}
	return t
}()

// bech32 checks for a segwit address at p ("bc1…", one case): witness
// version 0 with a bech32 checksum and 42 or 62 characters, or version
// 1–16 with a bech32m checksum (BIP-173, BIP-350).
func (sc *scanner) bech32(p int) (int, bool) {
	s := sc.s
	if !(s[p] == 'b' && s[p+1] == 'c' || s[p] == 'B' && s[p+1] == 'C') {
		return 0, false
	}
	e := sc.skipWord(p)
	if e-p < 14 || e-p > 74 {
		return 0, false
	}
	upper := s[p] == 'B'
	chk := uint32(1)
	step := func(v uint32) {
		b := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ v
		for k, g := range [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3} {
			if b>>k&1 != 0 {
				chk ^= g
			}
		}
	}
	// HRP "bc" expanded.
	step(3)
	step(3)
	step(0)
	step(2)
	step(3)
	var ver int8 = -1
	for k := p + 3; k < e; k++ {
		c := s[k]
		if isLetter(c) && (c < 'a') != upper {
			return 0, false // mixed case
		}
		v := bech32Index[c]
		if v < 0 {
			return 0, false
		}
		if ver < 0 {
			ver = v
		}
		step(uint32(v))
	}
	switch {
	case ver == 0 && chk == 1 && (e-p == 42 || e-p == 62):
	case ver >= 1 && ver <= 16 && chk == 0x2bc830a3:
	default:
		return 0, false
	}
	return e, sc.emit(eCrypto, p, e, 1, "bech32")
}

// eth checks for an Ethereum address at i ("0x" and 40 hex digits): a
// mixed-case one must pass EIP-55 (score 1), a one-case one scores 0.5.
func (sc *scanner) eth(i int) (int, bool) {
	s := sc.s
	e := sc.skipWord(i)
	if e-i != 42 {
		return 0, false
	}
	hx := s[i+2 : e]
	lo, up := false, false
	for k := 0; k < len(hx); k++ {
		c := hx[k]
		if !isHex(c) {
			return 0, false
		}
		switch {
		case 'a' <= c && c <= 'f':
			lo = true
		case 'A' <= c && c <= 'F':
			up = true
		}
	}
	score := 0.5
	if lo && up {
		var low [40]byte
		for k := 0; k < 40; k++ {
			low[k] = lower(hx[k])
		}
		h := keccak256(low[:])
		for k := 0; k < 40; k++ {
			c := hx[k]
			if !isLetter(c) {
				continue
			}
			nib := h[k/2] >> (4 * (1 - k%2)) & 0xf
			if (nib >= 8) != ('A' <= c && c <= 'F') {
				return 0, false
			}
		}
		score = 1
	}
	return e, sc.emit(eCrypto, i, e, score, "eth")
}
