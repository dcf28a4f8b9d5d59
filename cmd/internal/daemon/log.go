package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
)

// Log is a daemon's logger and, when it logs to a file, that file.
type Log struct {
	*slog.Logger
	file *reopenFile // nil when logging to a writer
}

// OpenLog builds the logger described by cfg, writing to cfg.File or, if that
// is empty, to w. cfg must have passed Validate. When unsafe debug logging is
// on it logs a warning at once.
func OpenLog(cfg LogConfig, w io.Writer) (*Log, error) {
	level, ok := parseLevel(cfg.Level)
	if !ok {
		return nil, fmt.Errorf("open log: unknown level %q", cfg.Level)
	}
	l := new(Log)
	if cfg.File != "" {
		f, err := openReopenFile(cfg.File)
		if err != nil {
			return nil, err
		}
		l.file, w = f, f
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if cfg.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	l.Logger = slog.New(h)
	if cfg.UnsafeDebugLogging {
		l.Warn("UNSAFE DEBUG LOGGING IS ON: the log will contain per-packet traffic metadata that can deanonymise users; never use this on a production network")
	}
	return l, nil
}

// Reopen reopens the log file (after logrotate moved it). It does nothing
// when logging to a writer.
func (l *Log) Reopen() error {
	if l.file == nil {
		return nil
	}
	return l.file.reopen()
}

// Close closes the log file, if any. Later log lines are discarded.
func (l *Log) Close() error {
	if l.file == nil {
		return nil
	}
	return l.file.close()
}

func parseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return 0, false
}

// reopenFile is an append-only log file that can be reopened under the same
// name while the logger keeps writing to it.
type reopenFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func openReopenFile(path string) (*reopenFile, error) {
	r := &reopenFile{path: path}
	if err := r.reopen(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *reopenFile) reopen() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (r *reopenFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return len(p), nil
	}
	return r.f.Write(p)
}

func (r *reopenFile) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
