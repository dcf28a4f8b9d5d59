package link

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/flynn/noise"

	"github.com/chorus-mixnet/chorus/mix/keys"
)

func newKey(t testing.TB) *keys.LinkPrivateKey {
	t.Helper()
	k, err := keys.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// transcript is one complete in-memory handshake.
type transcript struct {
	msg1, msg2, msg3       []byte
	iSend, iRecv           *cipherState
	rSend, rRecv           *cipherState
	iSawPeer, rSawPeer     keys.LinkPublicKey
	initiator, responder   *handshake
	initiatorKey, respoKey *keys.LinkPrivateKey
}

func runHandshake(t testing.TB, ik, rk *keys.LinkPrivateKey, pl int) *transcript {
	t.Helper()
	tr := &transcript{initiatorKey: ik, respoKey: rk}
	var err error
	if tr.initiator, err = newHandshake(ik, pl, true, 0); err != nil {
		t.Fatal(err)
	}
	if tr.responder, err = newHandshake(rk, pl, false, 0); err != nil {
		t.Fatal(err)
	}
	defer tr.initiator.wipe()
	defer tr.responder.wipe()
	if tr.msg1, err = tr.initiator.writeMsg1(); err != nil {
		t.Fatal(err)
	}
	pk, err := tr.responder.readMsg1(tr.msg1)
	if err != nil {
		t.Fatal(err)
	}
	if tr.msg2, err = tr.responder.writeMsg2(pk); err != nil {
		t.Fatal(err)
	}
	if tr.iSawPeer, err = tr.initiator.readMsg2(tr.msg2); err != nil {
		t.Fatal(err)
	}
	if tr.msg3, tr.iSend, tr.iRecv, err = tr.initiator.writeMsg3(); err != nil {
		t.Fatal(err)
	}
	if tr.rSawPeer, tr.rSend, tr.rRecv, err = tr.responder.readMsg3(tr.msg3); err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestHandshake(t *testing.T) {
	ik, rk := newKey(t), newKey(t)
	tr := runHandshake(t, ik, rk, 3082)
	if len(tr.msg1) != 1232 || len(tr.msg2) != 1184 || len(tr.msg3) != 64 {
		t.Errorf("message sizes %d, %d, %d; want 1232, 1184, 64", len(tr.msg1), len(tr.msg2), len(tr.msg3))
	}
	if !tr.iSawPeer.Equal(rk.Public()) || !tr.rSawPeer.Equal(ik.Public()) {
		t.Error("peers did not learn each other's static keys")
	}
	if tr.iSend.key != tr.rRecv.key || tr.rSend.key != tr.iRecv.key || tr.iSend.key == tr.iRecv.key {
		t.Error("session keys do not pair up")
	}
	// Each direction works.
	msg := []byte("hello, mix")
	ct := tr.iSend.seal(nil, msg)
	if pt, err := tr.rRecv.open(nil, ct); err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("initiator → responder: %q, %v", pt, err)
	}
	ct = tr.rSend.seal(nil, msg)
	if pt, err := tr.iRecv.open(nil, ct); err != nil || !bytes.Equal(pt, msg) {
		t.Fatalf("responder → initiator: %q, %v", pt, err)
	}
	// Handshake state is wiped.
	if tr.initiator.hs != nil || tr.responder.hs != nil || tr.initiator.kemPriv != nil {
		t.Error("handshake state not dropped")
	}
	if tr.initiator.psk != [32]byte{} || tr.responder.psk != [32]byte{} {
		t.Error("PSK not wiped")
	}
}

// TestHandshakeSessionKeysDependOnKEM: two handshakes differ in their keys
// even with the same static keys (ephemerals), and the PSK is really mixed:
// a responder whose ML-KEM secret differs cannot read message 3.
func TestHandshakeSessionKeysDependOnKEM(t *testing.T) {
	ik, rk := newKey(t), newKey(t)
	i, _ := newHandshake(ik, 100, true, 0)
	r, _ := newHandshake(rk, 100, false, 0)
	msg1, _ := i.writeMsg1()
	pk, err := r.readMsg1(msg1)
	if err != nil {
		t.Fatal(err)
	}
	msg2, _ := r.writeMsg2(pk)
	if _, err := i.readMsg2(msg2); err != nil {
		t.Fatal(err)
	}
	msg3, _, _, err := i.writeMsg3()
	if err != nil {
		t.Fatal(err)
	}
	// Corrupt the responder's idea of the KEM secret.
	r.psk[0] ^= 1
	if err := r.hs.SetPresharedKey(r.psk[:]); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.readMsg3(msg3); err == nil {
		t.Fatal("message 3 accepted with a different ML-KEM secret")
	}
}

// TestHandshakePrologue: different packet lengths (or versions) fail at the
// first message.
func TestHandshakePrologue(t *testing.T) {
	i, _ := newHandshake(newKey(t), 3082, true, 0)
	r, _ := newHandshake(newKey(t), 3083, false, 0)
	msg1, _ := i.writeMsg1()
	if _, err := r.readMsg1(msg1); err == nil {
		t.Fatal("responder with another packet length accepted message 1")
	}
}

func TestHandshakeTamper(t *testing.T) {
	ik, rk := newKey(t), newKey(t)
	good := runHandshake(t, ik, rk, 64)
	for idx := 1; idx <= 3; idx++ {
		msg := [][]byte{nil, good.msg1, good.msg2, good.msg3}[idx]
		for _, pos := range []int{0, 31, 32, len(msg) / 2, len(msg) - 17, len(msg) - 1} {
			i, _ := newHandshake(ik, 64, true, 0)
			r, _ := newHandshake(rk, 64, false, 0)
			flip := func(m []byte, n int) []byte {
				if n != idx {
					return m
				}
				m = bytes.Clone(m)
				m[pos] ^= 0x04
				return m
			}
			failed := func() bool {
				m1, _ := i.writeMsg1()
				pk, err := r.readMsg1(flip(m1, 1))
				if err != nil {
					return true
				}
				m2, _ := r.writeMsg2(pk)
				if _, err := i.readMsg2(flip(m2, 2)); err != nil {
					return true
				}
				m3, _, _, _ := i.writeMsg3()
				_, _, _, err = r.readMsg3(flip(m3, 3))
				return err != nil
			}()
			if !failed {
				t.Errorf("message %d with byte %d flipped was accepted", idx, pos)
			}
		}
	}
}

// TestCipherMatchesNoise checks our transport cipher, rekeying included,
// against flynn/noise's CipherState byte for byte.
func TestCipherMatchesNoise(t *testing.T) {
	var key [32]byte
	rand.Read(key[:])
	ours := newCipherState(key, 5)
	theirs := noise.UnsafeNewCipherState(cipherSuite, key, 0)
	for i := range 23 {
		msg := bytes.Repeat([]byte{byte(i)}, 100+i)
		a := ours.seal(nil, msg)
		b, err := theirs.Encrypt(nil, nil, msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("frame %d differs from noise", i)
		}
		if (i+1)%5 == 0 {
			theirs.Rekey()
		}
	}
}

func TestCipherRekeyChangesKey(t *testing.T) {
	var key [32]byte
	a, b := newCipherState(key, 3), newCipherState(key, 4)
	for i := range 3 {
		ct := a.seal(nil, []byte{byte(i)})
		if _, err := b.open(nil, ct); err != nil {
			t.Fatalf("frame %d before the rekey: %v", i, err)
		}
	}
	if a.key == key {
		t.Fatal("no rekey after 3 frames")
	}
	ct := a.seal(nil, []byte{3})
	if _, err := b.open(nil, ct); err == nil {
		t.Fatal("a rekeyed, b did not, yet b opened the frame")
	}
}

// FuzzHandshakeMessage feeds arbitrary bytes to each step of the handshake
// on both sides: as message 1 to a fresh responder, as message 2 to an
// initiator that sent message 1, as message 3 to a responder that sent
// message 2. Nothing may panic, and garbage must not complete a handshake.
// Inputs are also tried stretched or cut to the message's exact length, so
// the fuzzer reaches the cryptography rather than the length check.
func FuzzHandshakeMessage(f *testing.F) {
	ik, rk := newKey(f), newKey(f)
	good := runHandshake(f, ik, rk, 64)
	f.Add(uint8(1), good.msg1)
	f.Add(uint8(2), good.msg2)
	f.Add(uint8(3), good.msg3)
	f.Add(uint8(1), []byte{})
	f.Add(uint8(2), make([]byte, msg2Length))
	f.Add(uint8(3), make([]byte, msg3Length))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		step := int(which%3) + 1
		want := []int{0, msg1Length, msg2Length, msg3Length}[step]
		exact := make([]byte, want)
		copy(exact, data)
		for _, msg := range [][]byte{data, exact} {
			i, err := newHandshake(ik, 64, true, 0)
			if err != nil {
				t.Fatal(err)
			}
			r, err := newHandshake(rk, 64, false, 0)
			if err != nil {
				t.Fatal(err)
			}
			switch step {
			case 1:
				if pk, err := r.readMsg1(msg); err == nil {
					// Message 1 is not authenticated: a well-formed one
					// from anyone is fine. The handshake must go on.
					if _, err := r.writeMsg2(pk); err != nil {
						t.Fatalf("writeMsg2 after accepted message 1: %v", err)
					}
				}
			case 2:
				if _, err := i.writeMsg1(); err != nil {
					t.Fatal(err)
				}
				if _, err := i.readMsg2(msg); err == nil {
					t.Fatalf("initiator accepted a forged message 2")
				}
			case 3:
				m1, _ := i.writeMsg1()
				pk, err := r.readMsg1(m1)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := r.writeMsg2(pk); err != nil {
					t.Fatal(err)
				}
				if _, _, _, err := r.readMsg3(msg); err == nil {
					t.Fatalf("responder accepted a forged message 3")
				}
			}
			i.wipe()
			r.wipe()
		}
	})
}

