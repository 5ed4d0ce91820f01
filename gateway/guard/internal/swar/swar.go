// Package swar holds the guardrail detectors' word-at-a-time byte tests
// (SIMD within a register): eight bytes of text in a uint64, little-endian,
// a byte's test result in its high bit.
package swar

import (
	"encoding/binary"
	"unsafe"
)

// Ones has 1 in every byte; High has the high bit of every byte set.
const (
	Ones = 0x0101010101010101
	High = 0x8080808080808080
)

// Load returns s[i:i+8] as a little-endian word. The caller checks that
// 0 <= i and i+8 <= len(s): Load does not.
func Load(s string, i int) uint64 {
	return binary.LittleEndian.Uint64((*[8]byte)(unsafe.Add(unsafe.Pointer(unsafe.StringData(s)), i))[:])
}

// Store writes x as b[i:i+8], little-endian. The caller checks that
// 0 <= i and i+8 <= len(b): Store does not.
func Store(b []byte, i int, x uint64) {
	binary.LittleEndian.PutUint64((*[8]byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), i))[:], x)
}

// GE marks the bytes of v that are c or more. Every byte of v must be
// under 0x80, and c from 1 to 0x80.
func GE(v uint64, c byte) uint64 { return (v + uint64(0x80-c)*Ones) & High }

// EQ marks the bytes of v that are c. Every byte of v, and c, must be
// under 0x80.
func EQ(v uint64, c byte) uint64 { return ^((v ^ uint64(c)*Ones) + 0x7f*Ones) & High }
