package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// terminalPrompt returns a prompt on the controlling terminal, or nil if
// the process has none.
func terminalPrompt() func(string) ([]byte, error) {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil
	}
	f.Close()
	return promptTTY
}

// promptTTY asks question on /dev/tty and reads one line with echo off.
func promptTTY(question string) ([]byte, error) {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open terminal: %w", err)
	}
	defer f.Close()
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("read terminal settings: %w", err)
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, fmt.Errorf("turn off echo: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	fmt.Fprint(f, question)
	line, err := bufio.NewReader(f).ReadBytes('\n')
	fmt.Fprintln(f)
	if err != nil {
		clear(line)
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	out := bytes.Clone(bytes.TrimRight(line, "\r\n"))
	clear(line)
	return out, nil
}
