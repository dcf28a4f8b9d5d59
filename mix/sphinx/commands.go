package sphinx

import (
	"encoding/binary"
	"errors"
)

// Routing command tags. 0x00 is the null command: it ends the list and
// every byte after it must be zero.
const (
	tagNull        = 0x00
	tagNextNodeHop = 0x01
	tagRecipient   = 0x02
	tagSURBReply   = 0x03
	tagNodeDelay   = 0x80
)

// A Command is one per-hop routing command. The sender puts commands in a
// PathHop; Unwrap reports the ones it finds in a Result. The concrete types
// are NextNodeHop, Recipient, SURBReply and NodeDelay.
type Command interface {
	// appendTo appends the command's encoding (tag and body) to b.
	appendTo(b []byte) []byte
	// encodedLen is the length appendTo appends.
	encodedLen() int
}

// NextNodeHop (tag 0x01) names the hop a packet goes to next and carries
// that hop's header MAC. Packet creation adds it; senders never supply it.
type NextNodeHop struct {
	ID  [NodeIDLength]byte
	MAC [macLength]byte
}

// Recipient (tag 0x02) names the mailbox the last hop delivers to.
type Recipient struct {
	ID [RecipientIDLength]byte
}

// SURBReply (tag 0x03) marks a reply sent with a SURB; ID lets the SURB's
// creator find the decryption token.
type SURBReply struct {
	ID [SURBIDLength]byte
}

// NodeDelay (tag 0x80) is how long the hop holds the packet before
// forwarding it, in milliseconds.
type NodeDelay struct {
	Delay uint32
}

func (c NextNodeHop) appendTo(b []byte) []byte {
	b = append(b, tagNextNodeHop)
	b = append(b, c.ID[:]...)
	return append(b, c.MAC[:]...)
}

func (c Recipient) appendTo(b []byte) []byte {
	return append(append(b, tagRecipient), c.ID[:]...)
}

func (c SURBReply) appendTo(b []byte) []byte {
	return append(append(b, tagSURBReply), c.ID[:]...)
}

func (c NodeDelay) appendTo(b []byte) []byte {
	return binary.BigEndian.AppendUint32(append(b, tagNodeDelay), c.Delay)
}

func (NextNodeHop) encodedLen() int { return nextNodeHopLength }
func (Recipient) encodedLen() int   { return recipientLength }
func (SURBReply) encodedLen() int   { return surbReplyLength }
func (NodeDelay) encodedLen() int   { return nodeDelayLength }

var errInvalidCommands = errors.New("sphinx: invalid routing commands")

// commandLength returns the encoded length of the command that starts b,
// or 0 if b starts with the null command and every byte of b is zero (or b
// is empty). ok is false for an unknown tag, a truncated command, or
// non-zero bytes after the null command.
func commandLength(b []byte) (n int, ok bool) {
	if len(b) == 0 {
		return 0, true
	}
	switch b[0] {
	case tagNull:
		var acc byte
		for _, v := range b[1:] {
			acc |= v
		}
		return 0, acc == 0
	case tagNextNodeHop:
		n = nextNodeHopLength
	case tagRecipient:
		n = recipientLength
	case tagSURBReply:
		n = surbReplyLength
	case tagNodeDelay:
		n = nodeDelayLength
	default:
		return 0, false
	}
	if len(b) < n {
		return 0, false
	}
	return n, true
}

// parseCommands decodes a block of routing commands strictly: known tags
// only, no truncated command, and after a null tag only zero bytes. A
// block may also end exactly after its last command. Duplicates are
// decoded; whether a combination makes sense is Unwrap's business.
func parseCommands(b []byte) ([]Command, error) {
	var cmds []Command
	for {
		n, ok := commandLength(b)
		if !ok {
			return nil, errInvalidCommands
		}
		if n == 0 {
			return cmds, nil
		}
		body := b[1:n]
		switch b[0] {
		case tagNextNodeHop:
			var c NextNodeHop
			copy(c.ID[:], body)
			copy(c.MAC[:], body[NodeIDLength:])
			cmds = append(cmds, c)
		case tagRecipient:
			var c Recipient
			copy(c.ID[:], body)
			cmds = append(cmds, c)
		case tagSURBReply:
			var c SURBReply
			copy(c.ID[:], body)
			cmds = append(cmds, c)
		case tagNodeDelay:
			cmds = append(cmds, NodeDelay{Delay: binary.BigEndian.Uint32(body)})
		}
		b = b[n:]
	}
}

// appendCommands appends the encodings of cmds to b.
func appendCommands(b []byte, cmds []Command) []byte {
	for _, c := range cmds {
		b = c.appendTo(b)
	}
	return b
}

// hopCommands is what Unwrap learns from one hop's routing commands,
// decoded without allocation.
type hopCommands struct {
	next      *[nextNodeHopLength - 1]byte
	recipient *[RecipientIDLength]byte
	surb      *[SURBIDLength]byte
	delay     uint32
	hasDelay  bool
}

// decodeHop decodes one hop's commands from b, which it aliases, and
// checks that they make sense: each command at most once, and either a
// forward hop (NextNodeHop, optionally NodeDelay) or a last hop (Recipient,
// optionally SURBReply).
func (h *hopCommands) decodeHop(b []byte) bool {
	*h = hopCommands{}
	for {
		n, ok := commandLength(b)
		if !ok {
			return false
		}
		if n == 0 {
			break
		}
		body := b[1:n]
		switch b[0] {
		case tagNextNodeHop:
			if h.next != nil {
				return false
			}
			h.next = (*[nextNodeHopLength - 1]byte)(body)
		case tagRecipient:
			if h.recipient != nil {
				return false
			}
			h.recipient = (*[RecipientIDLength]byte)(body)
		case tagSURBReply:
			if h.surb != nil {
				return false
			}
			h.surb = (*[SURBIDLength]byte)(body)
		case tagNodeDelay:
			if h.hasDelay {
				return false
			}
			h.hasDelay = true
			h.delay = binary.BigEndian.Uint32(body)
		}
		b = b[n:]
	}
	if h.next != nil {
		return h.recipient == nil && h.surb == nil
	}
	return h.recipient != nil && !h.hasDelay
}
