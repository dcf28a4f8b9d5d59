//go:build !linux

package testnet

import "syscall"

// sysProcAttr puts a daemon in its own process group. Only Linux can have
// it killed when the supervising process dies; elsewhere an interrupted
// supervisor may leave daemons running (ErrPortsBusy on the next start).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
