//go:build !unix

package main

import (
	"errors"
	"syscall"
)

func childProcAttr() *syscall.SysProcAttr { return nil }

func idlePriority() error {
	return errors.New("lowering the CPU priority is not supported on this system")
}
