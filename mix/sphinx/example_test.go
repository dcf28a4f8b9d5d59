package sphinx_test

import (
	"crypto/rand"
	"fmt"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/sphinx"
)

func Example() {
	geo := sphinx.DefaultGeometry()

	// Three nodes and their Sphinx keys.
	var nodeKeys []*keys.SphinxPrivateKey
	var path []sphinx.PathHop
	for i := range 3 {
		k, err := keys.GenerateSphinxKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		nodeKeys = append(nodeKeys, k)
		hop := sphinx.PathHop{ID: [32]byte{byte(i + 1)}, PublicKey: k.Public()}
		if i < 2 {
			hop.Commands = []sphinx.Command{sphinx.NodeDelay{Delay: 250}}
		} else {
			hop.Commands = []sphinx.Command{sphinx.Recipient{ID: [32]byte{'b', 'o', 'b'}}}
		}
		path = append(path, hop)
	}

	pkt, err := sphinx.NewPacket(rand.Reader, geo, path, []byte("hello"))
	if err != nil {
		panic(err)
	}
	fmt.Println("packet bytes:", len(pkt))

	// Each hop unwraps in place with its own key.
	var res sphinx.Result
	for i, k := range nodeKeys {
		if err := sphinx.UnwrapInto(geo, k, pkt, &res); err != nil {
			panic(err) // a real hop drops the packet and counts it
		}
		switch res.Action {
		case sphinx.Forward:
			fmt.Printf("hop %d: forward to node %d after %v\n", i, res.NextHop[0], res.Delay)
		case sphinx.Deliver:
			fmt.Printf("hop %d: deliver %q to %s\n", i, res.Payload[:5], res.Recipient[:3])
		}
	}
	// Output:
	// packet bytes: 3082
	// hop 0: forward to node 2 after 250ms
	// hop 1: forward to node 3 after 250ms
	// hop 2: deliver "hello" to bob
}
