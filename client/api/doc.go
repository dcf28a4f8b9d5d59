// Package api is chorusd's local API: HTTP and JSON on a Unix socket in
// the daemon's data directory, served by chorusd and used by the chorus
// CLI and any other program of the user's (DESIGN §2, §3 step 1). The
// package holds both sides: Server, which answers from a Backend that the
// daemon core implements, and Client.
//
// # Using it
//
// In chorusd:
//
//	ln, err := api.Listen(filepath.Join(dataDir, api.SocketName))
//	srv := &api.Server{Backend: core, Logger: log}
//	err = srv.Serve(ctx, ln) // returns after a graceful shutdown when ctx ends
//
// In a program of the user's:
//
//	c := api.Dial(filepath.Join(dataDir, api.SocketName))
//	id, err := c.Send(ctx, "alice", []byte("hello"))
//	st, err := c.MessageStatus(ctx, id)          // queued, sent, delivered, failed
//	msgs, err := c.WaitInbox(ctx, lastSeq, time.Minute)
//	if errors.Is(err, api.ErrNotFound) { ... }   // errors are *api.Error
//
// # Routes
//
// Every answer is JSON; every route is under /v1/.
//
//	GET    /v1/status              Status: connected, epoch, queue sizes, traffic rates
//	GET    /v1/identity            Identity: the user's own contact card
//	GET    /v1/contacts            {"contacts": [Contact...]}
//	POST   /v1/contacts            {"name": "alice", "card": "chorus1..."} → 204
//	DELETE /v1/contacts/{name}     → 204
//	POST   /v1/messages            {"to": "alice", "text": "hi"} or {"to": ..., "body": base64} → 202 {"id": "<32 hex>"}
//	GET    /v1/messages/{id}       MessageStatus: state queued | sent | delivered | failed
//	GET    /v1/inbox?after=N       {"messages": [InboxMessage...]} with seq > N, oldest first
//	GET    /v1/inbox?after=N&wait=30s   the same, waiting up to 30s (at most 5m) for one to arrive
//	POST   /v1/inbox/{seq}/read    → 204
//	DELETE /v1/inbox/{seq}         → 204
//	POST   /v1/ping                {"rtt": "1.84s"}: a round trip through the network to the echo service
//
// Received messages carry the body in base64 ("body") and, when it is
// valid UTF-8, again as a string ("text"). Times are RFC 3339, message
// IDs 32 hex digits. A long-poll whose wait runs out answers 200 with no
// messages; the caller polls again with the same after. Inbox answers may
// hold only the first few messages: ask again with after set to the last
// seq. A contact name in a path is one escaped segment; the Go client also
// escapes "." and "/" ("%2E", "%2F") so the router neither cleans nor
// splits it.
//
// Errors have a status and a JSON body {"error": "...", "code": "..."}:
//
//	400 invalid              malformed JSON, unknown field, bad name, card, ID or query
//	404 not_found            no such route, contact, message or inbox entry
//	405 method_not_allowed   (with an Allow header)
//	409 conflict             the contact's name or card is already in use
//	413 too_large            request body or message over its limit
//	500 internal             anything else; the details go only to chorusd's log
//	503 unavailable          not connected, or chorusd is shutting down
//	504 timeout              the network did not answer in time (ping)
//
// The Client returns an *Error that matches the sentinel of its code with
// errors.Is (ErrInvalid, ErrNotFound, ...); a Backend returns the same
// sentinels, wrapped, to choose the answer.
//
// Requests are decoded strictly: exactly one JSON value, no unknown
// fields, no query parameters where a route takes none, bodies of at most
// 16 KiB except a message's (six times the largest message, for JSON's
// escaping, plus 16 KiB; the message itself may be Server.MaxMessageSize,
// 1 MiB by default). Contact names are 1 to 64 bytes of UTF-8 without
// control characters (ValidName); cards must parse (message.ParseCard,
// which accepts exactly the canonical string). The Content-Type is not
// checked, so plain curl works.
//
// From a shell:
//
//	curl --unix-socket ~/.chorus/chorusd.sock http://chorusd/v1/status
//	curl --unix-socket ~/.chorus/chorusd.sock http://chorusd/v1/messages \
//	     -d '{"to": "alice", "text": "hello"}'
//	curl --unix-socket ~/.chorus/chorusd.sock 'http://chorusd/v1/inbox?after=0&wait=1m'
//
// The host name is ignored.
//
// # Security
//
// The API can read every message and send as the user, so only the user
// may reach it. It is served only on a Unix socket, never on TCP: nothing
// on the network, and no web page in a browser, can connect. Listen
// creates the socket with mode 0600 without a moment at any other mode
// (bound in a private directory, then renamed into place), in the data
// directory, which is 0700 itself; whoever can connect is the user (or
// root). There is no further authentication: access to the socket is the
// credential.
//
// The Client never sends requests through an HTTP proxy, whatever
// HTTP_PROXY says, and its errors name the operation, never the URL
// (which may hold a contact name).
//
// The server logs one line per request at debug level with the method,
// the route pattern (never the path: /v1/contacts/{name}, not the name),
// the status and the time taken; backend errors that become 500 are
// logged at error level, so a Backend must keep names, cards and bodies
// out of them. Message bodies, contact names and cards are never logged.
// Error answers to the API client never carry internal details.
//
// Serve bounds header reads and idle connections; long-polls and pings
// end at once when Serve's context ends, and Serve returns only after its
// last handler has.
package api
