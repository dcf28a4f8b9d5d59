package spool

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// A stored message, the value under its sequence number:
//
//	[0]      format version (recordVersion)
//	[1:9]    time stored, Unix nanoseconds, big endian
//	[9:13]   CRC-32C of bytes [0:9] and the payload, big endian
//	[13:]    payload
//
// bbolt checksums only its meta pages; the CRC lets a damaged message be
// detected and dropped (counted as evicted, reason "corrupt") instead of
// handed to a client.
const (
	recordVersion = 1
	headerLength  = 13
)

var (
	errCorrupt = errors.New("spool: corrupt record")
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

func recordChecksum(b []byte, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, b[:9])
	return crc32.Update(c, castagnoli, payload)
}

// encodeRecord returns a new record holding a copy of payload.
func encodeRecord(stored int64, payload []byte) []byte {
	b := make([]byte, headerLength+len(payload))
	b[0] = recordVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(stored))
	copy(b[headerLength:], payload)
	binary.BigEndian.PutUint32(b[9:13], recordChecksum(b, payload))
	return b
}

// decodeRecord checks b and returns its time and payload. payload aliases
// b.
func decodeRecord(b []byte) (stored int64, payload []byte, err error) {
	if len(b) < headerLength || b[0] != recordVersion {
		return 0, nil, errCorrupt
	}
	payload = b[headerLength:]
	if binary.BigEndian.Uint32(b[9:13]) != recordChecksum(b, payload) {
		return 0, nil, errCorrupt
	}
	return int64(binary.BigEndian.Uint64(b[1:9])), payload, nil
}

// payloadLen is the payload length of a record of length n.
func payloadLen(n int) int64 { return int64(max(n-headerLength, 0)) }

// usage is a mailbox's totals, the value under its ID in bucketUsage:
// messages (8 bytes) and payload bytes (8 bytes), big endian.
type usage struct {
	messages int64
	bytes    int64
}

const usageLength = 16

func (u usage) encode() []byte {
	b := make([]byte, usageLength)
	binary.BigEndian.PutUint64(b[0:8], uint64(u.messages))
	binary.BigEndian.PutUint64(b[8:16], uint64(u.bytes))
	return b
}

func decodeUsage(b []byte) (usage, error) {
	if len(b) != usageLength {
		return usage{}, errCorrupt
	}
	u := usage{int64(binary.BigEndian.Uint64(b[0:8])), int64(binary.BigEndian.Uint64(b[8:16]))}
	if u.messages < 0 || u.bytes < 0 {
		return usage{}, errCorrupt
	}
	return u, nil
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq) }

func parseSeqKey(k []byte) (uint64, bool) {
	if len(k) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(k), true
}
