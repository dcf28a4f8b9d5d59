// Package pkitest builds deterministic PKI fixtures for tests: keys derived
// from names, valid signed descriptors, and complete documents. The same
// name always gives the same keys, so fixtures can be rebuilt anywhere
// (another package's test, a golden file) and agree byte for byte.
//
// Never use it outside tests: every key it makes is public knowledge.
// Its functions panic on misuse, as test helpers do.
package pkitest
