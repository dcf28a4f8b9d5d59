package pki

import (
	"fmt"
	"math"
	"time"

	"github.com/chorus-mixnet/chorus/mix/keys"
)

// Limits on document fields.
const (
	// MaxLayers bounds the number of mix layers.
	MaxLayers = 8
	// MaxNodes bounds the number of nodes (mixes and providers) in a
	// document, and of descriptors in a vote.
	MaxNodes = 2048
	// MaxUserPayloadLength bounds Geometry.UserPayloadLength.
	MaxUserPayloadLength = 1 << 20
	// MinInterval and MaxInterval bound every duration in Parameters.
	MinInterval = time.Microsecond
	MaxInterval = 24 * time.Hour
)

// ProviderLayer is the layer Document.Layer reports for a provider.
const ProviderLayer = -1

// Geometry is the Sphinx packet geometry of an epoch, as plain numbers.
// Consumers build the mix/sphinx geometry from it; this package does not
// depend on the packet format.
type Geometry struct {
	// Hops is the number of Sphinx hops of a path: the sender's provider,
	// one mix per layer, and the recipient's provider, so a document
	// requires Hops == len(Layers)+2.
	Hops int
	// UserPayloadLength is the bytes of user payload in each packet.
	UserPayloadLength int
	// WithSURB reports whether the payload also has room for one SURB.
	WithSURB bool
}

// Validate checks the bounds of g. The error wraps ErrInvalid.
func (g Geometry) Validate() error {
	if err := g.validate(); err != nil {
		return fmt.Errorf("pki: validate geometry: %w", err)
	}
	return nil
}

func (g Geometry) validate() error {
	if g.Hops < 3 || g.Hops > MaxLayers+2 {
		return invalidf("geometry: %d hops, want 3 to %d", g.Hops, MaxLayers+2)
	}
	if g.UserPayloadLength < 1 || g.UserPayloadLength > MaxUserPayloadLength {
		return invalidf("geometry: user payload of %d bytes, want 1 to %d", g.UserPayloadLength, MaxUserPayloadLength)
	}
	return nil
}

// Parameters are the traffic parameters of an epoch. Every Poisson process
// is given by its MEAN INTERVAL, not its rate: a process with rate λ per
// second has mean interval 1s/λ, and an exponential sample is
// rand.ExpFloat64() * float64(mean). Durations keep the encoding to exact
// integers (nanoseconds) and read naturally in configs ("50ms").
type Parameters struct {
	// MuMean is 1/μ: the mean per-hop delay a sender draws for each hop
	// from the exponential distribution.
	MuMean time.Duration
	// MaxDelay caps each drawn per-hop delay; nodes drop packets asking for
	// longer. At least MuMean.
	MaxDelay time.Duration
	// LambdaPMean is 1/λP: a client's mean interval between sends, each a
	// queued real packet or else a drop decoy.
	LambdaPMean time.Duration
	// LambdaLMean is 1/λL: a client's mean interval between loop packets.
	LambdaLMean time.Duration
	// LambdaDMean is 1/λD: a client's mean interval between drop packets.
	LambdaDMean time.Duration
	// LambdaMMean is 1/λM: a mix's or provider's mean interval between its
	// own loop packets.
	LambdaMMean time.Duration
	// RetrievalInterval is the constant interval at which a client asks
	// its provider for the next mailbox message.
	RetrievalInterval time.Duration
}

// Validate checks the bounds of p. The error wraps ErrInvalid.
func (p Parameters) Validate() error {
	if err := p.validate(); err != nil {
		return fmt.Errorf("pki: validate parameters: %w", err)
	}
	return nil
}

func (p Parameters) validate() error {
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"mu mean", p.MuMean},
		{"max delay", p.MaxDelay},
		{"lambda p mean", p.LambdaPMean},
		{"lambda l mean", p.LambdaLMean},
		{"lambda d mean", p.LambdaDMean},
		{"lambda m mean", p.LambdaMMean},
		{"retrieval interval", p.RetrievalInterval},
	} {
		if f.d < MinInterval || f.d > MaxInterval {
			return invalidf("parameters: %s %v, want %v to %v", f.name, f.d, MinInterval, MaxInterval)
		}
	}
	if p.MaxDelay < p.MuMean {
		return invalidf("parameters: max delay %v below mu mean %v", p.MaxDelay, p.MuMean)
	}
	return nil
}

