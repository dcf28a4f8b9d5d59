//go:build !linux

package main

// terminalPrompt: prompting on a terminal is implemented for Linux only;
// elsewhere the passphrase comes from passphrase_file or the environment.
func terminalPrompt() func(string) ([]byte, error) { return nil }
