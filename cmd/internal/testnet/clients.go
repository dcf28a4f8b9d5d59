package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
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

// waitClients waits until alice and bob are connected to their providers
// and hold a document.
func (n *Network) waitClients(ctx context.Context) error {
	procs := n.running()
	connected := map[string]bool{}
	reasons := map[string]string{}
	var users []Node
	for _, nd := range n.nodes {
		if nd.Role == RoleClient {
			users = append(users, nd)
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

// Delivery is what happened to one message sent with Send. The durations
// are from Queued.
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

// statusPoll is how often Send asks the sender for the message's state.
const statusPoll = 25 * time.Millisecond

// Send sends body from one user to the other (the contact named after
// them) and waits until the recipient has it, intact and exactly once,
// and the sender has every ACK, reporting each step through Logf. It
// fails if the sender reports the message failed, or when ctx ends.
func (n *Network) Send(ctx context.Context, from, to string, body []byte) (Delivery, error) {
	src, dst := n.Client(from), n.Client(to)
	defer src.Close()
	defer dst.Close()
	after, err := lastSeq(ctx, dst)
	if err != nil {
		return Delivery{}, fmt.Errorf("testnet: inbox of %s: %w", to, err)
	}
	d := Delivery{From: from, To: to, Size: len(body)}
	id, err := src.Send(ctx, to, body)
	if err != nil {
		return d, fmt.Errorf("testnet: %s sends to %s: %w", from, to, err)
	}
	d.ID, d.Queued = id, time.Now()
	n.logf("%s → %s: %d bytes queued at %s", from, to, len(body), d.Queued.Format("15:04:05.000"))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	recv := make(chan error, 1)
	go func() {
		r, err := waitFor(ctx, dst, after, from, id, body)
		if err == nil {
			d.Received = r.Sub(d.Queued)
			n.logf("%s → %s: %s received it (%d bytes, intact) after %v", from, to, to, len(body), roundMS(d.Received))
		}
		recv <- err
	}()

	t := time.NewTicker(statusPoll)
	defer t.Stop()
	for d.Acked == 0 {
		st, err := src.MessageStatus(ctx, id)
		if err != nil {
			return d, fmt.Errorf("testnet: status of the message from %s: %w", from, err)
		}
		d.Fragments = st.Fragments
		if d.Left == 0 && st.State != api.StateQueued {
			d.Left = time.Since(d.Queued)
			n.logf("%s → %s: sent (%d fragment%s) after %v", from, to, st.Fragments, plural(st.Fragments), roundMS(d.Left))
		}
		switch st.State {
		case api.StateDelivered:
			d.Acked = time.Since(d.Queued)
			n.logf("%s → %s: %s got every ACK after %v", from, to, from, roundMS(d.Acked))
		case api.StateFailed:
			return d, fmt.Errorf("testnet: %s reports the message to %s failed (%d of %d fragments acknowledged)", from, to, st.Delivered, st.Fragments)
		}
		if d.Acked != 0 {
			break
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

// lastSeq returns the highest inbox sequence number of a client.
func lastSeq(ctx context.Context, c *api.Client) (uint64, error) {
	var after uint64
	for {
		ms, err := c.Inbox(ctx, after)
		if err != nil {
			return 0, err
		}
		if len(ms) == 0 {
			return after, nil
		}
		after = ms[len(ms)-1].Seq
	}
}

// waitFor waits for the message id from the contact named from to arrive
// in c's inbox after seq, checks its body and that it arrives only once,
// and returns when it was received.
func waitFor(ctx context.Context, c *api.Client, after uint64, from string, id message.MessageID, body []byte) (time.Time, error) {
	var got time.Time
	for {
		ms, err := c.WaitInbox(ctx, after, 5*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return got, fmt.Errorf("testnet: %w waiting for the message from %s", ctx.Err(), from)
			}
			return got, fmt.Errorf("testnet: inbox: %w", err)
		}
		for _, m := range ms {
			after = m.Seq
			if m.ID != id {
				continue
			}
			if m.From != from {
				return got, fmt.Errorf("testnet: the message arrived from %q, not %q", m.From, from)
			}
			if !bytes.Equal(m.Body, body) {
				return got, fmt.Errorf("testnet: the message from %s arrived altered (%d bytes, sent %d)", from, len(m.Body), len(body))
			}
			if !got.IsZero() {
				return got, fmt.Errorf("testnet: the message from %s arrived twice", from)
			}
			got = m.Received
		}
		if !got.IsZero() {
			return got, nil
		}
	}
}

func roundMS(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// Commands returns the chorus command lines that send more messages, as
// alice and as bob, and read them.
func (n *Network) Commands() []string {
	return nil
}
