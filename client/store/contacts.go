package store

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/chorus-mixnet/chorus/client/message"
)

// MaxNameLength bounds a contact name, in bytes.
const MaxNameLength = 64

// Contact is someone the user can write to and receive from.
type Contact struct {
	// Name is the user's own label for the contact: unique, 1 to
	// MaxNameLength bytes of UTF-8 without control characters.
	Name string
	// Card is the contact's card.
	Card message.Card
	// Added is when the contact was added.
	Added time.Time
}

func validName(name string) error {
	if name == "" || len(name) > MaxNameLength || !utf8.ValidString(name) ||
		strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: contact names are 1 to %d bytes of printable UTF-8", ErrInvalid, MaxNameLength)
	}
	return nil
}

func encodeContact(c *Contact) []byte {
	var w recordWriter
	w.str(c.Name)
	w.fixed(c.Card.ProviderID[:])
	w.fixed(c.Card.MailboxID[:])
	k := c.Card.Key.Array()
	w.fixed(k[:])
	w.time(c.Added)
	return w.b
}

// decodeContact reads a contact record; rawKey is the message key's bytes,
// for comparisons that need not validate it again.
func decodeContact(b []byte) (c Contact, rawKey [message.KeySize]byte, err error) {
	r := recordReader{b: b}
	c.Name = r.str()
	r.fixed(c.Card.ProviderID[:])
	r.fixed(c.Card.MailboxID[:])
	r.fixed(rawKey[:])
	c.Added = r.time()
	if !r.ok() {
		return Contact{}, rawKey, ErrCorrupt
	}
	if c.Card.Key, err = message.NewPublicKey(rawKey[:]); err != nil {
		return Contact{}, rawKey, ErrCorrupt
	}
	return c, rawKey, nil
}

// AddContact adds a contact under a new name. It refuses (ErrExists) a
// name already in use and a card whose message key already belongs to
// another contact: the key is how a received fragment names its sender,
// so it must name one contact.
func (s *Store) AddContact(name string, card message.Card) error {
	if err := validName(name); err != nil {
		return err
	}
	if card.Key.IsZero() {
		return fmt.Errorf("%w: card without a key", ErrInvalid)
	}
	want := card.Key.Array()
	return s.update(func(t txn) error {
		if ok, err := t.has(tContacts, []byte(name)); err != nil {
			return err
		} else if ok {
			return ErrExists
		}
		err := t.each(tContacts, func(v []byte) error {
			r := recordReader{b: v}
			r.str()
			r.take(message.ProviderIDSize + message.MailboxIDSize)
			var k [message.KeySize]byte
			r.fixed(k[:])
			if r.bad {
				return ErrCorrupt
			}
			if k == want {
				return ErrExists
			}
			return nil
		})
		if err != nil {
			return err
		}
		c := Contact{Name: name, Card: card, Added: s.opts.Now()}
		return t.put(tContacts, []byte(name), encodeContact(&c))
	})
}

// Contact returns the contact with the given name, or ErrNotFound.
func (s *Store) Contact(name string) (Contact, error) {
	var c Contact
	err := s.view(func(t txn) error {
		v, err := t.get(tContacts, []byte(name))
		if err != nil {
			return err
		}
		c, _, err = decodeContact(v)
		return err
	})
	return c, err
}

// Contacts returns every contact, sorted by name.
func (s *Store) Contacts() ([]Contact, error) {
	var out []Contact
	err := s.view(func(t txn) error {
		return t.each(tContacts, func(v []byte) error {
			c, _, err := decodeContact(v)
			if err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Contact) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// RemoveContact removes a contact, or returns ErrNotFound. Messages already
// received from it stay in the inbox; outbox messages to it stay queued.
func (s *Store) RemoveContact(name string) error {
	return s.update(func(t txn) error {
		if ok, err := t.has(tContacts, []byte(name)); err != nil {
			return err
		} else if !ok {
			return ErrNotFound
		}
		return t.del(tContacts, []byte(name))
	})
}
