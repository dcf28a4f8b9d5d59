package api

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// SocketName is the API socket's file name in chorusd's data directory.
const SocketName = "chorusd.sock"

// ErrSocketInUse is returned by Listen when another process answers on
// the socket: chorusd is already running on this data directory.
var ErrSocketInUse = errors.New("api: socket in use by another process")

// Listen creates the Unix socket at path, mode 0600, and listens on it.
//
// The socket never exists with any other mode: it is bound in a fresh
// private directory (0700) next to path, set to 0600 there and renamed
// into place, so the process umask does not matter and there is no
// moment when others could connect. Listen refuses a path that exists and
// is not a socket, and a socket that another process still answers on
// (ErrSocketInUse); a stale socket left by a crash is replaced. Closing
// the listener removes the socket if it is still the one Listen made.
func Listen(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("listen %s: exists and is not a socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("listen %s: %w", path, ErrSocketInUse)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("listen %s: check existing socket: %w", path, err)
		}
		// Stale: the rename below replaces it.
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}

	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".sock")
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	// The path it was bound to is gone after the rename; Close removes
	// the real one itself.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	return &listener{UnixListener: ln, addr: &net.UnixAddr{Name: path, Net: "unix"}, fi: fi}, nil
}

// listener is a UnixListener that reports, and on Close removes, the
// socket's final path.
type listener struct {
	*net.UnixListener
	addr *net.UnixAddr
	fi   fs.FileInfo
	once sync.Once
	err  error
}

func (l *listener) Addr() net.Addr { return l.addr }

func (l *listener) Close() error {
	l.once.Do(func() {
		l.err = l.UnixListener.Close()
		// Remove the socket only if it is still ours, not one a later
		// daemon put in its place.
		if fi, err := os.Lstat(l.addr.Name); err == nil && os.SameFile(fi, l.fi) {
			os.Remove(l.addr.Name)
		}
	})
	return l.err
}
