package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/chorus-mixnet/chorus/client/api"
	"github.com/chorus-mixnet/chorus/client/message"
)

// SocketPath returns where the named client's chorusd serves its API.
func (n *Network) SocketPath(name string) string {
	return filepath.Join(n.dataDir(name), api.SocketName)
}

// Client returns an API client for the named user's chorusd (alice or
// bob).
func (n *Network) Client(name string) *api.Client {
	return api.Dial(n.SocketPath(name))
}

// WaitConnected waits until the named clients (alice and bob if none are
// named) are connected to their providers and hold a document.
func (n *Network) WaitConnected(ctx context.Context, names ...string) error {
	procs := n.running()
	connected := map[string]bool{}
	reasons := map[string]string{}
	var users []Node
	for _, nd := range n.nodes {
		if nd.Role == RoleClient && (len(names) == 0 || slices.Contains(names, nd.Name)) {
			users = append(users, nd)
			reasons[nd.Name] = "not asked yet"
		}
	}
	return poll(ctx, procs, func() string {
		s := "the clients to connect:"
		for _, u := range users {
			if !connected[u.Name] {
				s += " " + u.Name + " (" + reasons[u.Name] + ")"
			}
		}
		return s
	}, func() bool {
		for _, u := range users {
			if connected[u.Name] {
				continue
			}
			c := n.Client(u.Name)
			st, err := c.Status(ctx)
			c.Close()
			switch {
			case err != nil:
				reasons[u.Name] = err.Error()
			case !st.Connected:
				reasons[u.Name] = "not connected to " + u.Provider
			case st.Epoch == 0:
				reasons[u.Name] = "no document yet"
			default:
				connected[u.Name] = true
				n.logf("%-9s is connected to %s (epoch %d, %.0f send slots a second) (%.1fs)",
					u.Name, u.Provider, st.Epoch, st.Rates.Send, n.Since().Seconds())
			}
		}
		return len(connected) == len(users)
	})
}

// Introduce makes alice and bob contacts of each other, as a person would
// with `chorus whoami` and `chorus contacts add`: each one's contact card,
// from its own chorusd, is added to the other's contacts under its name.
// It is idempotent: a contact already there with the same card is kept.
func (n *Network) Introduce(ctx context.Context) error {
	a, b := n.Client(Alice), n.Client(Bob)
	defer a.Close()
	defer b.Close()
	for _, pair := range []struct {
		name     string
		from, to *api.Client
	}{{Alice, a, b}, {Bob, b, a}} {
		id, err := pair.from.Identity(ctx)
		if err != nil {
			return fmt.Errorf("testnet: card of %s: %w", pair.name, err)
		}
		err = pair.to.AddContact(ctx, pair.name, id.Card.Encode())
		if errors.Is(err, api.ErrConflict) {
			cs, lerr := pair.to.Contacts(ctx)
			if lerr != nil {
				return fmt.Errorf("testnet: contacts: %w", lerr)
			}
			for _, c := range cs {
				if c.Name == pair.name && c.Card.Equal(id.Card) {
					err = nil
				}
			}
		}
		if err != nil {
			return fmt.Errorf("testnet: add %s as a contact: %w", pair.name, err)
		}
	}
	n.logf("alice and bob are contacts of each other")
	return nil
}

// Delivery is what happened to one message. The durations are from
// Queued.
type Delivery struct {
	From, To string
	ID       message.MessageID
	Size     int
	// Fragments is how many packets the message was split into.
	Fragments int
	// Queued is when the sender's chorusd accepted the message.
	Queued time.Time
	// Left is when the sender reported the first fragment sent (seen by
	// polling, so within a poll interval; 0 if never seen).
	Left time.Duration
	// Received is when the recipient's chorusd had reassembled it.
	Received time.Duration
	// Acked is when every fragment's ACK was back at the sender.
	Acked time.Duration
}

// Transfer is a message on its way: Send queued it, Wait follows it.
type Transfer struct {
	n        *Network
	From, To string
	ID       message.MessageID
	Queued   time.Time
	body     []byte
}

// Send queues body at the sender's chorusd for the other user (the
// contact named after them) and returns at once; Wait follows the
// message to its end.
func (n *Network) Send(ctx context.Context, from, to string, body []byte) (*Transfer, error) {
	src := n.Client(from)
	defer src.Close()
	id, err := src.Send(ctx, to, body)
	if err != nil {
		return nil, fmt.Errorf("testnet: %s sends to %s: %w", from, to, err)
	}
	tr := &Transfer{n: n, From: from, To: to, ID: id, Queued: time.Now(), body: body}
	n.logf("%s → %s: %d bytes queued at %s", from, to, len(body), tr.Queued.Format(clock))
	return tr, nil
}

// Deliver sends body and waits for it: Send, then Wait.
func (n *Network) Deliver(ctx context.Context, from, to string, body []byte) (Delivery, error) {
	tr, err := n.Send(ctx, from, to, body)
	if err != nil {
		return Delivery{}, err
	}
	return tr.Wait(ctx)
}

// Status returns where the message stands at the sender.
func (tr *Transfer) Status(ctx context.Context) (api.MessageStatus, error) {
	c := tr.n.Client(tr.From)
	defer c.Close()
	return c.MessageStatus(ctx, tr.ID)
}

// statusPoll is how often Wait asks the sender for the message's state.
const statusPoll = 25 * time.Millisecond

