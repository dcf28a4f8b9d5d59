package mixtest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/chorus-mixnet/chorus/mix/keys"
	"github.com/chorus-mixnet/chorus/mix/mixtest"
	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
	"github.com/chorus-mixnet/chorus/pki/pkitest"
)

// TestDirectory: no document until every declared node has a descriptor;
// then one with each node in its place, signed by the test authority, the
// same on every ask, and closed to uploads.
func TestDirectory(t *testing.T) {
	ctx := context.Background()
	const e = 10
	d := mixtest.NewDirectory(1)
	d.Expect("provider-0", pki.ProviderLayer)
	d.AddStatic("mix-0-0", 0, "127.0.0.1:1", e-1, e+1)
	d.AddStatic("provider-1", pki.ProviderLayer, "127.0.0.1:2", e-1, e+1)
	if _, _, err := d.Document(ctx, e); !errors.Is(err, dirclient.ErrNotFound) {
		t.Fatalf("before the upload: %v, want ErrNotFound", err)
	}
	if d.Threshold() != 1 {
		t.Errorf("threshold %d", d.Threshold())
	}
	prov := pkitest.NewNode("provider-0", pki.RoleProvider, e, "tcp://127.0.0.1:3")
	if err := d.Upload(ctx, prov.Signed); err != nil {
		t.Fatal(err)
	}
	doc, raw, err := d.Document(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Layers) != 1 || len(doc.Layers[0]) != 1 || doc.Layers[0][0].Name != "mix-0-0" ||
		len(doc.Providers) != 2 || doc.Providers[0].Name != "provider-0" || doc.Providers[1].Name != "provider-1" ||
		doc.Geometry != pkitest.Geometry(1) || doc.Parameters != pkitest.Parameters() {
		t.Errorf("document: %+v", doc)
	}
	authority := pkitest.Identity(mixtest.AuthorityName).Public()
	if v, err := pki.VerifyDocument(raw, []keys.IdentityPublicKey{authority}, 1); err != nil || v.Epoch != e {
		t.Errorf("the signed document: %v", err)
	}
	if again, raw2, _ := d.Document(ctx, e); again != doc || string(raw2) != string(raw) {
		t.Error("a second ask made another document")
	}
	var rej *dirclient.RejectedError
	if err := d.Upload(ctx, prov.Signed); !errors.As(err, &rej) || rej.Status != 409 {
		t.Errorf("upload after the document: %v, want a 409", err)
	}
	bad := pkitest.NewNode("provider-0", pki.RoleProvider, e+1, "tcp://127.0.0.1:3")
	bad.Signed.Signature[0] ^= 1
	if err := d.Upload(ctx, bad.Signed); err == nil {
		t.Error("a descriptor with a bad signature was accepted")
	}
	if _, _, err := d.Document(ctx, e+2); !errors.Is(err, dirclient.ErrNotFound) {
		t.Errorf("beyond the static nodes' epochs: %v, want ErrNotFound", err)
	}
}

// recorder is a testing.TB whose Errorf is recorded, not failed.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) { r.errors = append(r.errors, format) }

// TestRun: stop cancels run, then closes, and returns run's error before
// close's; it runs once however often it is called; the test's end stops
// what the test did not, and reports an error.
func TestRun(t *testing.T) {
	var closed int
	// (At the end of the test, the stop that runs again reports run's
	// error to a recorder, not the test.)
	stop := mixtest.Run(&recorder{TB: t}, func(ctx context.Context) error { <-ctx.Done(); return errors.New("run") },
		func() error { closed++; return errors.New("close") })
	if err := stop(); err == nil || err.Error() != "run" || closed != 1 {
		t.Errorf("stop: %v, closed %d times", err, closed)
	}
	if err := stop(); err == nil || err.Error() != "run" || closed != 1 {
		t.Errorf("second stop: %v, closed %d times", err, closed)
	}

	rec := &recorder{TB: t}
	t.Run("left running", func(t *testing.T) {
		rec.TB = t
		mixtest.Run(rec, func(ctx context.Context) error { <-ctx.Done(); return nil },
			func() error { closed++; return errors.New("close") })
	})
	if closed != 2 || len(rec.errors) != 1 {
		t.Errorf("at the end of the test: closed %d times, errors %q", closed, rec.errors)
	}
}
