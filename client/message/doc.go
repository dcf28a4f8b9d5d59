// Package message is Chorus's end-to-end message format (DESIGN §5.6):
// contact cards, fragments that fit one Sphinx payload, HPKE sealing that
// tells the recipient which contact wrote, and reassembly. It is pure: no
// I/O, no goroutines, no clock. The daemon keeps everything durable in
// client/store.
//
// # Using it
//
// A user's identity for messaging is a PrivateKey (GenerateKey) and the
// Card that carries its public half with the user's provider and mailbox.
// Cards travel between people as strings (Card.Encode, ParseCard).
//
// To send, the sender computes the space a fragment has in the Sphinx user
// payload (sealedLength: the geometry's UserPayloadLength less whatever the
// client reserves for itself), then
//
//	frags, err := message.Split(rand, msg, message.FragmentCapacity(sealedLength), maxSize)
//	for _, f := range frags {
//		sealed, err := message.Seal(rand, myKey, recipientCard.Key, f, sealedLength)
//		// queue sealed in the outbox
//	}
//
// To receive, the recipient opens each payload against its contacts' keys
// and feeds what opens to a Reassembler:
//
//	who, f, err := message.Open(myKey, contactKeys, payload)   // ErrUnknownSender: count, drop
//	m, err := reassembler.Add(contactKeys[who], f)             // m != nil: a whole message
//
// # Security properties
//
// Content: each fragment is sealed with HPKE (RFC 9180) in auth mode, suite
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, with info
// "chorus e2e message fragment v1", through github.com/cloudflare/circl/hpke.
// Only the recipient can read a fragment, and any change to any byte makes
// it fail to open.
//
// Sender: auth mode mixes the sender's static key into the KEM, so a
// fragment opens under a contact's key only if it was sealed with that
// contact's private key (or with the recipient's own: HPKE auth mode does
// not resist key-compromise impersonation, so whoever steals a user's
// message key can forge messages to that user from anyone). The
// authentication is deniable: it is a Diffie-Hellman MAC, not a signature,
// so the recipient cannot prove to a third party who wrote.
//
// Forward secrecy: none with respect to the recipient's static key. The
// sender's key is ephemeral-static, so stealing the sender's static key
// reveals nothing, but stealing the recipient's message key reveals every
// recorded fragment ever sent to it. Keep it only in the encrypted store.
//
// What is hidden: the message ID (16 random bytes), index, count and
// length travel only inside the encryption. Every fragment sealed for a
// given sealedLength has exactly that length, the last one padded with
// zeros (checked on open), so a fragment's size says nothing about its
// contents. What is not: the number of fragments, which the recipient's
// provider sees as the number of mailbox entries (about one per
// FragmentCapacity bytes of message); on the sender's side, Poisson cover
// traffic hides it (DESIGN §5.4).
//
// Replays: a fragment delivered twice (a retransmission after a lost ACK,
// or a replay) is dropped by the Reassembler while it holds the message or
// remembers its ID; across restarts the store's seen set catches it.
//
// # Fragment format
//
//	sealed    = enc (32) || ChaCha20-Poly1305(plaintext) || tag (16)
//	plaintext = version 1 (1) || message ID (16) || index (4) || count (4)
//	            || total length (4) || body length (4) || body || zero padding
//
// Integers are big-endian. SealOverhead (81 bytes) is everything but the
// body, so FragmentCapacity(n) = n − 81: with the default geometry's
// 2000-byte user payload and, say, 64 bytes reserved, 1855 bytes of message
// per fragment and 566 fragments for a 1 MiB message. Open refuses anything
// not exactly as Seal writes it; a fragment authenticated but malformed is
// ErrMalformed (only that contact's software could have made it).
//
// # Who sent it: trial decryption and its cost
//
// Nothing in clear names the sender, so Open tries the contact keys in the
// order given until one opens the fragment, and returns its index. Each
// trial is a full HPKE auth-mode setup through circl: two X25519 ladders
// (the ephemeral and the static Diffie-Hellman, the first identical across
// trials but recomputed by circl), the key schedule and one AEAD open. On
// the 2-core reference machine, measured while shared with other builds
// (load 2.5–5; BenchmarkX25519Ladder ran at 60–90 µs per ladder, roughly
// twice a quiet machine):
//
//	Seal, one 1936-byte fragment         180–240 µs   (≈ 3 ladders: ephemeral key, 2 DH)
//	Open, sender is the 1st contact      ≈ 145 µs
//	Open, each further contact tried     100–145 µs   (≈ 2 ladders)
//	Open, sender is the 100th contact    10–15 ms
//	ParseCard                            60–80 µs     (1 ladder: the low-order check)
//
// A stranger's fragment costs a full pass over all contacts before
// ErrUnknownSender. Callers should order contacts most likely first (most
// recent sender first). If contact lists grow into the thousands, a manual
// DHKEM that computes the ephemeral DH once and caches each contact's
// static DH would make each further trial an HKDF and an AEAD open (a few
// µs); that is not done here, to keep a single, reviewed HPKE
// implementation.
//
// # Contact cards
//
// A card is provider ID (32 bytes) || mailbox ID (32) || message key (32),
// written as
//
//	"chorus1" + "q" (version 0) + 154 payload symbols + 6 checksum symbols
//
// 168 characters of lower-case base32 in the bech32 alphabet, no padding.
// The checksum is bech32m (BIP-173's BCH code with BIP-350's constant) over
// the human-readable part "chorus" and all data symbols; the implementation
// matches BIP-350's test vectors. Bech32's advertised 4-error guarantee
// holds only up to 89 characters, so the card relies on two properties that
// hold at any length: the checksum is a cyclic code whose generator g(x)
// has degree 6 and a non-zero constant term, so
//
//   - a single substitution is an error e·xᵏ, which g cannot divide
//     (g shares no factor with xᵏ and e is a non-zero constant);
//   - swapping two adjacent different characters is an error d·xᵏ·(x+1),
//     which g cannot divide either (deg g > 1);
//
// and more generally every error confined to 6 consecutive characters is
// detected. Any other error escapes with probability about 2⁻³⁰. Errors in
// the prefix, a wrong length (a dropped or doubled character), a non-zero
// padding bit, upper case, an unknown version and a low-order key are all
// refused, so ParseCard accepts exactly one string per card. The tests
// check every substitution by every byte value and every adjacent swap of
// several cards, and a golden file pins the encoding.
//
// A Card's String prints only a fingerprint: a card names a mailbox, which
// must not reach logs.
//
// # Reassembly
//
// A Reassembler keys messages by (sender key, message ID), so one contact
// cannot add to another's message. It holds at most MaxPartials incomplete
// messages and MaxPartialBytes of their bodies; to make room it evicts the
// incomplete message extended least recently, counts it, and tells the
// caller (OnEvict) so the caller can drop what it holds for it. It
// remembers the last RememberCompleted completed IDs to drop late
// duplicates. A message never completes while a fragment is missing.
package message
