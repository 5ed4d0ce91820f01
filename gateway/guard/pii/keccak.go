package pii

import (
	"encoding/binary"
	"math/bits"
)

// keccak256 is the original Keccak-256 (padding 0x01, as Ethereum uses),
// not SHA3-256. Only EIP-55 checksums need it.
func keccak256(msg []byte) [32]byte {
	const rate = 136
	var st [25]uint64
	var block [rate]byte
	for len(msg) >= rate {
		absorb(&st, msg[:rate])
		msg = msg[rate:]
	}
	n := copy(block[:], msg)
	block[n] ^= 0x01
	block[rate-1] ^= 0x80
	absorb(&st, block[:])
	var out [32]byte
	for k := 0; k < 4; k++ {
		binary.LittleEndian.PutUint64(out[8*k:], st[k])
	}
	return out
}

func absorb(st *[25]uint64, b []byte) {
	for k := 0; k < len(b)/8; k++ {
		st[k] ^= binary.LittleEndian.Uint64(b[8*k:])
	}
	keccakF(st)
}

var keccakRC = [24]uint64{
	0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000,
	0x000000000000808B, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
	0x000000000000008A, 0x0000000000000088, 0x0000000080008009, 0x000000008000000A,
	0x000000008000808B, 0x800000000000008B, 0x8000000000008089, 0x8000000000008003,
	0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
	0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
}

var keccakRot = [25]int{0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14}

func keccakF(a *[25]uint64) {
	var b [25]uint64
	var c, d [5]uint64
	for r := 0; r < 24; r++ {
		for x := 0; x < 5; x++ {
			c[x] = a[x] ^ a[x+5] ^ a[x+10] ^ a[x+15] ^ a[x+20]
		}
		for x := 0; x < 5; x++ {
			d[x] = c[(x+4)%5] ^ bits.RotateLeft64(c[(x+1)%5], 1)
		}
		for k := 0; k < 25; k++ {
			a[k] ^= d[k%5]
		}
		// rho and pi: b[y][2x+3y] = rot(a[x][y])
		for x := 0; x < 5; x++ {
			for y := 0; y < 5; y++ {
				b[y+5*((2*x+3*y)%5)] = bits.RotateLeft64(a[x+5*y], keccakRot[x+5*y])
			}
		}
		// chi
		for y := 0; y < 5; y++ {
			for x := 0; x < 5; x++ {
				a[x+5*y] = b[x+5*y] ^ ^b[(x+1)%5+5*y]&b[(x+2)%5+5*y]
			}
		}
		a[0] ^= keccakRC[r]
	}
}
