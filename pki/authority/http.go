package authority

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/chorus-mixnet/chorus/pki"
	"github.com/chorus-mixnet/chorus/pki/dirclient"
)

// The HTTP API. Every body is a signed CBOR object (pki), so its integrity
// does not depend on the transport.
//
//	POST /v1/descriptor         a node uploads its signed descriptor
//	GET  /v1/document/{epoch}   the published signed document; 404 until then
//	GET  /v1/vote/{epoch}       this authority's signed vote, for its peers
//	GET  /v1/reveal/{epoch}     this authority's signed reveal, once revealed
//	GET  /v1/signature/{epoch}  the document this authority computed, with the
//	                            signatures it holds over it, for its peers
const (
	pathVote      = "/v1/vote/"
	pathReveal    = "/v1/reveal/"
	pathSignature = "/v1/signature/"
)

const contentType = "application/cbor"

func (a *Authority) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+dirclient.DescriptorPath, a.handleDescriptor)
	mux.HandleFunc("GET "+dirclient.DocumentPath+"{epoch}", a.handleGet(func(T uint64) []byte {
		return a.store.get(kindPublished, T, subject{})
	}))
	mux.HandleFunc("GET "+pathVote+"{epoch}", a.handleGet(func(T uint64) []byte {
		return a.store.get(kindVote, T, a.self)
	}))
	mux.HandleFunc("GET "+pathReveal+"{epoch}", a.handleGet(func(T uint64) []byte {
		return a.store.get(kindReveal, T, a.self)
	}))
	mux.HandleFunc("GET "+pathSignature+"{epoch}", a.handleGet(func(T uint64) []byte {
		sd, ok := a.signedDocument(T)
		if !ok {
			return nil
		}
		raw, err := sd.MarshalBinary()
		if err != nil {
			return nil
		}
		return raw
	}))
	return mux
}

func (a *Authority) handleGet(get func(T uint64) []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		T, err := strconv.ParseUint(r.PathValue("epoch"), 10, 64)
		if err != nil {
			http.Error(w, "bad epoch", http.StatusBadRequest)
			return
		}
		body := get(T)
		if body == nil {
			http.Error(w, "not available", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}
}

// rejection is a refused upload: the counted reason, the HTTP status and the
// message for the node.
type rejection struct {
	reason string
	status int
	msg    string
}

func (e *rejection) Error() string { return e.msg }

func reject(reason string, status int, format string, args ...any) *rejection {
	return &rejection{reason: reason, status: status, msg: fmt.Sprintf(format, args...)}
}

func (a *Authority) handleDescriptor(w http.ResponseWriter, r *http.Request) {
	status, msg := http.StatusOK, "accepted"
	if err := a.acceptDescriptor(w, r); err != nil {
		var rej *rejection
		if !errors.As(err, &rej) {
			rej = reject(reasonInternal, http.StatusInternalServerError, "internal error")
			a.log.Error("store descriptor", "err", err)
		}
		a.m.rejected.WithLabelValues(rej.reason).Inc()
		a.log.Debug("descriptor rejected", "reason", rej.reason, "err", rej.msg)
		status, msg = rej.status, rej.reason+": "+rej.msg
	} else {
		a.m.accepted.Inc()
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, msg+"\n")
}

func (a *Authority) acceptDescriptor(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength > pki.MaxDescriptorSize {
		return reject(reasonTooLarge, http.StatusRequestEntityTooLarge, "body over %d bytes", pki.MaxDescriptorSize)
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, pki.MaxDescriptorSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return reject(reasonTooLarge, http.StatusRequestEntityTooLarge, "body over %d bytes", pki.MaxDescriptorSize)
		}
		return reject(reasonMalformed, http.StatusBadRequest, "read body")
	}
	d, err := pki.VerifyDescriptor(raw)
	switch {
	case errors.Is(err, pki.ErrBadSignature):
		return reject(reasonBadSignature, http.StatusForbidden, "bad signature")
	case errors.Is(err, pki.ErrInvalid):
		return reject(reasonInvalid, http.StatusBadRequest, "%v", err)
	case err != nil:
		return reject(reasonMalformed, http.StatusBadRequest, "%v", err)
	}
	if !a.cfg.allowed(d.IdentityKey) {
		return reject(reasonUnknownNode, http.StatusForbidden, "node not allowed by this authority")
	}

	now := a.clock.Now()
	cur := a.sched.At(now)
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case d.Epoch < cur || d.Epoch > cur+2:
		return reject(reasonWrongEpoch, http.StatusConflict, "descriptor for epoch %d; accepting epochs %d to %d", d.Epoch, cur, cur+2)
	case a.voted(d.Epoch) || a.published(d.Epoch) || a.failed(d.Epoch):
		return reject(reasonLate, http.StatusConflict, "the vote for epoch %d is already made", d.Epoch)
	}
	old := a.store.get(kindDescriptor, d.Epoch, d.ID)
	if bytes.Equal(old, raw) {
		return nil
	}
	if old == nil && a.store.count(kindDescriptor, d.Epoch) >= pki.MaxNodes {
		return reject(reasonInvalid, http.StatusServiceUnavailable, "too many nodes for epoch %d", d.Epoch)
	}
	if err := a.store.put(kindDescriptor, d.Epoch, d.ID, raw); err != nil {
		return err
	}
	a.lastDescriptor[d.Epoch] = now
	return nil
}
