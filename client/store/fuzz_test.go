package store

import (
	"bytes"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/client/message"
)

// FuzzRecords: every record decoder refuses garbage without panicking, and
// what it accepts re-encodes to the same bytes. Records are authenticated
// before they are decoded, so this guards against our own bugs, not an
// attacker.
func FuzzRecords(f *testing.F) {
	k, _ := message.NewPrivateKey(bytes.Repeat([]byte{3}, 32))
	card := message.Card{Key: k.Public()}
	now := time.Unix(1_800_000_000, 5)
	c := Contact{Name: "alice", Card: card, Added: now}
	f.Add(uint8(0), encodeContact(&c))
	m := OutboxMessage{To: "bob", Recipient: card, Queued: now, Fragments: 3, Delivered: 1, Status: Pending}
	f.Add(uint8(1), encodeOutbox(&m))
	st := FragmentState{Index: 2, Attempts: 1, NextDeadline: now, SURBs: []SURBID{{1}}}
	f.Add(uint8(2), encodeFragState(&st))
	e := InboxEntry{Seq: 4, From: "carol", Sender: card.Key, Received: now, Read: true, Size: 10}
	f.Add(uint8(3), encodeEntry(&e))
	h := HeldFragment{Sender: card.Key, Fragment: message.Fragment{Count: 2, Total: 9, Body: []byte("abc")}}
	f.Add(uint8(4), encodeHeld(&h))
	f.Fuzz(func(t *testing.T, kind uint8, b []byte) {
		var again []byte
		switch kind % 5 {
		case 0:
			v, _, err := decodeContact(b)
			if err != nil {
				return
			}
			again = encodeContact(&v)
		case 1:
			v, err := decodeOutbox(b)
			if err != nil {
				return
			}
			again = encodeOutbox(&v)
		case 2:
			v, err := decodeFragState(b)
			if err != nil {
				return
			}
			again = encodeFragState(&v)
		case 3:
			v, err := decodeEntry(b)
			if err != nil {
				return
			}
			again = encodeEntry(&v)
		case 4:
			v, err := decodeHeld(b)
			if err != nil {
				return
			}
			again = encodeHeld(&v)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("kind %d: accepted record re-encodes differently", kind%5)
		}
	})
}

// FuzzHeader: the header parser (the one file read before any
// authentication) never panics, and accepts only bounded parameters.
func FuzzHeader(f *testing.F) {
	var master [masterKeySize]byte
	h, _ := newHeader(bytes.NewReader(make([]byte, 64)), []byte("p"), TestingKDF, &master)
	raw, _ := jsonHeader(h)
	f.Add(raw)
	f.Add([]byte(`{"format":"chorus-state-v1"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, err := parseHeader(raw)
		if err != nil {
			return
		}
		if h.params().validate() != nil || len(h.Salt) != saltSize {
			t.Fatal("accepted a header with bad parameters")
		}
	})
}
