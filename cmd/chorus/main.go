// Command chorus is the command-line interface to chorusd, the Chorus
// client daemon. It talks to chorusd only through its local API (package
// client/api) on a Unix socket; chorusd must be running.
//
//	chorus status                      is chorusd connected? queues, rates
//	chorus whoami [--link-key]         your contact card, to give to others
//	chorus contacts add NAME CARD      add someone from the card they gave you
//	chorus contacts list               your contacts
//	chorus contacts rm NAME            remove a contact
//	chorus send NAME TEXT...           send a message
//	chorus send --file F NAME          send a file's contents ("-": standard input)
//	chorus inbox [--follow]            received messages; --follow waits for more
//	chorus ping                        a round trip through the network
//
// The socket is -socket PATH, else $CHORUS_SOCKET, else
// ~/.chorus/chorusd.sock (chorusd's default: <data_dir>/chorusd.sock with
// data_dir ~/.chorus). Run "chorus help" for the details.
//
// Exit codes: 0 success, 1 failure (chorusd not running, an error from
// it), 2 bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/chorus-mixnet/chorus/client/api"
	"github.com/chorus-mixnet/chorus/client/message"
)

// SocketEnv names the environment variable that overrides the default
// socket path.
const SocketEnv = "CHORUS_SOCKET"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const usage = `chorus talks to chorusd, the Chorus client daemon, which must be running.

Usage:
  chorus [-socket PATH] COMMAND [ARGUMENTS]

Commands:
  status                     Show whether chorusd is connected to its provider,
                             the network epoch, queue sizes and traffic rates.
  whoami                     Print your contact card. Give it to the people
                             who should be able to write to you.
  whoami --link-key          Print the key your provider knows you by; its
                             operator adds it if registration is closed.
  contacts add NAME CARD     Add a contact under NAME (your own label, up to
                             64 characters) from the card they gave you.
  contacts list              List your contacts.
  contacts rm NAME           Remove a contact.
  send NAME TEXT...          Send TEXT (the rest of the line) to a contact.
                             Prints the message ID; --wait waits until the
                             recipient's provider has every part (or it fails).
  send [--wait] --file F NAME
                             Send the contents of file F ("-" reads standard
                             input); up to 1 MiB.
  inbox [--follow] [--all]   Show received messages not yet shown, and mark
                             them read; --all shows every one again;
                             --follow keeps waiting for new ones (Ctrl-C stops).
  ping                       Send a packet through the network to your
                             provider's echo service and print the round trip.
  help                       Show this text.

Flags:
  -socket PATH   chorusd's API socket. Default: $CHORUS_SOCKET, else
                 ~/.chorus/chorusd.sock (chorusd's data_dir default).

First steps:
  chorus whoami                          # send this card to a friend
  chorus contacts add alice chorus1q...  # the card your friend sent you
  chorus send alice hello there
  chorus inbox --follow

Messages take a while: every packet waits for a slot of chorusd's
constant-rate traffic and is delayed at each hop, so that nobody can tell
when you write or to whom.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a mistake on the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// defaultSocket is $CHORUS_SOCKET, else ~/.chorus/chorusd.sock.
func defaultSocket() string {
	if s := os.Getenv(SocketEnv); s != "" {
		return s
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".chorus", api.SocketName)
	}
	return filepath.Join(home, ".chorus", api.SocketName)
}

// cli is one run of the command.
type cli struct {
	api    *api.Client
	socket string
	stdin  io.Reader
	stdout io.Writer
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chorus", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	socket := fs.String("socket", defaultSocket(), "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		fmt.Fprintf(stderr, "chorus: %v\n\n%s", err, usage)
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	if rest[0] == "help" || rest[0] == "-h" || rest[0] == "--help" {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	c := &cli{api: api.Dial(*socket), socket: *socket, stdin: stdin, stdout: stdout}
	defer c.api.Close()
	err := c.command(ctx, rest[0], rest[1:])
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "chorus: %v\nRun \"chorus help\" for usage.\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "chorus: %v\n", c.explain(err))
		return exitFailure
	}
}

// explain turns an error into advice where it can.
func (c *cli) explain(err error) error {
	var ae *api.Error
	if errors.As(err, &ae) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("cannot reach chorusd at %s: %v\nIs chorusd running? Start it with \"chorusd -config FILE\", or point chorus at its socket with -socket or %s", c.socket, err, SocketEnv)
}

func (c *cli) command(ctx context.Context, name string, args []string) error {
	switch name {
	case "status":
		return c.status(ctx, args)
	case "whoami":
		return c.whoami(ctx, args)
	case "contacts":
		return c.contacts(ctx, args)
	case "send":
		return c.send(ctx, args)
	case "inbox":
		return c.inbox(ctx, args)
	case "ping":
		return c.ping(ctx, args)
	}
	return usagef("unknown command %q", name)
}

func noArgs(cmd string, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments", cmd)
	}
	return nil
}

func (c *cli) status(ctx context.Context, args []string) error {
	if err := noArgs("status", args); err != nil {
		return err
	}
	st, err := c.api.Status(ctx)
	if err != nil {
		return err
	}
	w := c.stdout
	if st.Connected {
		fmt.Fprintln(w, "connected:  yes")
	} else {
		fmt.Fprintln(w, "connected:  no (chorusd keeps trying; messages wait in the outbox)")
	}
	if st.Epoch == 0 {
		fmt.Fprintln(w, "epoch:      none yet (waiting for a consensus document)")
	} else {
		fmt.Fprintf(w, "epoch:      %d\n", st.Epoch)
	}
	q := st.Queues
	fmt.Fprintf(w, "outbox:     %d message(s) on their way, %d fragment(s) waiting to be sent, %d awaiting acknowledgement\n", q.Outbox, q.Fragments, q.Unacked)
	fmt.Fprintf(w, "inbox:      %d unread message(s)\n", q.Inbox)
	r := st.Rates
	fmt.Fprintf(w, "traffic:    %.3g sends/s, %.3g loops/s, %.3g drops/s, %.3g retrievals/s\n", r.Send, r.Loop, r.Drop, r.Retrieve)
	return nil
}

func (c *cli) whoami(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("whoami", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	linkKey := fs.Bool("link-key", false, "")
	if err := fs.Parse(args); err != nil {
		return usagef("whoami: %v", err)
	}
	if err := noArgs("whoami", fs.Args()); err != nil {
		return err
	}
	id, err := c.api.Identity(ctx)
	if err != nil {
		return err
	}
	if *linkKey {
		k, _ := id.LinkKey.MarshalText()
		fmt.Fprintln(c.stdout, string(k))
		return nil
	}
	fmt.Fprintln(c.stdout, id.Card.Encode())
	return nil
}

func (c *cli) contacts(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("contacts needs a subcommand: add NAME CARD, list or rm NAME")
	}
	switch sub, args := args[0], args[1:]; sub {
	case "add":
		if len(args) != 2 {
			return usagef("usage: chorus contacts add NAME CARD")
		}
		if _, err := message.ParseCard(strings.TrimSpace(args[1])); err != nil {
			return fmt.Errorf("that is not a valid contact card (check that it was copied whole; cards start with %q and are %d characters long)", message.CardPrefix, message.CardLength)
		}
		if err := c.api.AddContact(ctx, args[0], args[1]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "added %s\n", args[0])
		return nil
	case "list", "ls":
		if err := noArgs("contacts list", args); err != nil {
			return err
		}
		cs, err := c.api.Contacts(ctx)
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			fmt.Fprintln(c.stdout, "no contacts yet; add one with: chorus contacts add NAME CARD")
		}
		for _, ct := range cs {
			fmt.Fprintf(c.stdout, "%s\t%s\n", ct.Name, ct.Card.Encode())
		}
		return nil
	case "rm", "remove":
		if len(args) != 1 {
			return usagef("usage: chorus contacts rm NAME")
		}
		if err := c.api.RemoveContact(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "removed %s\n", args[0])
		return nil
	}
	return usagef("unknown contacts subcommand %q (add, list, rm)", args[0])
}

func (c *cli) send(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("file", "", "")
	wait := fs.Bool("wait", false, "")
	if err := fs.Parse(args); err != nil {
		return usagef("send: %v", err)
	}
	args = fs.Args()
	var body []byte
	switch {
	case len(args) == 0:
		return usagef("usage: chorus send NAME TEXT... or chorus send --file F NAME")
	case *file != "":
		if len(args) != 1 {
			return usagef("with --file, send takes only the contact's name")
		}
		var err error
		if *file == "-" {
			body, err = io.ReadAll(io.LimitReader(c.stdin, message.DefaultMaxMessageSize+1))
		} else {
			body, err = os.ReadFile(*file)
		}
		if err != nil {
			return fmt.Errorf("read the message: %w", err)
		}
	case len(args) == 1:
		return usagef("send what? usage: chorus send NAME TEXT...")
	default:
		body = []byte(strings.Join(args[1:], " "))
	}
	if len(body) == 0 {
		return usagef("the message is empty")
	}
	id, err := c.api.Send(ctx, args[0], body)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "queued %s\n", id)
	if !*wait {
		return nil
	}
	return c.waitDelivered(ctx, id)
}

// waitDelivered polls a sent message's status until it is delivered or
// failed.
func (c *cli) waitDelivered(ctx context.Context, id message.MessageID) error {
	last := api.MessageState("")
	for {
		st, err := c.api.MessageStatus(ctx, id)
		if err != nil {
			return err
		}
		if st.State != last {
			last = st.State
			fmt.Fprintf(c.stdout, "%s (%d of %d parts acknowledged)\n", st.State, st.Delivered, st.Fragments)
		}
		switch st.State {
		case api.StateDelivered:
			return nil
		case api.StateFailed:
			return errors.New("the message failed: no acknowledgement after every retry")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// inbox shows unread messages (or all) and marks the ones shown read;
// with follow it then waits for more.
func (c *cli) inbox(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("inbox", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	follow := fs.Bool("follow", false, "")
	all := fs.Bool("all", false, "")
	if err := fs.Parse(args); err != nil {
		return usagef("inbox: %v", err)
	}
	if fs.NArg() > 0 {
		return usagef("inbox takes no arguments besides --follow and --all")
	}
	var after uint64
	shown := 0
	for {
		msgs, err := c.api.Inbox(ctx, after)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			after = m.Seq
			if m.Read && !*all {
				continue
			}
			if err := c.show(ctx, m); err != nil {
				return err
			}
			shown++
		}
	}
	if !*follow {
		if shown == 0 {
			fmt.Fprintln(c.stdout, "no new messages")
		}
		return nil
	}
	for {
		msgs, err := c.api.WaitInbox(ctx, after, api.DefaultMaxWait)
		if err != nil {
			if ctx.Err() != nil {
				return nil // Ctrl-C ends --follow
			}
			return err
		}
		for _, m := range msgs {
			after = m.Seq
			if err := c.show(ctx, m); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	}
}

// show prints one received message and marks it read.
func (c *cli) show(ctx context.Context, m api.InboxMessage) error {
	from := m.From
	if from == "" {
		from = "(a removed contact)"
	}
	fmt.Fprintf(c.stdout, "#%d from %s at %s\n", m.Seq, from, m.Received.Local().Format(time.DateTime))
	if utf8.Valid(m.Body) {
		text := strings.TrimRight(string(m.Body), "\n")
		for _, line := range strings.Split(text, "\n") {
			fmt.Fprintf(c.stdout, "  %s\n", printable(line))
		}
	} else {
		fmt.Fprintf(c.stdout, "  (%d bytes of binary data)\n", len(m.Body))
	}
	if !m.Read {
		return c.api.MarkRead(ctx, m.Seq)
	}
	return nil
}

func (c *cli) ping(ctx context.Context, args []string) error {
	if err := noArgs("ping", args); err != nil {
		return err
	}
	rtt, err := c.api.Ping(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "echo from your provider after %v (through the network and back, including the mixes' delays)\n", rtt.Round(time.Millisecond))
	return nil
}

// printable replaces control characters (other than tab) with Go escapes,
// so that a message cannot drive the terminal (escape sequences can move
// the cursor, rewrite earlier lines or change the window title).
func printable(s string) string {
	if strings.IndexFunc(s, isUnsafe) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isUnsafe(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isUnsafe(r rune) bool {
	return r != '\t' && (unicode.IsControl(r) || r == 0x2028 || r == 0x2029 || unicode.Is(unicode.Bidi_Control, r))
}
