package daemon

import (
	"errors"
	"fmt"
	"os"
)

// ErrDataDirPermissions is returned when the data directory is accessible
// to group or others.
var ErrDataDirPermissions = errors.New("data directory is accessible to group or others")

// EnsureDataDir creates the data directory (mode 0700) if needed and refuses
// one that group or others can access: it holds private keys and state.
func EnsureDataDir(path string) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("check data directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("check data directory %s: not a directory", path)
	}
	if m := st.Mode().Perm(); m&0o077 != 0 {
		return fmt.Errorf("check data directory %s: %w (mode %#o; run chmod 700)", path, ErrDataDirPermissions, m)
	}
	return nil
}
