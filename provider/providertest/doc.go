// Package providertest plays, for the tests of a provider, the rest of a
// network of one mix layer, over real links on loopback.
//
// Relay is the layer's one mix ("mix-0-0") and a second provider
// ("provider-1"), both with the deterministic keys of pki/pkitest. The
// provider under test sends its packets to the relay as it would to the
// mix; the relay removes the mix's layer, sends packets for the provider
// back to it over a node link, and unwraps the ones for provider-1 once
// more and records them. So a test sees every ACK and echo answer the
// moment it has left the provider:
//
//	r := providertest.StartRelay(t, geo, epoch)
//	// Put pkitest.NewNode(providertest.MixName, pki.RoleMix, e, "tcp://"+r.Addr())
//	// and pkitest.NewNode(providertest.OtherName, pki.RoleProvider, e, ...)
//	// in the documents the provider reads, and start it; then
//	r.SetProvider(addr, id, linkKey)
//	// ... the provider sends a message whose SURB leads to provider-1 ...
//	acks := r.Arrivals()
//
// The documents are the test's: a real authority the test uploads the
// relay's descriptors to, or a stand-in document source. The relay is no
// mix: it forwards at once, ignores the delays, and drops anything not
// for the provider or provider-1.
package providertest
