package store

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chorus-mixnet/chorus/client/message"
)

// encodings returns the forms in which secret might appear in a file: raw,
// hex in either case, and base64 in its four alphabets at each of the three
// byte alignments (the middle of an encoding of a longer string that
// contains secret).
func encodings(secret []byte) [][]byte {
	out := [][]byte{secret, []byte(hex.EncodeToString(secret)), []byte(strings.ToUpper(hex.EncodeToString(secret)))}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		for shift := range 3 {
			padded := append(make([]byte, shift), secret...)
			s := enc.EncodeToString(padded)
			s = strings.TrimRight(s, "=")
			// Drop the characters that depend on the neighbours.
			lo, hi := (shift*8+5)/6+1, len(s)-2
			if hi-lo >= 8 {
				out = append(out, []byte(s[lo:hi]))
			}
		}
	}
	return out
}

// scanDir fails the test if any file under dir contains any form of any
// secret.
func scanDir(t *testing.T, dir string, secrets map[string][]byte) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for name, s := range secrets {
			for _, form := range encodings(s) {
				if bytes.Contains(raw, form) {
					t.Errorf("%s contains %s (as %.20q)", filepath.Base(path), name, form)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 2 {
		t.Fatalf("only %d files scanned", files)
	}
}

// TestNothingReadableOnDisk writes keys, contacts, outbox and inbox
// messages, fragments, a SURB token and config made of distinctive byte
// strings, and
// requires that no file in the data directory holds any of them, raw or
// encoded, while the store is open and after it is closed.
func TestNothingReadableOnDisk(t *testing.T) {
	s, dir := newStore(t)
	secrets := map[string][]byte{}
	mk, _ := s.MessageKey()
	lk, _ := s.LinkKey()
	secrets["message private key"] = mk.Scalar()[:]
	secrets["link private key"] = lk.Scalar()[:]
	secrets["message public key"] = mk.Public().Bytes()
	lpub := lk.Public()
	secrets["link public key"] = lpub.Bytes()

	card := randomCard(t)
	secrets["contact name"] = []byte("Zebediah-the-source")
	secrets["contact card"] = []byte(card.Encode())
	secrets["contact mailbox"] = card.MailboxID[:]
	secrets["contact provider"] = card.ProviderID[:]
	secrets["contact key"] = card.Key.Bytes()
	if err := s.AddContact("Zebediah-the-source", card); err != nil {
		t.Fatal(err)
	}

	body := []byte("the documents are in locker 4471, code quokka-umbrella-9")
	inID := randomID()
	secrets["inbox body"] = body
	secrets["inbox message id"] = inID[:]
	if _, err := s.SaveMessage("Zebediah-the-source", &message.Message{Sender: card.Key, ID: inID, Body: body}); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("a long inbox message about the harbour shipments; "), 2000)
	secrets["long inbox body"] = big[len(big)/2 : len(big)/2+64]
	if _, err := s.SaveMessage("Zebediah-the-source", &message.Message{Sender: card.Key, ID: randomID(), Body: big}); err != nil {
		t.Fatal(err)
	}

	outID := randomID()
	frag := []byte("outbound fragment bytes: meet at the old mill at nine")
	secrets["outbox id"] = outID[:]
	secrets["outbox fragment"] = frag
	secrets["outbox recipient name"] = []byte("Zebediah-the-source")
	if err := s.Enqueue(OutboxMessage{ID: outID, To: "Zebediah-the-source", Recipient: card}, [][]byte{frag, frag}); err != nil {
		t.Fatal(err)
	}
	surb := SURBID{0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f, 0x60}
	secrets["surb id"] = surb[:]
	// A SURB decryption token (320 bytes, five hops), kept until the ACK;
	// its ends too, so that part of it cannot show either.
	var token []byte
	for i := 0; len(token) < 320; i++ {
		token = fmt.Appendf(token, "surb-token-key-%03d;", i)
	}
	token = token[:320]
	secrets["surb token"] = token
	secrets["surb token head"] = token[:64]
	secrets["surb token tail"] = token[len(token)-64:]
	if err := s.RecordAttempt(outID, 0, surb, token, s.opts.Now()); err != nil {
		t.Fatal(err)
	}

	heldBody := []byte("a held fragment of an unfinished confession")
	secrets["held fragment"] = heldBody
	if err := s.HoldFragment(card.Key, message.Fragment{ID: randomID(), Count: 2, Total: 100, Body: heldBody}); err != nil {
		t.Fatal(err)
	}
	secrets["config value"] = []byte("provider-address=203.0.113.77:29483")
	secrets["config name"] = []byte("provider-address-setting")
	if err := s.SetConfig("provider-address-setting", secrets["config value"]); err != nil {
		t.Fatal(err)
	}
	// Table names must not show either.
	for _, tb := range tables {
		if len(tb) >= 5 {
			secrets["table "+tb] = []byte(tb)
		}
	}
	secrets["passphrase"] = testPass

	scanDir(t, dir, secrets)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	scanDir(t, dir, secrets)

	// The test must be able to fail: the search finds what it looks for.
	probe := filepath.Join(dir, "probe")
	os.WriteFile(probe, []byte("xx"+base64.StdEncoding.EncodeToString(append([]byte{7}, body...))), 0o600)
	found := false
	raw, _ := os.ReadFile(probe)
	for _, form := range encodings(body) {
		found = found || bytes.Contains(raw, form)
	}
	if !found {
		t.Fatal("the scan cannot find a base64-encoded secret")
	}
}