// Document is the network consensus for one epoch: who is in the network,
// in which layer, with which keys, and how to send traffic. The authorities
// compute it (pki/consensus) and sign it; nodes and clients use it only
// after VerifyDocument.
type Document struct {
	Epoch      uint64
	Geometry   Geometry
	Parameters Parameters
	// Layers holds the mixes, layer by layer. A packet goes from a provider
	// to layer 0, from layer i to layer i+1, and from the last layer to a
	// provider. Every layer has at least one mix.
	Layers [][]*Descriptor
	// Providers holds the providers; at least one.
	Providers []*Descriptor
	// SharedRandom is the epoch's shared random value from the authorities'
	// commit–reveal round; it seeded the placement of new nodes.
	SharedRandom [32]byte
}

// Validate checks every field of d and of every descriptor in it: sizes,
// geometry and parameters, roles, that each descriptor is for d.Epoch (and
// so carries Sphinx keys for d.Epoch to d.Epoch+2), and that no two nodes
// share an ID, a link key or an endpoint. The error wraps ErrInvalid.
func (d *Document) Validate() error {
	if err := d.validate(); err != nil {
		return fmt.Errorf("pki: validate document: %w", err)
	}
	return nil
}

func (d *Document) validate() error {
	if d.Epoch > MaxEpoch {
		return invalidf("epoch %d too large", d.Epoch)
	}
	if err := d.Geometry.validate(); err != nil {
		return err
	}
	if err := d.Parameters.validate(); err != nil {
		return err
	}
	if len(d.Layers) < 1 || len(d.Layers) > MaxLayers {
		return invalidf("%d layers, want 1 to %d", len(d.Layers), MaxLayers)
	}
	if d.Geometry.Hops != len(d.Layers)+2 {
		return invalidf("geometry: %d hops for %d layers, want %d", d.Geometry.Hops, len(d.Layers), len(d.Layers)+2)
	}
	if len(d.Providers) == 0 {
		return invalidf("no providers")
	}
	n := len(d.Providers)
	for i, l := range d.Layers {
		if len(l) == 0 {
			return invalidf("layer %d is empty", i)
		}
		n += len(l)
	}
	if n > MaxNodes {
		return invalidf("%d nodes, limit %d", n, MaxNodes)
	}
	u := newUniqueness(n)
	check := func(where string, desc *Descriptor, role Role) error {
		if desc == nil {
			return invalidf("%s: missing descriptor", where)
		}
		if err := desc.validate(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if desc.Role != role {
			return invalidf("%s: node %q is a %v", where, desc.Name, desc.Role)
		}
		if desc.Epoch != d.Epoch {
			return invalidf("%s: node %q: descriptor for epoch %d in the document for epoch %d", where, desc.Name, desc.Epoch, d.Epoch)
		}
		if err := u.add(desc); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		return nil
	}
	for i, l := range d.Layers {
		for _, desc := range l {
			if err := check(fmt.Sprintf("layer %d", i), desc, RoleMix); err != nil {
				return err
			}
		}
	}
	for _, desc := range d.Providers {
		if err := check("providers", desc, RoleProvider); err != nil {
			return err
		}
	}
	return nil
}

// uniqueness detects two nodes sharing an ID, a link key or an endpoint.
type uniqueness struct {
	ids       map[NodeID]string
	links     map[[keys.PublicKeySize]byte]string
	endpoints map[string]string
}

func newUniqueness(n int) *uniqueness {
	return &uniqueness{
		ids:       make(map[NodeID]string, n),
		links:     make(map[[keys.PublicKeySize]byte]string, n),
		endpoints: make(map[string]string, n),
	}
}

func (u *uniqueness) add(d *Descriptor) error {
	if other, ok := u.ids[d.ID]; ok {
		return invalidf("node %q: duplicate id (also node %q)", d.Name, other)
	}
	lk := d.LinkKey.Array()
	if other, ok := u.links[lk]; ok {
		return invalidf("node %q: duplicate link key (also node %q)", d.Name, other)
	}
	eps := make([]string, 0, len(d.Addresses))
	for _, a := range d.Addresses {
		ep, _ := endpoint(a) // validated by the caller
		if other, ok := u.endpoints[ep]; ok {
			return invalidf("node %q: duplicate address %s (also node %q)", d.Name, ep, other)
		}
		eps = append(eps, ep)
	}
	u.ids[d.ID] = d.Name
	u.links[lk] = d.Name
	for _, ep := range eps {
		u.endpoints[ep] = d.Name
	}
	return nil
}

// Node returns the node with the given ID.
func (d *Document) Node(id NodeID) (*Descriptor, bool) {
	desc, _, ok := d.find(func(x *Descriptor) bool { return x.ID == id })
	return desc, ok
}

// NodeByLinkKey returns the node with the given link key: how a node learns
// who is at the other end of an authenticated link.
func (d *Document) NodeByLinkKey(k keys.LinkPublicKey) (*Descriptor, bool) {
	desc, _, ok := d.find(func(x *Descriptor) bool { return x.LinkKey.Equal(k) })
	return desc, ok
}

// Layer returns the layer of the node with the given ID: 0 to
// len(Layers)-1 for a mix, ProviderLayer for a provider.
func (d *Document) Layer(id NodeID) (int, bool) {
	_, layer, ok := d.find(func(x *Descriptor) bool { return x.ID == id })
	return layer, ok
}

func (d *Document) find(match func(*Descriptor) bool) (*Descriptor, int, bool) {
	for i, l := range d.Layers {
		for _, x := range l {
			if x != nil && match(x) {
				return x, i, true
			}
		}
	}
	for _, x := range d.Providers {
		if x != nil && match(x) {
			return x, ProviderLayer, true
		}
	}
	return nil, 0, false
}

// LayerAssignment returns the node IDs of each layer, in document order:
// what an authority puts in its next vote as Vote.PriorLayers.
func (d *Document) LayerAssignment() [][]NodeID {
	out := make([][]NodeID, len(d.Layers))
	for i, l := range d.Layers {
		out[i] = make([]NodeID, 0, len(l))
		for _, x := range l {
			if x != nil {
				out[i] = append(out[i], x.ID)
			}
		}
	}
	return out
}

// MaySendTo reports whether a node in layer from may send packets to a node
// in layer to: provider → layer 0 → … → last layer → provider. Layers are
// as returned by Layer.
func (d *Document) MaySendTo(from, to int) bool {
	last := len(d.Layers) - 1
	switch {
	case last < 0:
		return false
	case from == ProviderLayer:
		return to == 0
	case from == last:
		return to == ProviderLayer
	case from >= 0 && from < last:
		return to == from+1
	}
	return false
}

// MaySend reports whether node from may send packets to node to; false if
// either is not in the document.
func (d *Document) MaySend(from, to NodeID) bool {
	lf, ok1 := d.Layer(from)
	lt, ok2 := d.Layer(to)
	return ok1 && ok2 && d.MaySendTo(lf, lt)
}

// wireGeometry, wireParameters and wireDocument are the encoded forms.
type wireGeometry struct {
	Hops              uint64 `cbor:"1,keyasint"`
	UserPayloadLength uint64 `cbor:"2,keyasint"`
	WithSURB          bool   `cbor:"3,keyasint"`
}

// wireParameters holds every duration as unsigned nanoseconds.
type wireParameters struct {
	MuMean            uint64 `cbor:"1,keyasint"`
	MaxDelay          uint64 `cbor:"2,keyasint"`
	LambdaPMean       uint64 `cbor:"3,keyasint"`
	LambdaLMean       uint64 `cbor:"4,keyasint"`
	LambdaDMean       uint64 `cbor:"5,keyasint"`
	LambdaMMean       uint64 `cbor:"6,keyasint"`
	RetrievalInterval uint64 `cbor:"7,keyasint"`
}

type wireDocument struct {
	Epoch        uint64             `cbor:"1,keyasint"`
	Geometry     wireGeometry       `cbor:"2,keyasint"`
	Parameters   wireParameters     `cbor:"3,keyasint"`
	Layers       [][]wireDescriptor `cbor:"4,keyasint"`
	Providers    []wireDescriptor   `cbor:"5,keyasint"`
	SharedRandom []byte             `cbor:"6,keyasint"`
}

// toWire converts validated values; negative numbers cannot occur.
func (g Geometry) toWire() wireGeometry {
	return wireGeometry{Hops: uint64(g.Hops), UserPayloadLength: uint64(g.UserPayloadLength), WithSURB: g.WithSURB}
}

func (w wireGeometry) fromWire() (Geometry, error) {
	if w.Hops > math.MaxInt32 || w.UserPayloadLength > math.MaxInt32 {
		return Geometry{}, invalidf("geometry: out of range")
	}
	g := Geometry{Hops: int(w.Hops), UserPayloadLength: int(w.UserPayloadLength), WithSURB: w.WithSURB}
	return g, g.validate()
}

func (p Parameters) toWire() wireParameters {
	return wireParameters{
		MuMean:            uint64(p.MuMean),
		MaxDelay:          uint64(p.MaxDelay),
		LambdaPMean:       uint64(p.LambdaPMean),
		LambdaLMean:       uint64(p.LambdaLMean),
		LambdaDMean:       uint64(p.LambdaDMean),
		LambdaMMean:       uint64(p.LambdaMMean),
		RetrievalInterval: uint64(p.RetrievalInterval),
	}
}

func (w wireParameters) fromWire() (Parameters, error) {
	for _, v := range []uint64{w.MuMean, w.MaxDelay, w.LambdaPMean, w.LambdaLMean, w.LambdaDMean, w.LambdaMMean, w.RetrievalInterval} {
		if v > uint64(MaxInterval) {
			return Parameters{}, invalidf("parameters: duration of %dns above %v", v, MaxInterval)
		}
	}
	p := Parameters{
		MuMean:            time.Duration(w.MuMean),
		MaxDelay:          time.Duration(w.MaxDelay),
		LambdaPMean:       time.Duration(w.LambdaPMean),
		LambdaLMean:       time.Duration(w.LambdaLMean),
		LambdaDMean:       time.Duration(w.LambdaDMean),
		LambdaMMean:       time.Duration(w.LambdaMMean),
		RetrievalInterval: time.Duration(w.RetrievalInterval),
	}
	return p, p.validate()
}

func (d *Document) toWire() wireDocument {
	w := wireDocument{
		Epoch:        d.Epoch,
		Geometry:     d.Geometry.toWire(),
		Parameters:   d.Parameters.toWire(),
		Layers:       make([][]wireDescriptor, len(d.Layers)),
		Providers:    make([]wireDescriptor, len(d.Providers)),
		SharedRandom: clone(d.SharedRandom[:]),
	}
	for i, l := range d.Layers {
		w.Layers[i] = make([]wireDescriptor, len(l))
		for j, desc := range l {
			w.Layers[i][j] = desc.toWire()
		}
	}
	for i, desc := range d.Providers {
		w.Providers[i] = desc.toWire()
	}
	return w
}

func (w *wireDocument) fromWire() (*Document, error) {
	d := &Document{Epoch: w.Epoch}
	var err error
	if d.Geometry, err = w.Geometry.fromWire(); err != nil {
		return nil, err
	}
	if d.Parameters, err = w.Parameters.fromWire(); err != nil {
		return nil, err
	}
	if len(w.SharedRandom) != len(d.SharedRandom) {
		return nil, malformedf("shared random value of %d bytes", len(w.SharedRandom))
	}
	copy(d.SharedRandom[:], w.SharedRandom)
	if len(w.Layers) > MaxLayers {
		return nil, invalidf("%d layers, want 1 to %d", len(w.Layers), MaxLayers)
	}
	d.Layers = make([][]*Descriptor, len(w.Layers))
	for i := range w.Layers {
		d.Layers[i] = make([]*Descriptor, len(w.Layers[i]))
		for j := range w.Layers[i] {
			if d.Layers[i][j], err = w.Layers[i][j].fromWire(); err != nil {
				return nil, fmt.Errorf("layer %d: %w", i, err)
			}
		}
	}
	d.Providers = make([]*Descriptor, len(w.Providers))
	for i := range w.Providers {
		if d.Providers[i], err = w.Providers[i].fromWire(); err != nil {
			return nil, fmt.Errorf("providers: %w", err)
		}
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// MarshalBinary validates d and returns its canonical encoding: the bytes
// the authorities sign.
func (d *Document) MarshalBinary() ([]byte, error) {
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("pki: encode document: %w", err)
	}
	w := d.toWire()
	b, err := encode(&w)
	if err == nil && len(b) > MaxDocumentSize {
		err = malformedf("%d bytes, limit %d", len(b), MaxDocumentSize)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: encode document: %w", err)
	}
	return b, nil
}

// UnmarshalDocument decodes and validates the canonical encoding of a
// document. It checks no signature: for bytes from the network use
// VerifyDocument.
func UnmarshalDocument(b []byte) (*Document, error) {
	d, err := unmarshalDocument(b)
	if err != nil {
		return nil, fmt.Errorf("pki: decode document: %w", err)
	}
	return d, nil
}

func unmarshalDocument(b []byte) (*Document, error) {
	var w wireDocument
	if err := decodeCanonical(b, MaxDocumentSize, &w); err != nil {
		return nil, err
	}
	return w.fromWire()
}
