// Package graphapi serves the Microsoft Graph cloud-communications API
// (/v1.0/communications/calls and its legacy /app/calls alias, and
// /users/{userId}/onlineMeetings) over HTTP:
// authentication, OData JSON in and out, Graph error bodies, request ids,
// body limits, gzip request bodies and throttling. Call semantics live in
// callctl; this package only translates.
package graphapi

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/switchboard-voice/switchboard/internal/admission"
	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/identity"
	"github.com/switchboard-voice/switchboard/internal/ids"
	"github.com/switchboard-voice/switchboard/internal/meetings"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Options configure the API.
type Options struct {
	Config     *config.Config
	Identity   *identity.Service
	Calls      *callctl.Manager
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock used for error dates; time.Now when nil.
	Now func() time.Time
	// Meetings serves onlineMeetings; their routes are not mounted when nil.
	Meetings *meetings.Store
	// Admission, when not nil, is asked before a new call is created (the
	// node's overload limits) and counts the refusals of a draining node.
	Admission *admission.Controller
	// Nodes, when not nil, is how many nodes serve the deployment now:
	// http.requestsPerSecond and http.burst are the application's across
	// them, so each node allows its share. Sharing, rather than counting
	// every request in the store, keeps a request free of a round trip;
	// it is exact when the load balancer spreads a bot's requests evenly.
	Nodes func() int
	// Node is this node's id and NodeURL where another node's HTTP
	// listener is reached (its claim in sb_nodes): a media socket of a
	// call another node carries is proxied there. Without NodeURL such a
	// socket is refused 503.
	Node    string
	NodeURL func(ctx context.Context, node string) (string, error)
}

// Server is the Graph API's http.Handler. It is safe for concurrent use.
type Server struct {
	o        Options
	cfg      *config.Config
	log      *slog.Logger
	mux      *Router
	ready    atomic.Bool
	draining atomic.Bool

	limMu    sync.Mutex
	limiters map[string]*rate.Limiter

	latency *prometheus.HistogramVec
	// nodes carries media sockets proxied to the nodes that own their
	// calls (mediaproxy.go).
	nodes    *http.Transport
	errorLog *log.Logger
}

// New builds the API. Routes of other packages (identity's token endpoint,
// the simulator) are added with Mux().
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, cfg: o.Config, log: o.Logger, mux: NewRouter(), limiters: map[string]*rate.Limiter{},
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_http_request_duration_seconds", Help: "Graph API request latency by route and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "status"}),
	}
	if o.Config != nil {
		s.nodes = nodeTransport(o.Config.HTTP.PublicURL)
	}
	s.errorLog = slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn)
	if o.Registerer != nil {
		_ = o.Registerer.Register(s.latency)
	}
	for _, base := range []string{"/v1.0/communications/calls", "/beta/communications/calls", "/v1.0/app/calls", "/beta/app/calls"} {
		s.route(base, "calls", s.calls)
		s.route(base+"/{id}", "call", s.call)
		s.route(base+"/{id}/{action}", "action", s.action)
		s.route(base+"/{id}/operations/{op}", "operation", s.operation)
		s.route(base+"/{id}/participants", "participants", s.participants)
		s.route(base+"/{id}/participants/{pid}", "participant", s.participant)
		s.route(base+"/{id}/participants/{pid}/{action}", "participantAction", s.participantAction)
		s.mux.HandleFunc("GET "+base+"/{id}/media", s.mediaSocket) // not s.route: the upgrade needs the bare ResponseWriter
	}
	s.meetingRoutes()
	s.mux.HandleFunc("GET /healthz", s.health)
	s.mux.HandleFunc("/", s.unknown)
	return s
}

// Mux is where other packages register their routes; it lists every
// pattern registered on it.
func (s *Server) Mux() *Router { return s.mux }

// SetReady marks the server ready (healthz 200).
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// Drain makes new calls (POST /communications/calls) answer 503 with
// Retry-After, and healthz 503, for shutdown; the live calls stay
// reachable so their bots can drive them until they end.
func (s *Server) Drain() { s.draining.Store(true); s.ready.Store(false) }

// ServeHTTP stamps request ids on every response and serves the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rid := ids.New()
	h := w.Header()
	h.Set("request-id", rid)
	if c := r.Header.Get("client-request-id"); c != "" && len(c) <= 128 {
		h.Set("client-request-id", c)
	} else {
		h.Set("client-request-id", rid)
	}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", p)
			s.writeError(w, r, errs.E(errs.Internal, "An internal server error occurred."))
		}
	}()
	s.mux.ServeHTTP(w, r)
}

type handler func(w http.ResponseWriter, r *http.Request, c callctl.Caller) error

