package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chorus-mixnet/chorus/client/message"
)

// ShutdownGrace is how long Serve lets in-flight requests finish once its
// context is done; long-polls and pings are ended at once.
const ShutdownGrace = 5 * time.Second

// Server serves the API over a listener (usually from Listen). Set the
// fields, then call Serve; a Server serves one listener once.
type Server struct {
	// Backend answers the requests. Required.
	Backend Backend
	// Logger gets one debug line per request (route, status, duration:
	// never the path, which may hold a contact name) and backend errors
	// that map to 500. Nil discards.
	Logger *slog.Logger
	// MaxMessageSize bounds a sent message; 0 means
	// message.DefaultMaxMessageSize.
	MaxMessageSize int
	// MaxWait bounds a long-poll's wait; 0 means DefaultMaxWait.
	MaxWait time.Duration
}

// Serve answers requests on ln until ctx ends, then shuts down: it ends
// long-polls and pings at once (they answer 503), lets other requests
// finish for up to ShutdownGrace, then cancels them, and returns once
// every handler has returned. It returns nil after a shutdown caused by
// ctx, else the error that stopped the server. Serve closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.Backend == nil {
		panic("api: Server.Backend is nil")
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// hard ends every request; soft ends only the waits.
	hard, hardStop := context.WithCancel(context.Background())
	defer hardStop()
	soft, softStop := context.WithCancel(context.Background())
	defer softStop()

	h := &handler{
		backend: s.Backend,
		log:     log,
		maxMsg:  s.MaxMessageSize,
		maxWait: s.MaxWait,
		soft:    soft,
	}
	if h.maxMsg <= 0 {
		h.maxMsg = message.DefaultMaxMessageSize
	}
	if h.maxWait <= 0 {
		h.maxWait = DefaultMaxWait
	}
	srv := &http.Server{
		Handler:           h.routes(),
		BaseContext:       func(net.Listener) context.Context { return hard },
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		// No WriteTimeout: long-polls and pings take as long as they take.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	var serveErr error
	select {
	case serveErr = <-errc:
		srv.Close()
	case <-ctx.Done():
		softStop()
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		cancel()
		serveErr = <-errc
	}
	hardStop()
	h.inflight.closeAndWait()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve api: %w", serveErr)
	}
	return nil
}

type handler struct {
	backend  Backend
	log      *slog.Logger
	maxMsg   int
	maxWait  time.Duration
	soft     context.Context
	inflight gate
}

// route is one path with its handlers by method.
type route struct {
	path    string
	methods map[string]http.HandlerFunc
	// query reports whether the route takes a query string.
	query bool
}

func (h *handler) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range []route{
		{path: "/v1/status", methods: map[string]http.HandlerFunc{"GET": h.status}},
		{path: "/v1/identity", methods: map[string]http.HandlerFunc{"GET": h.identity}},
		{path: "/v1/contacts", methods: map[string]http.HandlerFunc{"GET": h.contacts, "POST": h.addContact}},
		{path: "/v1/contacts/{name}", methods: map[string]http.HandlerFunc{"DELETE": h.removeContact}},
		{path: "/v1/messages", methods: map[string]http.HandlerFunc{"POST": h.send}},
		{path: "/v1/messages/{id}", methods: map[string]http.HandlerFunc{"GET": h.messageStatus}},
		{path: "/v1/inbox", methods: map[string]http.HandlerFunc{"GET": h.inbox}, query: true},
		{path: "/v1/inbox/{seq}", methods: map[string]http.HandlerFunc{"DELETE": h.deleteMessage}},
		{path: "/v1/inbox/{seq}/read", methods: map[string]http.HandlerFunc{"POST": h.markRead}},
		{path: "/v1/ping", methods: map[string]http.HandlerFunc{"POST": h.ping}},
	} {
		var allow []string
		for method, fn := range rt.methods {
			mux.Handle(method+" "+rt.path, h.wrap(fn, rt.query))
			allow = append(allow, method)
			if method == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
		slices.Sort(allow)
		allowed := strings.Join(allow, ", ")
		// The same path without a method catches every other method.
		mux.Handle(rt.path, h.wrap(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allowed)
			h.fail(w, r, fmt.Errorf("%w: use %s", ErrMethod, allowed))
		}, true))
	}
	mux.Handle("/", h.wrap(func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, fmt.Errorf("%w: no such route", ErrNotFound))
	}, true))
	return mux
}

// gate counts handlers in flight and, once closed, turns new ones away,
// so that Serve can wait for the last one.
type gate struct {
	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
}

func (g *gate) enter() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

func (g *gate) leave() { g.wg.Done() }

func (g *gate) closeAndWait() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}

// statusWriter remembers the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// wrap counts the request in flight, refuses a query string where the
// route takes none, and logs the route (never the path) at debug.
func (h *handler) wrap(fn http.HandlerFunc, query bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		if !h.inflight.enter() {
			h.fail(sw, r, fmt.Errorf("%w: chorusd is shutting down", ErrUnavailable))
			return
		}
		defer h.inflight.leave()
		if !query && r.URL.RawQuery != "" {
			h.fail(sw, r, invalid("this route takes no query parameters"))
		} else {
			fn(sw, r)
		}
		h.log.LogAttrs(r.Context(), slog.LevelDebug, "api request",
			slog.String("method", r.Method), slog.String("route", r.Pattern),
			slog.Int("status", sw.status), slog.Duration("took", time.Since(start)))
	})
}

