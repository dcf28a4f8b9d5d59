package testnet

import "syscall"

// sysProcAttr puts a daemon in its own process group and has the kernel
// kill it if the supervising process dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
