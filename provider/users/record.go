package users

import (
	"encoding/binary"
	"errors"
	"time"
)

// origin says how a key came into the registry.
type origin byte

const (
	originOpen     origin = 1 // registered itself under open registration
	originOperator origin = 2 // added by the operator
)

// A stored record, the value under a link key:
//
//	[0]     format version (recordVersion)
//	[1]     origin
//	[2:10]  registration time, Unix nanoseconds, big endian
const (
	recordVersion = 1
	recordLength  = 10
)

var errRecord = errors.New("users: malformed record")

type record struct {
	origin     origin
	registered int64 // Unix nanoseconds
}

func (r record) marshal() []byte {
	b := make([]byte, recordLength)
	b[0] = recordVersion
	b[1] = byte(r.origin)
	binary.BigEndian.PutUint64(b[2:], uint64(r.registered))
	return b
}

func parseRecord(b []byte) (record, error) {
	if len(b) != recordLength || b[0] != recordVersion {
		return record{}, errRecord
	}
	o := origin(b[1])
	if o != originOpen && o != originOperator {
		return record{}, errRecord
	}
	return record{origin: o, registered: int64(binary.BigEndian.Uint64(b[2:]))}, nil
}

func newRecord(o origin, now time.Time) record {
	return record{origin: o, registered: now.UnixNano()}
}
