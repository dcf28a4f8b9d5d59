package link

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderLength is the size of the command header at the start of every
// plaintext frame. The rest of the frame is a body of exactly one packet
// length.
const HeaderLength = 24

// MaxPacketLength is the largest packet length a link can carry: an
// encrypted frame (header, body and the 16-byte AEAD tag) must fit one Noise
// transport message of at most 65535 bytes.
const MaxPacketLength = 65535 - tagLength - HeaderLength

// tagLength is the size of the ChaCha20-Poly1305 tag on every frame.
const tagLength = 16

// FrameLength is the length of one plaintext frame for the given packet
// length (the Sphinx geometry's PacketLength). On the wire each frame is
// FrameLength(packetLength)+16 bytes.
func FrameLength(packetLength int) int { return HeaderLength + packetLength }

// Command is one link command. The concrete types are SendPacket,
// RetrieveMessage, Message, MessageAck, GetConsensus, Consensus, NoOp and
// Disconnect; no other package can add one.
type Command interface {
	command() byte
}

// Command codes: the first byte of every plaintext frame. Zero is never a
// valid command, so an all-zero frame is malformed.
const (
	cmdNoOp            = 1
	cmdDisconnect      = 2
	cmdSendPacket      = 3
	cmdRetrieveMessage = 4
	cmdMessage         = 5
	cmdMessageAck      = 6
	cmdGetConsensus    = 7
	cmdConsensus       = 8
)

// SendPacket carries one Sphinx packet to the next hop. Packet is exactly
// the configured packet length.
//
// A SendPacket returned by Recv aliases the Conn's receive buffer: Packet is
// valid only until the next call to Recv. The caller may modify it in place
// (for example unwrap it) but must copy it to keep it longer.
type SendPacket struct {
	Packet []byte
}

// RetrieveMessage asks the provider for the mailbox entry with sequence
// number Seq (client → provider).
type RetrieveMessage struct {
	Seq uint64
}

// Message answers RetrieveMessage (provider → client): the mailbox entry
// with sequence number Seq, or, if Empty, the news that there is none.
// QueueHint is the provider's estimate of how many entries wait after this
// one. Payload holds at most the packet length; an empty Message has none.
// Every frame has the same length whatever the payload; a provider should
// still send payloads of one size (the Sphinx payload length), so that not
// even the client learns anything from them.
//
// A Message returned by Recv aliases the receive buffer like SendPacket.
type Message struct {
	Seq       uint64
	Empty     bool
	QueueHint uint32
	Payload   []byte
}

// MessageAck tells the provider that the client holds the entry with
// sequence number Seq durably, so the provider may delete it.
type MessageAck struct {
	Seq uint64
}

// GetConsensus asks for the consensus document of an epoch (client →
// provider).
type GetConsensus struct {
	Epoch uint64
}

// ConsensusStatus is the outcome carried in a Consensus reply.
type ConsensusStatus uint8

// Consensus statuses.
const (
	// ConsensusOK: the frame carries chunk Chunk of Chunks of the document.
	ConsensusOK ConsensusStatus = 0
	// ConsensusNotFound: the document for that epoch is not (yet) known.
	ConsensusNotFound ConsensusStatus = 1
	// ConsensusGone: the epoch is too old; its document was discarded.
	ConsensusGone ConsensusStatus = 2
)

// Consensus is one chunk of a consensus document, or a status saying there
// is none. With ConsensusOK, Chunks ≥ 1, Chunk < Chunks and Data holds at most
// the packet length; with any other status Chunk, Chunks and Data are zero.
//
// A Consensus returned by Recv aliases the receive buffer like SendPacket.
type Consensus struct {
	Epoch  uint64
	Status ConsensusStatus
	Chunk  uint32
	Chunks uint32
	Data   []byte
}

// NoOp carries nothing. Idle links send it to keep frames flowing; Recv
// never returns it.
type NoOp struct{}

// Disconnect announces a clean close. Close sends it; Recv reports it as
// io.EOF.
type Disconnect struct{}

