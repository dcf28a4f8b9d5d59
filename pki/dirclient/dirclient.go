package dirclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/epoch"
)

// Authority is one directory authority as a node's config names it.
type Authority struct {
	Name        string                 `toml:"name"`
	IdentityKey keys.IdentityPublicKey `toml:"identity_key"` // base64 Ed25519 public key
	// Address is "host:port" (plain HTTP: every body is signed) or a full
	// "http://" or "https://" base URL.
	Address string `toml:"address"`
}

// URL returns the absolute URL of path (which starts with "/") on a.
func (a Authority) URL(path string) string {
	base := a.Address
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return strings.TrimSuffix(base, "/") + path
}

// DocumentPath and DescriptorPath are the authority endpoints this package
// uses; pki/authority serves them.
const (
	DescriptorPath = "/v1/descriptor"
	DocumentPath   = "/v1/document/" // followed by the decimal epoch
)

// Errors.
var (
	// ErrNotFound: no authority has a document for the epoch (yet).
	ErrNotFound = errors.New("document not available")
	// ErrRejected: an authority refused an uploaded descriptor.
	ErrRejected = errors.New("descriptor rejected")
)

// Config configures a Client.
type Config struct {
	Authorities []Authority
	// Threshold is how many authorities must sign a document; 0 means a
	// majority, len(Authorities)/2+1.
	Threshold int
	// CacheDir, if set, keeps verified documents in files there (mode 0600)
	// so a restarted node has a document before any authority answers.
	CacheDir string
	// KeepEpochs is how many of the newest epochs the cache keeps; 0 means 4.
	KeepEpochs int
}

// Client fetches and verifies documents and uploads descriptors. It is safe
// for concurrent use.
type Client struct {
	auths     []Authority
	keys      []keys.IdentityPublicKey
	threshold int
	cacheDir  string
	keep      int
	http      *http.Client
	log       *slog.Logger

	mu    sync.Mutex
	cache map[uint64]*entry
}

type entry struct {
	doc *pki.Document
	raw []byte
}

// DefaultTimeout bounds each request of the default HTTP client.
const DefaultTimeout = 15 * time.Second

// New returns a client. httpClient may be nil for one with DefaultTimeout;
// a caller's own client must have a timeout.
func New(cfg Config, httpClient *http.Client, log *slog.Logger) (*Client, error) {
	c := &Client{
		auths:     append([]Authority(nil), cfg.Authorities...),
		threshold: cfg.Threshold,
		cacheDir:  cfg.CacheDir,
		keep:      cfg.KeepEpochs,
		http:      httpClient,
		log:       log,
		cache:     make(map[uint64]*entry),
	}
	if len(c.auths) == 0 {
		return nil, errors.New("new directory client: no authorities")
	}
	for i, a := range c.auths {
		if a.IdentityKey.IsZero() || a.Address == "" {
			return nil, fmt.Errorf("new directory client: authority %d (%q): missing identity key or address", i, a.Name)
		}
		c.keys = append(c.keys, a.IdentityKey)
	}
	if c.threshold == 0 {
		c.threshold = len(c.auths)/2 + 1
	}
	if c.threshold <= len(c.auths)/2 || c.threshold > len(c.auths) {
		return nil, fmt.Errorf("new directory client: threshold %d is not a majority of %d authorities", c.threshold, len(c.auths))
	}
	if c.keep <= 0 {
		c.keep = 4
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: DefaultTimeout}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.cacheDir != "" {
		if err := os.MkdirAll(c.cacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("new directory client: create cache directory: %w", err)
		}
	}
	return c, nil
}

// Threshold returns the number of authority signatures a document needs.
func (c *Client) Threshold() int { return c.threshold }

// Document returns the verified document for epoch and its signed encoding
// (what a provider serves its clients). It answers from the cache when it
// can, else asks the authorities in a random order. The error wraps
// ErrNotFound when no authority had the document.
func (c *Client) Document(ctx context.Context, epoch uint64) (*pki.Document, []byte, error) {
	if e := c.cached(epoch); e != nil {
		return e.doc, e.raw, nil
	}
	order := rand.Perm(len(c.auths))
	var errs []error
	notFound := 0
	for _, i := range order {
		a := c.auths[i]
		raw, err := c.fetch(ctx, a, epoch)
		if err == nil {
			var doc *pki.Document
			if doc, err = c.verify(raw, epoch); err == nil {
				c.remember(epoch, &entry{doc: doc, raw: raw}, true)
				return doc, raw, nil
			}
		}
		if errors.Is(err, ErrNotFound) {
			notFound++
		} else {
			c.log.Debug("fetch document failed", "authority", a.Name, "epoch", epoch, "err", err)
		}
		errs = append(errs, fmt.Errorf("authority %s: %w", a.Name, err))
		if ctx.Err() != nil {
			break
		}
	}
	err := errors.Join(errs...)
	if notFound == len(c.auths) {
		return nil, nil, fmt.Errorf("fetch document for epoch %d: %w", epoch, ErrNotFound)
	}
	return nil, nil, fmt.Errorf("fetch document for epoch %d: %w", epoch, err)
}

