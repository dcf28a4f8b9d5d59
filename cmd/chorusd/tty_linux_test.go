package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chorus-mixnet/chorus/client/api"
	"github.com/chorus-mixnet/chorus/cmd/internal/daemon/daemontest"
)

// TestTerminalPrompt starts chorusd on a pseudo-terminal with no other
// passphrase source: it asks on the terminal, twice on first start, with
// echo off, and creates the state.
func TestTerminalPrompt(t *testing.T) {
	bin := buildBinary(t)
	master, slave := openPTY(t)
	tn := startNet(t, fastParameters)
	dir := filepath.Join(t.TempDir(), "tty")
	cfg := writeFile(t, "tty.toml", tn.config(dir, ""))
	cmd := exec.Command(bin, "-config", cfg)
	cmd.Env = filterEnv(os.Environ(), PassphraseEnv)
	cmd.Stdin, cmd.Stdout = slave, slave
	stderr := &daemontest.SyncBuffer{}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	p := &proc{cmd: cmd, stderr: stderr, exited: make(chan error, 1), api: api.Dial(filepath.Join(dir, api.SocketName))}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill(); p.api.Close() })

	screen := &daemontest.SyncBuffer{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			screen.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	const pass = "typed at the terminal"
	for _, prompt := range []string{"Passphrase for the chorusd state: ", "Repeat the passphrase: "} {
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(screen.String(), prompt) {
			if time.Now().After(deadline) {
				t.Fatalf("no prompt %q; terminal shows %q; stderr:\n%s", prompt, screen, stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := master.Write([]byte(pass + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	p.waitReady(t)
	if strings.Contains(screen.String(), "typed") {
		t.Errorf("the passphrase was echoed: %q", screen)
	}
	p.stop(t)
	master.Close()
}

// openPTY opens a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlock pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("pseudo-terminal number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}
