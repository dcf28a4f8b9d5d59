// Package aez implements AEZ v5, the wide-block tweakable cipher and
// authenticated-encryption scheme of Hoang, Krovetz and Rogaway ("AEZ v5:
// Authenticated Encryption by Enciphering", 2017).
//
// # What it is
//
// AEZ enciphers a string of any length under a key and a tweak made of the
// nonce, a vector of associated-data strings and the tag length tau: the
// ciphertext is Encipher(K, (tau, N, A), M ‖ 0^tau), a length-preserving
// permutation of M ‖ 0^tau in which every output bit depends on every input
// bit. Decryption deciphers and accepts only if the last tau bytes are zero.
// Inside, AEZ-hash turns the tweak into a block Δ, AEZ-core enciphers inputs
// of 32 bytes or more with two passes of reduced-round AES (AES4), AEZ-tiny
// enciphers shorter inputs with a Feistel network, and AEZ-prf produces the
// tag alone for an empty message. The code follows the pseudocode of the
// specification's §1.5 and reproduces the reference implementation's test
// vectors (../shared/vectors/aez) on both round-function paths.
//
// The package has two entry points, Encrypt and Decrypt. Keys of 48 bytes are
// used directly as I‖J‖L; keys of any other length are first hashed with
// BLAKE2b-384, as the specification's Extract prescribes. Nonces and
// associated-data elements may have any length; the AD is a vector, so
// ("ab") and ("a", "b") are different tweaks.
//
// # Why Sphinx uses it
//
// Sphinx encrypts each hop's share of the payload with AEZ under the
// per-hop key and IV from the hop's KDF, with tau = 0 and no associated
// data: AEZ is used as a strong pseudorandom permutation (SPRP) over the
// whole payload, not as an AEAD. Because it is a wide-block cipher, a mix
// that flips or replaces payload bits turns the entire payload into noise
// at every later layer rather than a predictable change, which defeats
// tagging attacks; integrity comes from the redundancy Sphinx adds (the
// leading zero bytes checked at the last hop), which AEZ turns into
// authenticity exactly as a tag would. This matches Katzenpost's Sphinx,
// whose vectors Chorus must reproduce.
//
// # Security notes
//
//   - With tau = 0 nothing is authenticated by this package: every
//     ciphertext deciphers to something. Callers must check their own
//     redundancy, in constant time.
//   - With tau > 0 forgeries succeed with probability about 2^(-8·tau).
//     Nonce reuse reveals only whether two (tweak, message) pairs are equal
//     (misuse resistance), but a nonce should still not repeat.
//   - AEZ's security is heuristic in its use of AES4 and holds up to the
//     birthday bound; the designers cap use at 2^44 blocks (2^48 bytes)
//     per key. Sphinx derives a fresh key for every packet and hop, far
//     below the cap.
//   - Decrypt compares the tag in constant time. It deciphers into dst
//     before it knows whether the tag verifies and clears what it wrote when
//     it does not; no unverified plaintext is returned.
//   - The extracted key, the derived multiples of L, the running powers of
//     I and the intermediate blocks are wiped before each call returns.
//   - On amd64 with AES-NI, the rounds run in constant time in assembly
//     (aes_amd64.s). Elsewhere, or with the purego build tag, a portable
//     table-driven round is used; its memory accesses depend on secret data,
//     so it is exposed to cache-timing attacks by code sharing the CPU.
//     Chorus nodes are expected to run on CPUs with AES instructions.
package aez
