package pkitest

import (
	"fmt"
	"time"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"golang.org/x/crypto/blake2b"
)

func seed(kind, name string, epoch uint64) []byte {
	h := blake2b.Sum256(fmt.Appendf(nil, "chorus-pkitest\x00%s\x00%s\x00%d", kind, name, epoch))
	return h[:]
}

// Identity returns the identity key named name.
func Identity(name string) *keys.IdentityPrivateKey {
	k, err := keys.NewIdentityPrivateKey(seed("identity", name, 0))
	if err != nil {
		panic(err)
	}
	return k
}

// Link returns the link key of the node named name.
func Link(name string) *keys.LinkPrivateKey {
	k, err := keys.NewLinkPrivateKey(seed("link", name, 0))
	if err != nil {
		panic(err)
	}
	return k
}

// Sphinx returns the Sphinx key of the node named name for epoch.
func Sphinx(name string, epoch uint64) *keys.SphinxPrivateKey {
	k, err := keys.NewSphinxPrivateKey(seed("sphinx", name, epoch))
	if err != nil {
		panic(err)
	}
	return k
}

// Node is a test node: its private keys and its signed descriptor.
type Node struct {
	Identity   *keys.IdentityPrivateKey
	Link       *keys.LinkPrivateKey
	Descriptor *pki.Descriptor
	Signed     *pki.SignedDescriptor
	// Raw is Signed encoded, as a node uploads it.
	Raw []byte
}

// NewNode makes the node named name with the given role and address, with
// a descriptor for epoch signed by its identity key.
func NewNode(name string, role pki.Role, epoch uint64, addr string) *Node {
	n := &Node{Identity: Identity(name), Link: Link(name)}
	d := &pki.Descriptor{
		Name:        name,
		ID:          n.Identity.Public().NodeID(),
		IdentityKey: n.Identity.Public(),
		LinkKey:     n.Link.Public(),
		Role:        role,
		Addresses:   []string{addr},
		Epoch:       epoch,
		SphinxKeys:  map[uint64]keys.SphinxPublicKey{},
	}
	for e := epoch; e < epoch+pki.SphinxKeyEpochs; e++ {
		d.SphinxKeys[e] = Sphinx(name, e).Public()
	}
	n.Descriptor = d
	n.Resign()
	return n
}

// Resign signs Descriptor again after a test changed it.
func (n *Node) Resign() {
	sd, err := pki.SignDescriptor(n.Identity, n.Descriptor)
	if err != nil {
		panic(err)
	}
	raw, err := sd.MarshalBinary()
	if err != nil {
		panic(err)
	}
	n.Signed, n.Raw = sd, raw
}

// Geometry is the default geometry for a network of the given number of
// layers: 2000 bytes of payload with room for a SURB.
func Geometry(layers int) pki.Geometry {
	return pki.Geometry{Hops: layers + 2, UserPayloadLength: 2000, WithSURB: true}
}

// Parameters are traffic parameters fit for fast tests.
func Parameters() pki.Parameters {
	return pki.Parameters{
		MuMean:            5 * time.Millisecond,
		MaxDelay:          100 * time.Millisecond,
		LambdaPMean:       20 * time.Millisecond,
		LambdaLMean:       200 * time.Millisecond,
		LambdaDMean:       200 * time.Millisecond,
		LambdaMMean:       200 * time.Millisecond,
		RetrievalInterval: 50 * time.Millisecond,
	}
}

// Network makes a valid document for epoch with the given number of
// layers, mixes per layer and providers, and returns it with its nodes
// (mixes layer by layer, then providers). Mixes are named "mix-L-I",
// providers "provider-I"; node k listens on 127.0.0.1 port 30000+k.
func Network(epoch uint64, layers, mixesPerLayer, providers int) (*pki.Document, []*Node) {
	doc := &pki.Document{
		Epoch:      epoch,
		Geometry:   Geometry(layers),
		Parameters: Parameters(),
		Layers:     make([][]*pki.Descriptor, layers),
	}
	copy(doc.SharedRandom[:], seed("shared-random", "", epoch))
	var nodes []*Node
	add := func(name string, role pki.Role) *pki.Descriptor {
		n := NewNode(name, role, epoch, fmt.Sprintf("tcp://127.0.0.1:%d", 30000+len(nodes)))
		nodes = append(nodes, n)
		return n.Descriptor
	}
	for l := range layers {
		for i := range mixesPerLayer {
			doc.Layers[l] = append(doc.Layers[l], add(fmt.Sprintf("mix-%d-%d", l, i), pki.RoleMix))
		}
	}
	for i := range providers {
		doc.Providers = append(doc.Providers, add(fmt.Sprintf("provider-%d", i), pki.RoleProvider))
	}
	if err := doc.Validate(); err != nil {
		panic(err)
	}
	return doc, nodes
}

// Sign encodes doc and signs it with each of signers.
func Sign(doc *pki.Document, signers ...pki.Signer) *pki.SignedDocument {
	sd, err := pki.NewSignedDocument(doc)
	if err != nil {
		panic(err)
	}
	for _, s := range signers {
		sd.Sign(s)
	}
	return sd
}
