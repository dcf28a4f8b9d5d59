package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/chorus-mixnet/chorus/client/store"
)

// passphraseSource is where chorusd reads the state's passphrase, in
// this order: the config's passphrase_file, the CHORUS_PASSPHRASE
// environment variable, a prompt on the controlling terminal.
type passphraseSource struct {
	file string
	// prompt asks on the terminal; nil means there is none to ask on.
	prompt func(question string) ([]byte, error)
}

// errNoPassphrase: no source had a passphrase.
var errNoPassphrase = errors.New("no passphrase: set passphrase_file in the config or " + PassphraseEnv + ", or start chorusd on a terminal")

// interactive reports whether the passphrase comes from a person at a
// terminal, who is asked twice when a new state is created.
func (s passphraseSource) interactive() bool {
	if s.file != "" {
		return false
	}
	_, ok := os.LookupEnv(PassphraseEnv)
	return !ok && s.prompt != nil
}

// read returns the passphrase. The environment variable is removed once
// read, so that nothing chorusd starts inherits it.
func (s passphraseSource) read(question string, log *slog.Logger) ([]byte, error) {
	if s.file != "" {
		raw, err := os.ReadFile(s.file)
		if err != nil {
			return nil, fmt.Errorf("read passphrase file: %w", err)
		}
		if fi, err := os.Stat(s.file); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("the passphrase file is readable by group or others; run chmod 600 on it", "mode", fs.FileMode(fi.Mode().Perm()))
		}
		line, _, _ := bytes.Cut(raw, []byte("\n"))
		b := bytes.Clone(bytes.TrimSuffix(line, []byte("\r")))
		clear(raw)
		if len(b) == 0 {
			return nil, errors.New("the passphrase file is empty")
		}
		return b, nil
	}
	if v, ok := os.LookupEnv(PassphraseEnv); ok {
		os.Unsetenv(PassphraseEnv)
		if v == "" {
			return nil, errors.New(PassphraseEnv + " is set but empty")
		}
		return []byte(v), nil
	}
	if s.prompt == nil {
		return nil, errNoPassphrase
	}
	b, err := s.prompt(question)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, errors.New("empty passphrase")
	}
	return b, nil
}

// openState opens the encrypted state in dir, or creates it on first
// start (with fresh link and message keys). A wrong passphrase is an
// error that says so.
func openState(dir string, src passphraseSource, log *slog.Logger) (*store.Store, error) {
	pass, err := src.read("Passphrase for the chorusd state: ", log)
	if err != nil {
		return nil, err
	}
	defer clear(pass)
	st, err := store.Open(dir, pass, store.Options{})
	switch {
	case err == nil:
		return st, nil
	case errors.Is(err, store.ErrWrongPassphrase):
		return nil, fmt.Errorf("open state in %s: wrong passphrase (it does not unlock this state)", dir)
	case errors.Is(err, store.ErrLocked):
		return nil, fmt.Errorf("open state in %s: another chorusd is using it", dir)
	case !errors.Is(err, store.ErrNoState):
		return nil, fmt.Errorf("open state: %w", err)
	}
	if src.interactive() {
		again, err := src.read("No state yet: creating a new one. Repeat the passphrase: ", log)
		if err != nil {
			return nil, err
		}
		same := bytes.Equal(pass, again)
		clear(again)
		if !same {
			return nil, errors.New("the passphrases do not match; nothing was created")
		}
	}
	st, err = store.Create(dir, pass, store.Options{})
	if err != nil {
		return nil, fmt.Errorf("create state: %w", err)
	}
	log.Info("first start: created a new encrypted state with fresh keys; share your contact card (chorus whoami)", "dir", dir)
	return st, nil
}