// Wait waits until the recipient has the message, intact and exactly
// once, and the sender has every ACK, reporting each step through Logf.
// It fails if the sender reports the message failed, or when ctx ends.
// The recipient's chorusd may be down meanwhile: Wait asks again.
func (tr *Transfer) Wait(ctx context.Context) (Delivery, error) {
	n, from, to := tr.n, tr.From, tr.To
	d := Delivery{From: from, To: to, ID: tr.ID, Size: len(tr.body), Queued: tr.Queued}
	src := n.Client(from)
	defer src.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	recv := make(chan error, 1)
	go func() {
		r, err := tr.waitInbox(ctx)
		if err == nil {
			d.Received = r.Sub(d.Queued)
			n.logf("%s → %s: %s has it (%d bytes, intact) at %s, %v after it was queued", from, to, to, len(tr.body), r.Format(clock), roundMS(d.Received))
		}
		recv <- err
	}()

	t := time.NewTicker(statusPoll)
	defer t.Stop()
	for d.Acked == 0 {
		st, err := src.MessageStatus(ctx, tr.ID)
		if err != nil {
			return d, fmt.Errorf("testnet: status of the message from %s: %w", from, err)
		}
		d.Fragments = st.Fragments
		if d.Left == 0 && st.State != api.StateQueued {
			d.Left = time.Since(d.Queued)
			n.logf("%s → %s: on its way at %s (%d fragment%s), %v after it was queued", from, to, time.Now().Format(clock), st.Fragments, plural(st.Fragments), roundMS(d.Left))
		}
		switch st.State {
		case api.StateDelivered:
			d.Acked = time.Since(d.Queued)
			n.logf("%s → %s: %s has every ACK at %s, %v after it was queued", from, to, from, time.Now().Format(clock), roundMS(d.Acked))
			continue
		case api.StateFailed:
			return d, fmt.Errorf("testnet: %s reports the message to %s failed (%d of %d fragments acknowledged)", from, to, st.Delivered, st.Fragments)
		}
		select {
		case <-ctx.Done():
			return d, fmt.Errorf("testnet: %w waiting for the ACKs of %s's message to %s (%d of %d)", ctx.Err(), from, to, st.Delivered, st.Fragments)
		case <-t.C:
		}
	}
	if err := <-recv; err != nil {
		return d, err
	}
	return d, nil
}

// waitInbox waits for the message to be in the recipient's inbox, checks
// that it is intact and there once, and returns when it was received.
// While the recipient's chorusd does not answer it asks again.
func (tr *Transfer) waitInbox(ctx context.Context) (time.Time, error) {
	c := tr.n.Client(tr.To)
	defer c.Close()
	var after uint64
	var got time.Time
	for {
		wait := 2 * time.Second
		if !got.IsZero() {
			wait = 0 // only to see the rest of the inbox
		}
		ms, err := c.WaitInbox(ctx, after, wait)
		if ctx.Err() != nil {
			return got, fmt.Errorf("testnet: %w waiting for %s to receive the message from %s", ctx.Err(), tr.To, tr.From)
		}
		if err != nil {
			var apiErr *api.Error
			if errors.As(err, &apiErr) {
				return got, fmt.Errorf("testnet: inbox of %s: %w", tr.To, err)
			}
			// chorusd is not running (restarting): ask again.
			select {
			case <-ctx.Done():
			case <-time.After(pollInterval):
			}
			continue
		}
		for _, m := range ms {
			after = m.Seq
			if m.ID != tr.ID {
				continue
			}
			if m.From != tr.From {
				return got, fmt.Errorf("testnet: the message arrived from %q, not %q", m.From, tr.From)
			}
			if !bytes.Equal(m.Body, tr.body) {
				return got, fmt.Errorf("testnet: the message from %s arrived altered (%d bytes, sent %d)", tr.From, len(m.Body), len(tr.body))
			}
			if !got.IsZero() {
				return got, fmt.Errorf("testnet: the message from %s arrived twice", tr.From)
			}
			got = m.Received
		}
		if !got.IsZero() && len(ms) == 0 {
			// The whole inbox after the message was read: it is there once.
			return got, nil
		}
	}
}

// clock is how progress lines show a time of day.
const clock = "15:04:05.000"

func roundMS(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// Command is a shell command line with a note of what it does.
type Command struct {
	Note, Line string
}

// Commands returns the chorus command lines that send more messages, as
// alice and as bob, and read them. Paths are relative to the current
// directory when the network's directory is inside it.
func (n *Network) Commands() []Command {
	chorus := shellPath(filepath.Join(n.bin, "chorus"))
	as := func(user string) string { return chorus + " -socket " + shellPath(n.SocketPath(user)) }
	return []Command{
		{"alice writes to bob", as(Alice) + " send bob 'Hello Bob, it is Alice again'"},
		{"bob reads, and waits for more (Ctrl-C stops)", as(Bob) + " inbox --follow"},
		{"bob answers", as(Bob) + " send alice 'Hi Alice, Bob here'"},
		{"alice reads", as(Alice) + " inbox"},
		{"alice writes and waits until every part is acknowledged", as(Alice) + " send --wait bob 'Are you there?'"},
		{"alice's connection, queues and rates", as(Alice) + " status"},
		{"a round trip through the network", as(Alice) + " ping"},
	}
}

// shellPath returns path relative to the current directory if it is
// inside it, quoted for a POSIX shell if it needs to be.
func shellPath(path string) string {
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(rel, "..") {
			path = rel
		}
	}
	if strings.IndexFunc(path, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0 {
		return path
	}
	return "'" + strings.ReplaceAll(path, "'", `'\''`) + "'"
}
