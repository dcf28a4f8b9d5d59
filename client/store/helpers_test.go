package store

import (
	"bytes"
	"crypto/rand"
	"path/filepath"
	"testing"

	"github.com/chorus-mixnet/chorus/client/message"
)

var testPass = []byte("correct horse battery staple")

func testOpts() Options { return Options{KDF: TestingKDF} }

// newStore creates a store in a fresh directory.
func newStore(t testing.TB) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Create(dir, testPass, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func reopen(t testing.TB, s *Store, dir string) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, testPass, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func randomCard(t testing.TB) message.Card {
	t.Helper()
	k, err := message.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var c message.Card
	rand.Read(c.ProviderID[:])
	rand.Read(c.MailboxID[:])
	c.Key = k.Public()
	return c
}

func randomID() message.MessageID {
	var id message.MessageID
	rand.Read(id[:])
	return id
}

// testToken is a SURB decryption token for tests: 320 bytes (five hops)
// derived from surb.
func testToken(surb SURBID) []byte {
	tok := bytes.Repeat([]byte("surb token "), 30)[:320]
	copy(tok, surb[:])
	return tok
}
