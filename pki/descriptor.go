package pki

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/chorus-mixnet/chorus/mix/keys"
)

// Limits on descriptor fields.
const (
	// MaxNameLength bounds a node's name, in bytes.
	MaxNameLength = 64
	// MaxAddresses bounds the number of addresses of one node.
	MaxAddresses = 4
	// MaxAddressLength bounds one address, in bytes.
	MaxAddressLength = 128
	// SphinxKeyEpochs is how many consecutive epochs of Sphinx keys a
	// descriptor for epoch E carries: E, E+1 and E+2.
	SphinxKeyEpochs = 3
	// MaxEpoch is the largest epoch a descriptor or document may name, so
	// that E+SphinxKeyEpochs-1 never overflows.
	MaxEpoch = math.MaxUint64 - (SphinxKeyEpochs - 1)
)

// NodeID names a node: BLAKE2b-256 of its identity public key (see
// keys.IdentityPublicKey.NodeID).
type NodeID = [32]byte

// Role is what a node does in the network.
type Role uint8

const (
	// RoleMix is a mix node in one layer.
	RoleMix Role = 1
	// RoleProvider is a provider: the first and last hop, with mailboxes.
	RoleProvider Role = 2
)

func (r Role) String() string {
	switch r {
	case RoleMix:
		return "mix"
	case RoleProvider:
		return "provider"
	}
	return "role(" + strconv.Itoa(int(r)) + ")"
}

// Descriptor is what a node publishes about itself for one epoch. A node
// signs it with its identity key (SignDescriptor) and uploads it to the
// authorities during the epoch before Epoch.
type Descriptor struct {
	// Name is a human-readable label: 1 to MaxNameLength bytes of
	// [A-Za-z0-9._-]. Names need not be unique; nodes are told apart by ID.
	Name string
	// ID must equal IdentityKey.NodeID().
	ID NodeID
	// IdentityKey signs the descriptor.
	IdentityKey keys.IdentityPublicKey
	// LinkKey is the node's static X25519 link key.
	LinkKey keys.LinkPublicKey
	Role    Role
	// Addresses are where the node accepts links, as "tcp://host:port"
	// ("tcp4" and "tcp6" are also accepted). Host is an IP address in its
	// canonical form or a lower-case DNS name. 1 to MaxAddresses of them.
	Addresses []string
	// Epoch is the epoch the descriptor is for.
	Epoch uint64
	// SphinxKeys holds the node's Sphinx public key for each of the epochs
	// Epoch, Epoch+1 and Epoch+2, and nothing else.
	SphinxKeys map[uint64]keys.SphinxPublicKey
}

// SphinxKey returns the node's Sphinx key for epoch.
func (d *Descriptor) SphinxKey(epoch uint64) (keys.SphinxPublicKey, bool) {
	k, ok := d.SphinxKeys[epoch]
	return k, ok
}

// Validate checks every field. The error wraps ErrInvalid.
func (d *Descriptor) Validate() error {
	if err := d.validate(); err != nil {
		return fmt.Errorf("pki: validate descriptor: %w", err)
	}
	return nil
}

func (d *Descriptor) validate() error {
	if err := validateName(d.Name); err != nil {
		return err
	}
	if d.IdentityKey.IsZero() {
		return invalidf("node %q: zero identity key", d.Name)
	}
	if d.ID != d.IdentityKey.NodeID() {
		return invalidf("node %q: id does not match the identity key", d.Name)
	}
	if d.LinkKey.IsZero() {
		return invalidf("node %q: zero link key", d.Name)
	}
	if d.Role != RoleMix && d.Role != RoleProvider {
		return invalidf("node %q: unknown %v", d.Name, d.Role)
	}
	if len(d.Addresses) == 0 || len(d.Addresses) > MaxAddresses {
		return invalidf("node %q: %d addresses, want 1 to %d", d.Name, len(d.Addresses), MaxAddresses)
	}
	seen := make(map[string]bool, len(d.Addresses))
	for i, a := range d.Addresses {
		ep, err := endpoint(a)
		if err != nil {
			return invalidf("node %q: address %d: %v", d.Name, i, err)
		}
		if seen[ep] {
			return invalidf("node %q: address %d: duplicate endpoint %s", d.Name, i, ep)
		}
		seen[ep] = true
	}
	if d.Epoch > MaxEpoch {
		return invalidf("node %q: epoch %d too large", d.Name, d.Epoch)
	}
	if len(d.SphinxKeys) != SphinxKeyEpochs {
		return invalidf("node %q: %d sphinx keys, want one for each of epochs %d to %d", d.Name, len(d.SphinxKeys), d.Epoch, d.Epoch+SphinxKeyEpochs-1)
	}
	var have []keys.SphinxPublicKey
	for e := d.Epoch; e < d.Epoch+SphinxKeyEpochs; e++ {
		k, ok := d.SphinxKeys[e]
		if !ok {
			return invalidf("node %q: no sphinx key for epoch %d", d.Name, e)
		}
		if k.IsZero() {
			return invalidf("node %q: zero sphinx key for epoch %d", d.Name, e)
		}
		if slices.ContainsFunc(have, k.Equal) {
			return invalidf("node %q: sphinx key for epoch %d reused from an earlier epoch", d.Name, e)
		}
		have = append(have, k)
	}
	return nil
}