// BenchmarkHandshake runs complete handshakes, both sides, in memory.
func BenchmarkHandshake(b *testing.B) {
	ik, rk := newKey(b), newKey(b)
	b.ReportAllocs()
	for b.Loop() {
		runHandshake(b, ik, rk, 3082)
	}
}

// TestDHMatchesNoise: our circl-based DH gives flynn/noise's results and
// refuses low-order points as it does.
func TestDHMatchesNoise(t *testing.T) {
	for range 20 {
		a, err := dh25519{}.GenerateKeypair(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := noise.DH25519.GenerateKeypair(rand.Reader)
		pub, _ := noise.DH25519.DH(a.Private, []byte{9, 31: 0})
		if !bytes.Equal(pub, a.Public) {
			t.Fatal("public key differs from noise's")
		}
		ours, err := dh25519{}.DH(a.Private, b.Public)
		if err != nil {
			t.Fatal(err)
		}
		theirs, _ := noise.DH25519.DH(a.Private, b.Public)
		if !bytes.Equal(ours, theirs) {
			t.Fatal("shared secret differs from noise's")
		}
	}
	priv := make([]byte, 32)
	rand.Read(priv)
	for _, low := range [][]byte{
		make([]byte, 32),                       // 0
		append([]byte{1}, make([]byte, 31)...), // 1
		{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00}, // order 8
	} {
		if _, err := (dh25519{}).DH(priv, low); err == nil {
			t.Errorf("low-order point %x accepted", low)
		}
	}
}
