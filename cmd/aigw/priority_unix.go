//go:build unix

package main

import "syscall"

// childProcAttr puts a child process in its own process group, so that a
// terminal's Ctrl-C reaches serve alone, which then stops the child in its
// own time (after the batch in flight).
func childProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
