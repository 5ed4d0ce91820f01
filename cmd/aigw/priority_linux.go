package main

import (
	"errors"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// idlePriority puts every thread of this process in SCHED_IDLE (schedIdle). A policy
// belongs to a thread, and the Go runtime has started several before main;
// threads started later inherit it from the thread that starts them.
func idlePriority() error {
	// Twice: a thread started during the first pass from a thread not yet
	// set would keep the old policy.
	var errs []error
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		errs = errs[:0]
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			var param struct{ priority int32 }
			_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, uintptr(tid), schedIdle, uintptr(unsafe.Pointer(&param)))
			if e != 0 && e != syscall.ESRCH {
				errs = append(errs, e)
			}
		}
	}
	return errors.Join(errs...)
}