// reply writes v as a JSON answer with the given status.
func (h *handler) reply(w http.ResponseWriter, status int, v any) {
	b, err := encodeJSON(v)
	if err != nil {
		h.log.Error("api encode answer", "err", err)
		status = http.StatusInternalServerError
		b, _ = encodeJSON(errorBody{Error: "internal error", Code: CodeInternal})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// classify maps an error to its status, code and the message the API
// client sees.
func classify(err error) (status int, code, msg string) {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.status, k.code, err.Error()
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return http.StatusGatewayTimeout, CodeTimeout, ErrTimeout.Error()
	}
	return http.StatusInternalServerError, CodeInternal, "internal error"
}

// fail writes err as a JSON error answer.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	// A backend that gave up because a context ended (the server or the
	// daemon stopping) answers 503.
	if errors.Is(err, context.Canceled) {
		if h.soft.Err() != nil {
			err = fmt.Errorf("%w: chorusd is shutting down", ErrUnavailable)
		} else {
			err = fmt.Errorf("%w: request canceled", ErrUnavailable)
		}
	}
	status, code, msg := classify(err)
	if status == http.StatusInternalServerError && r.Context().Err() == nil {
		h.log.LogAttrs(r.Context(), slog.LevelError, "api backend error",
			slog.String("route", r.Pattern), slog.Any("err", err))
	}
	h.reply(w, status, errorBody{Error: msg, Code: code})
}

// waitContext is r's context, also ended when the server starts to stop:
// for requests that wait on the network or for new messages.
func (h *handler) waitContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(h.soft, cancel)
	return ctx, func() { stop(); cancel() }
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	st, err := h.backend.Status(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, http.StatusOK, st)
}

func (h *handler) identity(w http.ResponseWriter, r *http.Request) {
	id, err := h.backend.Identity(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, http.StatusOK, id)
}

func (h *handler) contacts(w http.ResponseWriter, r *http.Request) {
	cs, err := h.backend.Contacts(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if cs == nil {
		cs = []Contact{}
	}
	h.reply(w, http.StatusOK, contactsResponse{Contacts: cs})
}

func (h *handler) addContact(w http.ResponseWriter, r *http.Request) {
	name, card, err := decodeAddContact(http.MaxBytesReader(w, r.Body, maxSmallBody))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.backend.AddContact(r.Context(), name, card); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) removeContact(w http.ResponseWriter, r *http.Request) {
	name, err := parseName(r.PathValue("name"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.backend.RemoveContact(r.Context(), name); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) send(w http.ResponseWriter, r *http.Request) {
	to, body, err := decodeSend(http.MaxBytesReader(w, r.Body, sendBodyLimit(h.maxMsg)), h.maxMsg)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	id, err := h.backend.Send(r.Context(), to, body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, http.StatusAccepted, sendResponse{ID: id})
}

func (h *handler) messageStatus(w http.ResponseWriter, r *http.Request) {
	id, err := parseMessageID(r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st, err := h.backend.MessageStatus(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, http.StatusOK, st)
}

func (h *handler) inbox(w http.ResponseWriter, r *http.Request) {
	q, err := parseInboxQuery(r.URL.RawQuery, h.maxWait)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var msgs []InboxMessage
	if q.Wait == 0 {
		msgs, err = h.backend.Inbox(r.Context(), q.After)
	} else {
		ctx, cancel := h.waitContext(r)
		wctx, wcancel := context.WithTimeout(ctx, q.Wait)
		msgs, err = h.backend.WaitInbox(wctx, q.After)
		// The wait ran out: an empty answer, not an error.
		if err != nil && errors.Is(wctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			msgs, err = nil, nil
		}
		wcancel()
		cancel()
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]InboxMessage, len(msgs))
	for i, m := range msgs {
		m.Text = textOf(m.Body)
		if m.Body == nil {
			m.Body = []byte{}
		}
		out[i] = m
	}
	h.reply(w, http.StatusOK, inboxResponse{Messages: out})
}

func (h *handler) markRead(w http.ResponseWriter, r *http.Request) {
	h.seqAction(w, r, h.backend.MarkRead)
}

func (h *handler) deleteMessage(w http.ResponseWriter, r *http.Request) {
	h.seqAction(w, r, h.backend.DeleteMessage)
}

func (h *handler) seqAction(w http.ResponseWriter, r *http.Request, fn func(context.Context, uint64) error) {
	seq, err := parseSeq(r.PathValue("seq"))
	if err != nil {
		h.fail(w, r, invalid("inbox sequence numbers are decimal"))
		return
	}
	if r.Method == http.MethodPost {
		if err := decodeEmpty(http.MaxBytesReader(w, r.Body, maxSmallBody)); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	if err := fn(r.Context(), seq); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) ping(w http.ResponseWriter, r *http.Request) {
	if err := decodeEmpty(http.MaxBytesReader(w, r.Body, maxSmallBody)); err != nil {
		h.fail(w, r, err)
		return
	}
	ctx, cancel := h.waitContext(r)
	defer cancel()
	rtt, err := h.backend.Ping(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, http.StatusOK, pingResponse{RTT: rtt.String()})
}
