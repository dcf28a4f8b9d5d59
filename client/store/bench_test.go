package store

import (
	"testing"
	"time"
)

// BenchmarkArgon2idDefault is the cost of one unlock with DefaultKDF: the
// time Open takes, and what each passphrase guess costs an attacker here.
func BenchmarkArgon2idDefault(b *testing.B) {
	salt := make([]byte, saltSize)
	for b.Loop() {
		deriveKEK(testPass, salt, DefaultKDF)
	}
}

// BenchmarkRecordAttempt is one durable ARQ update: a bbolt transaction
// with fsync.
func BenchmarkRecordAttempt(b *testing.B) {
	s, _ := newStore(b)
	id := randomID()
	if err := s.Enqueue(OutboxMessage{ID: id, Recipient: randomCard(b)}, [][]byte{make([]byte, 1900)}); err != nil {
		b.Fatal(err)
	}
	token := make([]byte, 320) // five hops
	i := 0
	for b.Loop() {
		i++
		s.RecordAttempt(id, 0, SURBID{byte(i), byte(i >> 8), byte(i >> 16), 1}, token, time.Time{})
	}
}

// BenchmarkEnqueue1MiB queues a maximum-size message: 547 sealed fragments
// of 2000 bytes in one transaction.
func BenchmarkEnqueue1MiB(b *testing.B) {
	s, _ := newStore(b)
	card := randomCard(b)
	frags := make([][]byte, 547)
	for i := range frags {
		frags[i] = make([]byte, 2000)
	}
	b.SetBytes(547 * 2000)
	for b.Loop() {
		if err := s.Enqueue(OutboxMessage{ID: randomID(), Recipient: card}, frags); err != nil {
			b.Fatal(err)
		}
	}
}