func (SendPacket) command() byte      { return cmdSendPacket }
func (RetrieveMessage) command() byte { return cmdRetrieveMessage }
func (Message) command() byte         { return cmdMessage }
func (MessageAck) command() byte      { return cmdMessageAck }
func (GetConsensus) command() byte    { return cmdGetConsensus }
func (Consensus) command() byte       { return cmdConsensus }
func (NoOp) command() byte            { return cmdNoOp }
func (Disconnect) command() byte      { return cmdDisconnect }

// ErrMalformed is returned when a peer's frame fails authentication or does
// not decode. It is deliberately one opaque error: the link is closed either
// way.
var ErrMalformed = errors.New("link: malformed frame")

// ErrInvalidCommand is returned by Send for a command that cannot be encoded
// with this link's packet length (a packet of the wrong size, a payload too
// long, an inconsistent Consensus).
var ErrInvalidCommand = errors.New("link: invalid command")

// Plaintext frame layout. All integers are big-endian. Bytes not named for a
// command are zero; the body is the payload, packet or data followed by zero
// padding up to the packet length.
//
//	offset  SendPacket  RetrieveMessage  Message      MessageAck  GetConsensus  Consensus
//	0       cmd         cmd              cmd          cmd         cmd           cmd
//	1       -           seq (8)          flags (1)    seq (8)     epoch (8)     status (1)
//	2                                    seq (8)                                epoch (8)
//	10                                   hint (4)                               chunk (4)
//	14                                   length (4)                             chunks (4)
//	18                                                                          length (4)
//	24      packet      -                payload      -           -             data
//
// NoOp and Disconnect are the command byte and zeros.
const (
	flagEmpty = 1 // Message: the mailbox has no entry
)

// encodeFrame writes cmd as a plaintext frame into dst, which must be
// exactly FrameLength(packetLength) bytes. It fails only for commands that
// do not fit, without writing anything partial that matters: dst is always
// fully overwritten on success.
func encodeFrame(dst []byte, cmd Command, packetLength int) error {
	if len(dst) != FrameLength(packetLength) {
		panic("link: encodeFrame: wrong buffer length")
	}
	hdr, body := dst[:HeaderLength], dst[HeaderLength:]
	var (
		data []byte
		code byte
	)
	// The command byte is set in each case rather than with cmd.command():
	// a method call through the interface would make cmd escape, and every
	// Send allocate.
	switch c := cmd.(type) {
	case SendPacket:
		if len(c.Packet) != packetLength {
			return fmt.Errorf("%w: packet of %d bytes, want %d", ErrInvalidCommand, len(c.Packet), packetLength)
		}
		clear(hdr)
		code, data = cmdSendPacket, c.Packet
	case RetrieveMessage:
		clear(hdr)
		code = cmdRetrieveMessage
		binary.BigEndian.PutUint64(hdr[1:], c.Seq)
	case Message:
		if c.Empty && len(c.Payload) != 0 {
			return fmt.Errorf("%w: empty message with a payload", ErrInvalidCommand)
		}
		if len(c.Payload) > packetLength {
			return fmt.Errorf("%w: payload of %d bytes, at most %d", ErrInvalidCommand, len(c.Payload), packetLength)
		}
		clear(hdr)
		if c.Empty {
			hdr[1] = flagEmpty
		}
		binary.BigEndian.PutUint64(hdr[2:], c.Seq)
		binary.BigEndian.PutUint32(hdr[10:], c.QueueHint)
		binary.BigEndian.PutUint32(hdr[14:], uint32(len(c.Payload)))
		code, data = cmdMessage, c.Payload
	case MessageAck:
		clear(hdr)
		code = cmdMessageAck
		binary.BigEndian.PutUint64(hdr[1:], c.Seq)
	case GetConsensus:
		clear(hdr)
		code = cmdGetConsensus
		binary.BigEndian.PutUint64(hdr[1:], c.Epoch)
	case Consensus:
		if !consensusValid(c.Status, c.Chunk, c.Chunks, len(c.Data), packetLength) {
			return fmt.Errorf("%w: inconsistent consensus chunk", ErrInvalidCommand)
		}
		clear(hdr)
		hdr[1] = byte(c.Status)
		binary.BigEndian.PutUint64(hdr[2:], c.Epoch)
		binary.BigEndian.PutUint32(hdr[10:], c.Chunk)
		binary.BigEndian.PutUint32(hdr[14:], c.Chunks)
		binary.BigEndian.PutUint32(hdr[18:], uint32(len(c.Data)))
		code, data = cmdConsensus, c.Data
	case NoOp:
		clear(hdr)
		code = cmdNoOp
	case Disconnect:
		clear(hdr)
		code = cmdDisconnect
	default:
		// Command is sealed, so only a nil Command lands here. (cmd is not
		// formatted into the error, for the same reason.)
		return fmt.Errorf("%w: nil command", ErrInvalidCommand)
	}
	hdr[0] = code
	n := copy(body, data)
	clear(body[n:])
	return nil
}

