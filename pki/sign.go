package pki

import (
	"fmt"

	"github.com/chorus-mixnet/chorus/mix/keys"
)

// MaxSignatureSize bounds a signature on the wire. Ed25519 signatures are 64
// bytes; the bound leaves room for a hybrid Ed25519 + ML-DSA-65 signature
// (3,373 bytes) without a format change.
const MaxSignatureSize = 4096

// Signer signs messages with an identity key. *keys.IdentityPrivateKey
// implements it; so can a key held elsewhere (an HSM, a hybrid scheme).
//
// Sign receives the complete, domain-separated message; implementations sign
// it as is and must not hash or prefix it further.
type Signer interface {
	Public() keys.IdentityPublicKey
	Sign(message []byte) []byte
}

// Domain separation: every signature covers a context string naming the kind
// of object and its format version, a zero byte, then the object's bytes. A
// signature over a descriptor can therefore never be replayed as a vote.
const (
	contextDescriptor = "chorus-descriptor-v1"
	contextDocument   = "chorus-document-v1"
	contextVote       = "chorus-vote-v1"
	contextReveal     = "chorus-reveal-v1"
)

func signedMessage(context string, body []byte) []byte {
	m := make([]byte, 0, len(context)+1+len(body))
	m = append(m, context...)
	m = append(m, 0)
	return append(m, body...)
}

func sign(s Signer, context string, body []byte) []byte {
	return s.Sign(signedMessage(context, body))
}

func verify(pub keys.IdentityPublicKey, context string, body, sig []byte) bool {
	return pub.Verify(signedMessage(context, body), sig)
}

// authoritySet is a de-duplicated set of configured authority keys.
type authoritySet []keys.IdentityPublicKey

// newAuthoritySet checks the configuration: at least one authority, and a
// threshold that is a majority of the distinct authorities (so two disjoint
// sets of signers can never both reach it) and reachable.
func newAuthoritySet(authorities []keys.IdentityPublicKey, threshold int) (authoritySet, error) {
	var set authoritySet
	for _, a := range authorities {
		if a.IsZero() {
			return nil, fmt.Errorf("%w: zero authority key", ErrThreshold)
		}
		if !set.contains(a) {
			set = append(set, a)
		}
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("%w: no authorities", ErrThreshold)
	}
	if threshold > len(set) || threshold <= len(set)/2 {
		return nil, fmt.Errorf("%w: threshold %d is not a majority of %d authorities", ErrThreshold, threshold, len(set))
	}
	return set, nil
}

func (s authoritySet) contains(k keys.IdentityPublicKey) bool {
	return s.index(k) >= 0
}

func (s authoritySet) index(k keys.IdentityPublicKey) int {
	for i, a := range s {
		if a.Equal(k) {
			return i
		}
	}
	return -1
}