func validateName(name string) error {
	if len(name) == 0 || len(name) > MaxNameLength {
		return invalidf("name of %d bytes, want 1 to %d", len(name), MaxNameLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return invalidf("name %q: character %d not in [A-Za-z0-9._-]", name, i)
		}
	}
	return nil
}

// endpoint validates an address and returns its "host:port" part, which
// identifies the endpoint whatever the scheme.
func endpoint(addr string) (string, error) {
	if len(addr) > MaxAddressLength {
		return "", fmt.Errorf("%d bytes, limit %d", len(addr), MaxAddressLength)
	}
	scheme, hostport, ok := strings.Cut(addr, "://")
	if !ok {
		return "", fmt.Errorf("%q: want scheme://host:port", addr)
	}
	switch scheme {
	case "tcp", "tcp4", "tcp6":
	default:
		return "", fmt.Errorf("%q: unsupported scheme %q", addr, scheme)
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("%q: want scheme://host:port", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || strconv.FormatUint(n, 10) != port {
		return "", fmt.Errorf("%q: bad port", addr)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" || ip.String() != host || ip.Is4In6() {
			return "", fmt.Errorf("%q: ip address not in canonical form", addr)
		}
		if ip.Is6() != strings.HasPrefix(hostport, "[") {
			return "", fmt.Errorf("%q: bad ip address syntax", addr)
		}
	} else if !validHostname(host) {
		return "", fmt.Errorf("%q: bad host name", addr)
	}
	return hostport, nil
}

// validHostname accepts lower-case DNS names: dot-separated labels of
// [a-z0-9-], not starting or ending with '-'.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// wireDescriptor is the encoded form of a Descriptor.
type wireDescriptor struct {
	Name        string            `cbor:"1,keyasint"`
	ID          []byte            `cbor:"2,keyasint"`
	IdentityKey []byte            `cbor:"3,keyasint"`
	LinkKey     []byte            `cbor:"4,keyasint"`
	Role        uint8             `cbor:"5,keyasint"`
	Addresses   []string          `cbor:"6,keyasint"`
	Epoch       uint64            `cbor:"7,keyasint"`
	SphinxKeys  map[uint64][]byte `cbor:"8,keyasint"`
}

func (d *Descriptor) toWire() wireDescriptor {
	w := wireDescriptor{
		Name:        d.Name,
		ID:          clone(d.ID[:]),
		IdentityKey: d.IdentityKey.Bytes(),
		LinkKey:     d.LinkKey.Bytes(),
		Role:        uint8(d.Role),
		Addresses:   slices.Clone(d.Addresses),
		Epoch:       d.Epoch,
		SphinxKeys:  make(map[uint64][]byte, len(d.SphinxKeys)),
	}
	for e, k := range d.SphinxKeys {
		w.SphinxKeys[e] = k.Bytes()
	}
	return w
}

// fromWire converts and validates a decoded descriptor.
func (w *wireDescriptor) fromWire() (*Descriptor, error) {
	d := &Descriptor{
		Name:       w.Name,
		Role:       Role(w.Role),
		Addresses:  slices.Clone(w.Addresses),
		Epoch:      w.Epoch,
		SphinxKeys: make(map[uint64]keys.SphinxPublicKey, len(w.SphinxKeys)),
	}
	if len(w.ID) != len(d.ID) {
		return nil, malformedf("node id of %d bytes", len(w.ID))
	}
	copy(d.ID[:], w.ID)
	var err error
	if d.IdentityKey, err = keys.NewIdentityPublicKey(w.IdentityKey); err != nil {
		return nil, malformedf("identity key: %v", err)
	}
	if d.LinkKey, err = keys.NewLinkPublicKey(w.LinkKey); err != nil {
		return nil, malformedf("link key: %v", err)
	}
	for e, b := range w.SphinxKeys {
		if d.SphinxKeys[e], err = keys.NewSphinxPublicKey(b); err != nil {
			return nil, malformedf("sphinx key for epoch %d: %v", e, err)
		}
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// MarshalBinary returns the canonical encoding of a valid descriptor: the
// bytes a node signs.
func (d *Descriptor) MarshalBinary() ([]byte, error) {
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("pki: encode descriptor: %w", err)
	}
	w := d.toWire()
	b, err := encode(&w)
	if err != nil {
		return nil, fmt.Errorf("pki: encode descriptor: %w", err)
	}
	return b, nil
}

// UnmarshalDescriptor decodes and validates the canonical encoding of a
// descriptor. It checks no signature: for bytes from the network use
// VerifyDescriptor.
func UnmarshalDescriptor(b []byte) (*Descriptor, error) {
	d, err := unmarshalDescriptor(b)
	if err != nil {
		return nil, fmt.Errorf("pki: decode descriptor: %w", err)
	}
	return d, nil
}

func unmarshalDescriptor(b []byte) (*Descriptor, error) {
	var w wireDescriptor
	if err := decodeCanonical(b, MaxDescriptorSize, &w); err != nil {
		return nil, err
	}
	return w.fromWire()
}

// SignedDescriptor is a descriptor as a node uploads it: the exact signed
// bytes (the canonical encoding of a Descriptor) and the node's signature.
type SignedDescriptor struct {
	Body      []byte
	Signature []byte
}

// SignDescriptor validates d and signs it with s, which must hold d's
// identity key.
func SignDescriptor(s Signer, d *Descriptor) (*SignedDescriptor, error) {
	if !s.Public().Equal(d.IdentityKey) {
		return nil, fmt.Errorf("pki: sign descriptor: %w: signer is not the descriptor's identity key", ErrInvalid)
	}
	body, err := d.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &SignedDescriptor{Body: body, Signature: sign(s, contextDescriptor, body)}, nil
}

// MarshalBinary encodes the signed descriptor for upload.
func (sd *SignedDescriptor) MarshalBinary() ([]byte, error) {
	e := envelope{Body: sd.Body, Signature: sd.Signature}
	if err := e.check(); err != nil {
		return nil, fmt.Errorf("pki: encode signed descriptor: %w", err)
	}
	b, err := encode(&e)
	if err == nil && len(b) > MaxDescriptorSize {
		err = malformedf("%d bytes, limit %d", len(b), MaxDescriptorSize)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: encode signed descriptor: %w", err)
	}
	return b, nil
}

// UnmarshalSignedDescriptor decodes the envelope of a signed descriptor
// without checking the signature or the body; see Verify.
func UnmarshalSignedDescriptor(b []byte) (*SignedDescriptor, error) {
	e, err := decodeEnvelope(b, MaxDescriptorSize)
	if err != nil {
		return nil, fmt.Errorf("pki: decode signed descriptor: %w", err)
	}
	return &SignedDescriptor{Body: clone(e.Body), Signature: clone(e.Signature)}, nil
}

// Verify decodes and validates the body and checks that the signature was
// made by the identity key the body names.
func (sd *SignedDescriptor) Verify() (*Descriptor, error) {
	d, err := sd.verify()
	if err != nil {
		return nil, fmt.Errorf("pki: verify descriptor: %w", err)
	}
	return d, nil
}

// VerifyDescriptor decodes an uploaded signed descriptor and verifies it.
// The caller still checks that d.Epoch is an epoch it accepts uploads for
// (ErrWrongEpoch) and that the role fits.
func VerifyDescriptor(raw []byte) (*Descriptor, error) {
	sd, err := UnmarshalSignedDescriptor(raw)
	if err != nil {
		return nil, err
	}
	return sd.Verify()
}