// consensusValid reports whether a Consensus chunk is self-consistent.
func consensusValid(status ConsensusStatus, chunk, chunks uint32, n, packetLength int) bool {
	switch status {
	case ConsensusOK:
		return chunks >= 1 && chunk < chunks && n <= packetLength
	case ConsensusNotFound, ConsensusGone:
		return chunk == 0 && chunks == 0 && n == 0
	default:
		return false
	}
}

// decodeFrame parses a plaintext frame of exactly FrameLength(packetLength)
// bytes. Every field is checked: an unknown command, a nonzero byte where
// the layout has none, or a length that disagrees with the frame makes the
// frame malformed. Slices in the result alias b. Only canonical encodings
// are accepted, so encodeFrame(decodeFrame(b)) == b.
func decodeFrame(b []byte, packetLength int) (Command, error) {
	if packetLength < 1 || len(b) != FrameLength(packetLength) {
		return nil, ErrMalformed
	}
	b = b[:len(b):len(b)]
	hdr, body := b[:HeaderLength], b[HeaderLength:]
	var (
		cmd    Command
		used   int // bytes of the header in use, including the command byte
		length int // bytes of the body in use
	)
	switch hdr[0] {
	case cmdNoOp:
		cmd, used = NoOp{}, 1
	case cmdDisconnect:
		cmd, used = Disconnect{}, 1
	case cmdSendPacket:
		cmd, used, length = SendPacket{Packet: body}, 1, packetLength
	case cmdRetrieveMessage:
		cmd, used = RetrieveMessage{Seq: binary.BigEndian.Uint64(hdr[1:])}, 9
	case cmdMessage:
		flags := hdr[1]
		n := binary.BigEndian.Uint32(hdr[14:])
		if flags&^flagEmpty != 0 || n > uint32(packetLength) || (flags&flagEmpty != 0 && n != 0) {
			return nil, ErrMalformed
		}
		length = int(n)
		cmd, used = Message{
			Seq:       binary.BigEndian.Uint64(hdr[2:]),
			Empty:     flags&flagEmpty != 0,
			QueueHint: binary.BigEndian.Uint32(hdr[10:]),
			Payload:   body[:length:length],
		}, 18
	case cmdMessageAck:
		cmd, used = MessageAck{Seq: binary.BigEndian.Uint64(hdr[1:])}, 9
	case cmdGetConsensus:
		cmd, used = GetConsensus{Epoch: binary.BigEndian.Uint64(hdr[1:])}, 9
	case cmdConsensus:
		status := ConsensusStatus(hdr[1])
		chunk := binary.BigEndian.Uint32(hdr[10:])
		chunks := binary.BigEndian.Uint32(hdr[14:])
		n := binary.BigEndian.Uint32(hdr[18:])
		if n > uint32(packetLength) || !consensusValid(status, chunk, chunks, int(n), packetLength) {
			return nil, ErrMalformed
		}
		length = int(n)
		cmd, used = Consensus{
			Epoch:  binary.BigEndian.Uint64(hdr[2:]),
			Status: status,
			Chunk:  chunk,
			Chunks: chunks,
			Data:   body[:length:length],
		}, 22
	default:
		return nil, ErrMalformed
	}
	if !allZero(hdr[used:]) || !allZero(body[length:]) {
		return nil, ErrMalformed
	}
	return cmd, nil
}

// allZero reports whether b is all zero bytes. Frames are authenticated
// before they are decoded, so timing here reveals nothing to an outsider.
func allZero(b []byte) bool {
	var acc uint64
	for len(b) >= 8 {
		acc |= binary.LittleEndian.Uint64(b)
		b = b[8:]
	}
	for _, x := range b {
		acc |= uint64(x)
	}
	return acc == 0
}
