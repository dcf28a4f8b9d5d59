// Package mixtest runs mix nodes in tests: the nodes of package mix, the
// pipelines providers are built on, and the providers themselves, in one
// test process (STYLE 17).
//
// Directory plays the directory authorities. It is the DocumentSource and
// Uploader of every node of a test: the test declares the nodes of the
// network (Expect), the running ones upload their descriptors, stand-ins
// with the deterministic keys of pki/pkitest are added with AddStatic, and
// the document of an epoch is made, signed and frozen once every declared
// node has a descriptor for it.
//
//	dir := mixtest.NewDirectory(1)
//	dir.Expect("provider-0", pki.ProviderLayer) // the node under test
//	dir.AddStatic("mix-0-0", 0, relayAddr, e-2, e+3)
//	p, err := provider.New(cfg, mix.Deps{Documents: dir, Uploader: dir, ...})
//	stop := mixtest.Run(t, p.Run, p.Close)
//
// Run runs a node by the contract of STYLE 6 (Run returns once everything
// it started has stopped; Close afterwards) until the test stops it or
// ends.
//
// The package does not import mix, so that mix's own tests can use it.
package mixtest
