package dirclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/epoch"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
)

const testEpoch = 7

// fakeAuthority serves one fixed answer for every document request and
// counts requests.
type fakeAuthority struct {
	srv   *httptest.Server
	hits  atomic.Int32
	posts atomic.Int32
}

func newFake(t *testing.T, status int, body []byte) *fakeAuthority {
	f := &fakeAuthority{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == DescriptorPath {
			f.posts.Add(1)
			b, _ := io.ReadAll(r.Body)
			if _, err := pki.VerifyDescriptor(b); err != nil {
				http.Error(w, "bad_signature: no", http.StatusForbidden)
				return
			}
			w.WriteHeader(status)
			w.Write([]byte("late: the vote is made\n"))
			return
		}
		f.hits.Add(1)
		if r.URL.Path != DocumentPath+"7" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

var authNames = []string{"auth-a", "auth-b", "auth-c"}

func authKeys() []*keys.IdentityPrivateKey {
	var out []*keys.IdentityPrivateKey
	for _, n := range authNames {
		out = append(out, pkitest.Identity(n))
	}
	return out
}

// signedDoc returns the encoded document for epoch e signed by the first n
// authorities.
func signedDoc(t *testing.T, e uint64, n int) []byte {
	doc, _ := pkitest.Network(e, 3, 1, 1)
	var signers []pki.Signer
	for _, k := range authKeys()[:n] {
		signers = append(signers, k)
	}
	raw, err := pkitest.Sign(doc, signers...).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func client(t *testing.T, cacheDir string, fakes ...*fakeAuthority) *Client {
	t.Helper()
	var auths []Authority
	for i, f := range fakes {
		auths = append(auths, Authority{Name: authNames[i], IdentityKey: authKeys()[i].Public(), Address: f.srv.URL})
	}
	c, err := New(Config{Authorities: auths, CacheDir: cacheDir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDocumentFromAnyAuthority(t *testing.T) {
	good := signedDoc(t, testEpoch, 2)
	for range 10 { // random order: whichever is asked first, the good one wins
		c := client(t, "",
			newFake(t, http.StatusNotFound, nil),
			newFake(t, http.StatusOK, []byte("garbage")),
			newFake(t, http.StatusOK, good))
		doc, raw, err := c.Document(context.Background(), testEpoch)
		if err != nil {
			t.Fatal(err)
		}
		if doc.Epoch != testEpoch || string(raw) != string(good) {
			t.Fatal("wrong document")
		}
	}
}

func TestDocumentThreshold(t *testing.T) {
	for _, tc := range []struct {
		signers int
		want    error
	}{{1, pki.ErrNotEnoughSignatures}, {2, nil}, {3, nil}} {
		raw := signedDoc(t, testEpoch, tc.signers)
		f := newFake(t, http.StatusOK, raw)
		c := client(t, "", f, f, f)
		_, _, err := c.Document(context.Background(), testEpoch)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%d of 3 signatures: got %v, want %v", tc.signers, err, tc.want)
		}
	}
}

func TestDocumentWrongEpochAndNotFound(t *testing.T) {
	f := newFake(t, http.StatusOK, signedDoc(t, testEpoch+1, 3))
	if _, _, err := client(t, "", f, f, f).Document(context.Background(), testEpoch); !errors.Is(err, pki.ErrWrongEpoch) {
		t.Errorf("document for another epoch: %v", err)
	}
	nf := newFake(t, http.StatusNotFound, nil)
	if _, _, err := client(t, "", nf, nf, nf).Document(context.Background(), testEpoch); !errors.Is(err, ErrNotFound) {
		t.Errorf("no document anywhere: %v", err)
	}
}

func TestDocumentCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	raw := signedDoc(t, testEpoch, 3)
	f := newFake(t, http.StatusOK, raw)
	c := client(t, dir, f, f, f)
	for range 3 {
		if _, _, err := c.Document(context.Background(), testEpoch); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.hits.Load(); n != 1 {
		t.Errorf("%d requests for one document, want 1", n)
	}
	if _, _, ok := c.Cached(testEpoch); !ok {
		t.Error("Cached: not held")
	}
	st, err := os.Stat(filepath.Join(dir, "document-7.cbor"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v %v", st, err)
	}

	// A new client (a restarted node) answers from the file, without asking.
	down := newFake(t, http.StatusServiceUnavailable, nil)
	c2 := client(t, dir, down, down, down)
	if _, _, err := c2.Document(context.Background(), testEpoch); err != nil {
		t.Fatalf("from the cache file: %v", err)
	}
	if down.hits.Load() != 0 {
		t.Error("asked the authorities despite the cache file")
	}

	// A tampered cache file is not trusted.
	tampered := append([]byte(nil), raw...)
	tampered[len(tampered)/2] ^= 1
	os.WriteFile(filepath.Join(dir, "document-7.cbor"), tampered, 0o600)
	c3 := client(t, dir, down, down, down)
	if _, _, err := c3.Document(context.Background(), testEpoch); err == nil {
		t.Error("tampered cache file accepted")
	}
}

func TestUploadReportsEachAuthority(t *testing.T) {
	node := pkitest.NewNode("mix-x", pki.RoleMix, testEpoch, "tcp://127.0.0.1:1")
	ok := newFake(t, http.StatusOK, nil)
	late := newFake(t, http.StatusConflict, nil)
	dead := newFake(t, http.StatusOK, nil)
	dead.srv.Close()
	c := client(t, "", ok, late, dead)
	err := c.Upload(context.Background(), node.Signed)
	var ue *UploadError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v, want an *UploadError", err)
	}
	if ue.Accepted != 1 || len(ue.Failed) != 2 || ue.Failed["auth-b"] == nil || ue.Failed["auth-c"] == nil {
		t.Errorf("upload error: %+v", ue)
	}
	var rej *RejectedError
	if !errors.As(ue.Failed["auth-b"], &rej) || rej.Status != http.StatusConflict || !strings.HasPrefix(rej.Reason, "late") {
		t.Errorf("auth-b: %v", ue.Failed["auth-b"])
	}
	if !errors.Is(err, ErrRejected) {
		t.Error("errors.Is(err, ErrRejected) = false")
	}
	if err := client(t, "", ok, ok, ok).Upload(context.Background(), node.Signed); err != nil {
		t.Errorf("all accept: %v", err)
	}
}

func TestNewChecksThreshold(t *testing.T) {
	auths := []Authority{
		{Name: "a", IdentityKey: authKeys()[0].Public(), Address: "a:1"},
		{Name: "b", IdentityKey: authKeys()[1].Public(), Address: "b:1"},
		{Name: "c", IdentityKey: authKeys()[2].Public(), Address: "c:1"},
	}
	for _, th := range []int{1, 4} {
		if _, err := New(Config{Authorities: auths, Threshold: th}, nil, nil); err == nil {
			t.Errorf("threshold %d of 3 accepted", th)
		}
	}
	c, err := New(Config{Authorities: auths}, nil, nil)
	if err != nil || c.Threshold() != 2 {
		t.Errorf("default threshold: %v %v", c, err)
	}
	if _, err := New(Config{}, nil, nil); err == nil {
		t.Error("no authorities accepted")
	}
	if got := (Authority{Address: "h:1"}).URL("/x"); got != "http://h:1/x" {
		t.Errorf("URL: %s", got)
	}
	if got := (Authority{Address: "https://h/"}).URL("/x"); got != "https://h/x" {
		t.Errorf("URL: %s", got)
	}
}

func TestCurrent(t *testing.T) {
	const period = time.Minute
	s, err := epoch.New(time.Now().Add(-testEpoch*period-period/2), period, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := newFake(t, http.StatusOK, signedDoc(t, testEpoch, 3)) // serves epoch 7 only
	cur, next, err := client(t, "", f, f, f).Current(context.Background(), s)
	if err != nil || cur == nil || cur.Epoch != testEpoch || next != nil {
		t.Errorf("Current: %v %v %v", cur, next, err)
	}
}
