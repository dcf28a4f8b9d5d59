package link

import (
	"context"
	"net"
	"testing"
)

// BenchmarkFrameThroughput sends SendPacket frames of the default packet
// length over TCP loopback, one sender and one receiver, with metrics on and
// cancellable contexts, as a mix uses them.
func BenchmarkFrameThroughput(b *testing.B) {
	lcfg, dcfg := testConfig(b), testConfig(b)
	l := listen(b, lcfg)
	d, a := connect(b, l, l.Addr().String(), dcfg, lcfg.PrivateKey.Public())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pkt := make([]byte, testPacketLength)
	b.SetBytes(testPacketLength)
	b.ReportAllocs()
	b.ResetTimer()
	done := make(chan error, 1)
	go func() {
		for range b.N {
			if _, err := a.Recv(ctx); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range b.N {
		if err := d.Send(ctx, SendPacket{Packet: pkt}); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkFrameCPU is the processor cost of one frame at both ends without
// the network: encode, seal, open, decode.
func BenchmarkFrameCPU(b *testing.B) {
	var key [32]byte
	send, recv := newCipherState(key, 0), newCipherState(key, 0)
	buf := make([]byte, FrameLength(testPacketLength)+tagLength)
	pkt := make([]byte, testPacketLength)
	b.SetBytes(testPacketLength)
	b.ReportAllocs()
	for b.Loop() {
		frame := buf[:FrameLength(testPacketLength)]
		if err := encodeFrame(frame, SendPacket{Packet: pkt}, testPacketLength); err != nil {
			b.Fatal(err)
		}
		wire := send.seal(buf[:0], frame)
		plain, err := recv.open(wire[:0], wire)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := decodeFrame(plain, testPacketLength); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandshakeConn runs complete handshakes through Client and Server
// over net.Pipe: the state machines of BenchmarkHandshake plus the message
// I/O, the confirmation frame and the link's setup and teardown.
func BenchmarkHandshakeConn(b *testing.B) {
	ccfg, scfg := testConfig(b), testConfig(b)
	want := scfg.PrivateKey.Public()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		x, y := net.Pipe()
		done := make(chan *Conn, 1)
		go func() {
			c, err := Server(ctx, y, scfg)
			if err != nil {
				b.Error(err)
			}
			done <- c
		}()
		c, err := Client(ctx, x, ccfg, want)
		if err != nil {
			b.Fatal(err)
		}
		s := <-done
		// net.Pipe does not buffer: s's Disconnect needs c reading.
		go s.Close()
		c.Recv(ctx)
		c.Close()
	}
}
