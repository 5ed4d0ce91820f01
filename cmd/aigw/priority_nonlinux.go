//go:build unix && !linux

package main

import "syscall"

// idlePriority lowers this process's CPU priority as far as nice goes
// (SCHED_IDLE is Linux's); on the BSDs and macOS a nice value is the
// whole process's.
func idlePriority() error { return syscall.Setpriority(syscall.PRIO_PROCESS, 0, 19) }
