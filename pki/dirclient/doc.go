// Package dirclient is how mix nodes and providers talk to the directory
// authorities (DESIGN §5.3): it fetches the consensus document for an epoch
// and uploads the node's own signed descriptor.
//
// Fetching: Client.Current returns the documents for the current and the
// next epoch of a pki/epoch schedule; Client.Document, which it uses, asks the configured authorities one at a time,
// in a random order, for GET /v1/document/{epoch}, and accepts the first
// answer that pki.VerifyDocument accepts: the identical document bytes
// signed by at least Threshold of the configured authorities (a majority by
// default). Nothing else about an authority's answer is trusted, so any
// authority (or anybody on the path: the transport is plain HTTP) can at
// worst withhold a document, never forge one. Verified documents are kept
// in memory and, if Config.CacheDir is set, in files there, which are
// verified again when read back after a restart.
//
// Uploading: Client.Upload posts a node's signed descriptor to every
// authority at once and reports each authority's failure in an
// *UploadError; the node is in the next consensus if a majority of the
// authorities accepted it, so callers usually retry the failures and carry
// on when UploadError.Accepted reaches the threshold.
//
// Clients (chorusd) never use this package: they get the document from
// their provider over the link, and verify it the same way.
package dirclient