// Current returns the verified documents for the current epoch of s and
// for the next one. next is nil, without an error, while no authority has
// published it yet, as in the first part of every epoch.
func (c *Client) Current(ctx context.Context, s *epoch.Schedule) (cur, next *pki.Document, err error) {
	e := s.Now()
	if cur, _, err = c.Document(ctx, e); err != nil {
		return nil, nil, err
	}
	next, _, err = c.Document(ctx, e+1)
	if errors.Is(err, ErrNotFound) {
		return cur, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return cur, next, nil
}

// Cached returns the document for epoch if the client already holds it,
// without asking anyone.
func (c *Client) Cached(epoch uint64) (*pki.Document, []byte, bool) {
	if e := c.cached(epoch); e != nil {
		return e.doc, e.raw, true
	}
	return nil, nil, false
}

// Verify checks raw as a signed document for epoch with this client's
// authorities and threshold.
func (c *Client) verify(raw []byte, epoch uint64) (*pki.Document, error) {
	doc, err := pki.VerifyDocument(raw, c.keys, c.threshold)
	if err != nil {
		return nil, err
	}
	if doc.Epoch != epoch {
		return nil, fmt.Errorf("document for epoch %d: %w", doc.Epoch, pki.ErrWrongEpoch)
	}
	return doc, nil
}

func (c *Client) fetch(ctx context.Context, a Authority, epoch uint64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL(DocumentPath+strconv.FormatUint(epoch, 10)), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, ErrNotFound
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, pki.MaxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("read document: %w", err)
	}
	if len(raw) > pki.MaxDocumentSize {
		return nil, fmt.Errorf("document over %d bytes", pki.MaxDocumentSize)
	}
	return raw, nil
}

func (c *Client) cached(epoch uint64) *entry {
	c.mu.Lock()
	e := c.cache[epoch]
	c.mu.Unlock()
	if e != nil || c.cacheDir == "" {
		return e
	}
	raw, err := os.ReadFile(c.cachePath(epoch))
	if err != nil {
		return nil
	}
	doc, err := c.verify(raw, epoch)
	if err != nil {
		c.log.Warn("ignoring cached document that does not verify", "epoch", epoch, "err", err)
		return nil
	}
	e = &entry{doc: doc, raw: raw}
	c.remember(epoch, e, false)
	return e
}

// remember caches e, drops epochs older than the newest c.keep, and writes
// the cache file when persist is set.
func (c *Client) remember(epoch uint64, e *entry, persist bool) {
	c.mu.Lock()
	c.cache[epoch] = e
	var newest uint64
	for ep := range c.cache {
		newest = max(newest, ep)
	}
	for ep := range c.cache {
		if ep+uint64(c.keep) <= newest {
			delete(c.cache, ep)
		}
	}
	c.mu.Unlock()
	if c.cacheDir == "" || !persist {
		return
	}
	if err := writeFileAtomic(c.cachePath(epoch), e.raw); err != nil {
		c.log.Warn("write document cache", "err", err)
	}
	c.pruneFiles(newest)
}

func (c *Client) cachePath(epoch uint64) string {
	return filepath.Join(c.cacheDir, "document-"+strconv.FormatUint(epoch, 10)+".cbor")
}

func (c *Client) pruneFiles(newest uint64) {
	names, _ := filepath.Glob(filepath.Join(c.cacheDir, "document-*.cbor"))
	for _, n := range names {
		s := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(n), "document-"), ".cbor")
		ep, err := strconv.ParseUint(s, 10, 64)
		if err == nil && ep+uint64(c.keep) <= newest {
			os.Remove(n)
		}
	}
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".document-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// UploadError reports the authorities that did not accept a descriptor.
type UploadError struct {
	// Accepted is how many authorities accepted the descriptor.
	Accepted int
	// Failed maps an authority's name to why it did not.
	Failed map[string]error
}

func (e *UploadError) Error() string {
	var parts []string
	for _, a := range sortedKeys(e.Failed) {
		parts = append(parts, a+": "+e.Failed[a].Error())
	}
	return fmt.Sprintf("upload descriptor: accepted by %d, failed at %d: %s", e.Accepted, len(e.Failed), strings.Join(parts, "; "))
}

// Unwrap returns the per-authority errors.
func (e *UploadError) Unwrap() []error {
	var out []error
	for _, a := range sortedKeys(e.Failed) {
		out = append(out, e.Failed[a])
	}
	return out
}

func sortedKeys(m map[string]error) []string { return slices.Sorted(maps.Keys(m)) }

// RejectedError is an authority's refusal of an upload: the HTTP status and
// the authority's short reason.
type RejectedError struct {
	Status int
	Reason string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("rejected with status %d: %s", e.Status, e.Reason)
}

// Unwrap returns ErrRejected.
func (e *RejectedError) Unwrap() error { return ErrRejected }

// Upload sends the signed descriptor to every authority at once. It returns
// nil if all accepted it, else an *UploadError naming each failure.
func (c *Client) Upload(ctx context.Context, sd *pki.SignedDescriptor) error {
	body, err := sd.MarshalBinary()
	if err != nil {
		return fmt.Errorf("upload descriptor: %w", err)
	}
	errs := make([]error, len(c.auths))
	var wg sync.WaitGroup
	for i, a := range c.auths {
		wg.Go(func() { errs[i] = c.upload(ctx, a, body) })
	}
	wg.Wait()
	ue := &UploadError{Failed: make(map[string]error)}
	for i, err := range errs {
		if err == nil {
			ue.Accepted++
			continue
		}
		name := c.auths[i].Name
		if name == "" || ue.Failed[name] != nil {
			name = c.auths[i].Address
		}
		ue.Failed[name] = err
	}
	if len(ue.Failed) == 0 {
		return nil
	}
	return ue
}

func (c *Client) upload(ctx context.Context, a Authority, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.URL(DescriptorPath), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/cbor")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	reason, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return &RejectedError{Status: resp.StatusCode, Reason: strings.TrimSpace(strings.ToValidUTF8(string(reason), "?"))}
}