// route registers an authenticated Graph route. Methods are dispatched by
// the handler so a wrong one gets a Graph-shaped 405.
func (s *Server) route(pattern, name string, h handler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		err := s.serve(sw, r, h)
		if err != nil {
			s.writeError(sw, r, err)
		}
		s.latency.WithLabelValues(name, strconv.Itoa(sw.status)).Observe(time.Since(start).Seconds())
	})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, h handler) error {
	p, err := s.o.Identity.Authenticate(r)
	if err != nil {
		return err
	}
	if err := s.throttle(p.AppID + "|" + p.TenantID); err != nil {
		return err
	}
	if r.Body != nil && r.Body != http.NoBody {
		body, err := s.body(w, r)
		if err != nil {
			return err
		}
		r.Body = body
	}
	return h(w, r, callctl.Caller{TenantID: p.TenantID, AppID: p.AppID, Roles: p.Roles})
}

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

// throttleError carries how long a throttled client should wait.
type throttleError struct {
	err   *errs.Error
	after time.Duration
}

func (e *throttleError) Error() string { return e.err.Error() }
func (e *throttleError) Unwrap() error { return e.err }

func (s *Server) throttle(key string) error {
	s.limMu.Lock()
	nodes := 1
	if s.o.Nodes != nil {
		nodes = max(1, s.o.Nodes())
	}
	limit, burst := rate.Limit(s.cfg.HTTP.RequestsPerSecond/float64(nodes)), max(1, s.cfg.HTTP.Burst/nodes)
	lim := s.limiters[key]
	if lim == nil {
		lim = rate.NewLimiter(limit, burst)
		s.limiters[key] = lim
	} else if lim.Limit() != limit || lim.Burst() != burst {
		lim.SetLimit(limit) // the nodes serving the deployment changed
		lim.SetBurst(burst)
	}
	s.limMu.Unlock()
	res := lim.Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return &throttleError{errs.E(errs.Throttled, "Please retry again later."), d}
	}
	return nil
}

// body applies Content-Encoding and the size limit (after decoding).
func (s *Server) body(w http.ResponseWriter, r *http.Request) (io.ReadCloser, error) {
	var rc io.ReadCloser = r.Body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(http.MaxBytesReader(w, r.Body, s.cfg.HTTP.MaxBodyBytes))
		if err != nil {
			if errors.Is(err, io.EOF) {
				return http.NoBody, nil
			}
			return nil, errs.E(errs.BadRequest, "The request body is not valid gzip: %v", err)
		}
		rc = zr
	default:
		return nil, errs.E(errs.UnsupportedMedia, "Content-Encoding %q is not supported; send identity or gzip.", enc)
	}
	return http.MaxBytesReader(w, rc, s.cfg.HTTP.MaxBodyBytes), nil
}

// decode reads a JSON body into v. An empty body leaves v as is; unknown
// properties are tolerated; wrongly typed ones are a 400 naming the field.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return errs.E(errs.UnsupportedMedia, "Content-Type %q is not supported; send application/json.", ct)
		}
	}
	if r.Body == nil {
		return nil
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errs.E(errs.TooLarge, "The request body exceeds %d bytes.", mbe.Limit)
		}
		if strings.Contains(err.Error(), "gzip") || strings.Contains(err.Error(), "flate") {
			return errs.E(errs.BadRequest, "The request body is not valid gzip: %v", err)
		}
		return errs.Wrap(errs.BadRequest, err, "The request body could not be read.")
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return jsonError(err)
	}
	return nil
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(body)"
		}
		return errs.E(errs.BadRequest, "Invalid value for property '%s': expected %s, got JSON %s.", field, jsonKind(te.Type.Kind().String()), te.Value)
	case errors.As(err, &se):
		return errs.E(errs.BadRequest, "The request body is not valid JSON: %v (at byte %d).", se, se.Offset)
	}
	return errs.E(errs.BadRequest, "The request body is not valid: %v", err)
}

func jsonKind(k string) string {
	switch k {
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "int", "int32", "int64", "uint", "uint64", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	}
	return "a " + k
}

// writeJSON writes v as OData JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes the Graph error body for err, with the headers its
// kind calls for.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var inner graph.InnerError
	switch errs.KindOf(err) {
	case errs.Unauthenticated:
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="", authorization_uri="%s/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`, s.cfg.HTTP.PublicURL))
	case errs.Throttled:
		after := time.Second
		var te *throttleError
		if errors.As(err, &te) {
			after = te.after
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(after.Seconds()))))
		inner.Code, inner.Status, inner.Message = "429", "429", "Please retry after"
	case errs.Unavailable:
		after := "5"
		var r *admission.Refusal
		if errors.As(err, &r) {
			after = r.RetryAfterSeconds()
		}
		w.Header().Set("Retry-After", after)
	case errs.Internal:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	errs.WriteGraph(w, err, s.o.Now(), &inner)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting or draining"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) unknown(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, errs.E(errs.NotFound, "Resource not found for the segment '%s'.", lastSegment(r.URL.Path)))
}

func lastSegment(p string) string {
	p = strings.TrimRight(p, "/")
	return p[strings.LastIndex(p, "/")+1:]
}
