//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package h1

import "syscall"

const canProbe = true

// probe is the syscall.RawConn.Read callback of alive: a zero-length
// result (EOF), data (an unsolicited response, such as the 408 servers
// send before closing) or an error other than "would block" all mean the
// connection is not fit for a new request.
func (c *conn) probe(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), c.probeBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	c.probeDead = err != syscall.EAGAIN && err != syscall.EINTR
	return true
}
