package link

import (
	"errors"
	"io"

	"github.com/cloudflare/circl/dh/x25519"
	"github.com/flynn/noise"
)

// dh25519 is Noise's 25519 DH function on circl's X25519, which is faster
// here than crypto/ecdh and, unlike flynn/noise's default (crypto/ecdh
// through x/crypto/curve25519), does not compute a public key it throws
// away on every DH. The output is identical; the name stays "25519", so
// the protocol is unchanged.
type dh25519 struct{}

var _ noise.DHFunc = dh25519{}

var errLowOrder = errors.New("link: low-order X25519 point")

func (dh25519) GenerateKeypair(rng io.Reader) (noise.DHKey, error) {
	var priv, pub x25519.Key
	if _, err := io.ReadFull(rng, priv[:]); err != nil {
		return noise.DHKey{}, err
	}
	x25519.KeyGen(&pub, &priv)
	k := noise.DHKey{Private: append([]byte(nil), priv[:]...), Public: append([]byte(nil), pub[:]...)}
	clear(priv[:])
	return k, nil
}

// DH fails, as x/crypto/curve25519 does, for a peer key of low order (an
// all-zero shared secret). flynn/noise only ever passes 32-byte keys.
func (dh25519) DH(privkey, pubkey []byte) ([]byte, error) {
	var priv, pub, shared x25519.Key
	if len(privkey) != x25519.Size || len(pubkey) != x25519.Size {
		return nil, errLowOrder
	}
	copy(priv[:], privkey)
	copy(pub[:], pubkey)
	ok := x25519.Shared(&shared, &priv, &pub)
	clear(priv[:])
	if !ok || shared == (x25519.Key{}) {
		return nil, errLowOrder
	}
	return shared[:], nil
}

func (dh25519) DHLen() int     { return x25519.Size }
func (dh25519) DHName() string { return "25519" }
