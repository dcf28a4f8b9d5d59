package api

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestListenMode(t *testing.T) {
	// A permissive umask must not matter.
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	dir := t.TempDir()
	path := filepath.Join(dir, SocketName)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want socket 0600", fi.Mode())
	}
	if got := ln.Addr().String(); got != path {
		t.Errorf("Addr = %q, want %q", got, path)
	}
	// Nothing else is left in the directory.
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries", len(ents))
	}
	// It serves.
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("x"))
			c.Close()
		}
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err != nil || buf[0] != 'x' {
		t.Fatalf("read %q, %v", buf, err)
	}
	c.Close()

	// A second daemon is refused while the first listens.
	if _, err := Listen(path); !errors.Is(err, ErrSocketInUse) {
		t.Fatalf("second Listen: %v", err)
	}
	// Close removes the socket, and is idempotent.
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left after Close: %v", err)
	}
}

func TestListenStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	// A socket nobody listens on, as a crash leaves it.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer ln.Close()
	if fi, _ := os.Lstat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}

func TestListenRefusesNonSocket(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil {
		t.Fatal("Listen over a regular file succeeded")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Fatal("file changed")
	}
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o700)
	if _, err := Listen(sub); err == nil {
		t.Fatal("Listen over a directory succeeded")
	}
	link := filepath.Join(dir, "link")
	os.Symlink(file, link)
	if _, err := Listen(link); err == nil {
		t.Fatal("Listen over a symlink succeeded")
	}
	if _, err := Listen(filepath.Join(dir, "missing", "s")); err == nil {
		t.Fatal("Listen in a missing directory succeeded")
	}
}

// TestCloseKeepsReplacement: closing a listener whose socket was replaced
// leaves the replacement alone.
func TestCloseKeepsReplacement(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	ln2, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("replacement removed: %v", err)
	}
	c, err := (&net.Dialer{}).DialContext(context.Background(), "unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
