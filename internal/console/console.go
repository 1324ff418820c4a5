// Package console serves /console, the operators' live view of the node:
// its calls and meetings, each call's timeline (state changes, roster
// changes, its legs' SIP requests and responses, media events such as
// prompts, recordings, tones and media failures, every notification
// delivery with its HTTP result), the end reason with its resultInfo and a
// plain-words explanation, and the call's recordings, playable in the
// page (served to operators without the bots' access tokens). The page is
// plain HTML, JavaScript and CSS embedded in the binary (no build step, no
// third-party code), updated over server-sent events at /console/events.
//
// Operators sign in with HTTP Basic credentials from console.users (not
// the bots' secrets); run the node behind HTTPS (http.tlsCert) outside a
// laptop, since Basic sends the password with every request. Wrong
// credentials count against the source address like wrong client secrets
// at the token endpoint (identity.tokenThrottle's limits). Nothing the
// console shows carries a secret: no callback URI query, no token, no
// bot secret, no digest password (CallSnapshot holds none of them).
//
// What it remembers is bounded: the live calls of this node, the last
// MaxEnded ended calls, MaxTimeline entries per call. It learns of calls
// through callctl's Observer seam (and its Tracer: SIP and media events),
// and of deliveries through the webhook outbox's Result callback; all
// only take a short lock and never wait for a reader: an SSE client whose buffer is full is disconnected
// (its browser reconnects and gets a fresh snapshot), counted in Dropped.
package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/internal/abuse"
	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/webhook"
)

// Path is where the page is served; its assets and events are under it.
const Path = "/console"

// Bounds of what the console remembers.
const (
	MaxEnded      = 100 // ended calls kept, oldest forgotten first
	MaxTimeline   = 128 // entries per call, oldest forgotten first
	MaxRecordings = 16  // recordings listed per call, oldest forgotten first
	subBuffer     = 256 // events queued per SSE client before it is dropped
	// Traces of calls the console has not seen created yet (a leg is
	// attached before the call's first step is stored) wait, bounded:
	// maxEarlyCalls calls, maxEarlyTraces each.
	maxEarlyCalls  = 64
	maxEarlyTraces = 8
)

//go:embed static
var static embed.FS

// Console is the operators' view of one node. Safe for concurrent use.
type Console struct {
	users map[string][32]byte // operator name → SHA-256 of the password
	apps  map[string]string   // app id → display name
	guard *abuse.Guard[netip.Addr]
	now   func() time.Time

	recs atomic.Pointer[recordingServer]

	mu    sync.Mutex
	calls map[string]*Call // live and remembered ended calls
	ended []string         // ended call ids, oldest first
	subs  map[*sub]struct{}
	// early holds traces of calls not yet created, oldest call first.
	early      map[string][]callctl.TraceEvent
	earlyOrder []string

	dropped atomic.Uint64 // SSE clients disconnected for reading too slowly
}

// Call is a call as the console shows it (JSON to the page).
type Call struct {
	ID           string                        `json:"id"`
	State        string                        `json:"state"`
	Direction    string                        `json:"direction"`
	MediaMode    string                        `json:"mediaMode"`
	AppID        string                        `json:"appId"`
	App          string                        `json:"app"`
	TenantID     string                        `json:"tenantId"`
	Meeting      string                        `json:"meeting,omitempty"`
	Group        bool                          `json:"group,omitempty"`
	Participants []callctl.ParticipantSnapshot `json:"participants"`
	Started      time.Time                     `json:"started"`
	Ended        *time.Time                    `json:"ended,omitempty"`
	End          *End                          `json:"end,omitempty"`
	Timeline     []Entry                       `json:"timeline"`
	Recordings   []Recording                   `json:"recordings,omitempty"`
	// Forgotten counts the oldest timeline entries dropped to keep it bounded.
	Forgotten int `json:"forgotten,omitempty"`

	// names are the queued notifications not yet delivered or dropped, by
	// id, in a few words (callctl.NotificationSnapshot).
	names map[string]string
}

// maxNames bounds a call's notifications waiting for their result; past
// it the oldest are not told apart (their results still show).
const maxNames = 128

// End is why a call ended.
type End struct {
	Code        int    `json:"code"`
	Subcode     int    `json:"subcode"`
	Message     string `json:"message"`
	Explanation string `json:"explanation"`
}

// Recording is a recording of a call, as the page lists it: URL plays it
// (an operator-authenticated console route; no access token).
type Recording struct {
	ID  string    `json:"id"`
	At  time.Time `json:"at"`
	URL string    `json:"url"`
}

// Entry is one line of a call's timeline.
type Entry struct {
	At time.Time `json:"at"`
	// Kind: created, state, participants, leg (what the far end did, as
	// call control saw it), sip (a SIP request or response of the call's
	// legs), media (prompts, recordings, tones, media failures), ended,
	// notification.
	Kind string `json:"kind"`
	Text string `json:"text"`
	// Failed marks a notification that was not delivered.
	Failed bool `json:"failed,omitempty"`
}

type sub struct {
	ch   chan []byte
	gone chan struct{}
	once sync.Once
}

func (s *sub) drop() { s.once.Do(func() { close(s.gone) }) }

// New returns the console for cfg, nil when no operator is configured
// (the console is off).
func New(cfg *config.Config) *Console {
	if len(cfg.Console.Users) == 0 {
		return nil
	}
	c := &Console{users: map[string][32]byte{}, apps: map[string]string{}, now: time.Now,
		calls: map[string]*Call{}, subs: map[*sub]struct{}{}, early: map[string][]callctl.TraceEvent{}}
	for _, u := range cfg.Console.Users {
		c.users[u.Name] = sha256.Sum256([]byte(u.Password))
	}
	for _, a := range cfg.Applications {
		c.apps[strings.ToLower(a.ID)] = a.DisplayName
	}
	t := cfg.Identity.TokenThrottle
	c.guard = abuse.New[netip.Addr](abuse.Limits{Rate: t.RequestsPerSecond, Burst: t.Burst,
		MaxFailures: t.MaxFailures, Window: t.FailureWindow.D(), BanTime: t.Lockout.D()}, time.Now)
	return c
}

// Dropped counts the SSE clients disconnected for reading too slowly.
func (c *Console) Dropped() uint64 { return c.dropped.Load() }

// ObserveCall is callctl's Observer: it runs on the call's actor and only
// takes the console's lock.
func (c *Console) ObserveCall(ev callctl.CallEvent) {
	s := ev.Call
	c.mu.Lock()
	defer c.mu.Unlock()
	call := c.calls[s.ID]
	if call == nil {
		call = &Call{ID: s.ID, Started: ev.At}
		c.calls[s.ID] = call
		if early, ok := c.early[s.ID]; ok {
			delete(c.early, s.ID)
			for _, t := range early {
				c.addTrace(call, t)
			}
		}
	} else if call.Ended != nil {
		return // already ended (an ended event seen twice)
	}
	call.State, call.Direction, call.MediaMode = s.State, s.Direction, s.MediaMode
	call.AppID, call.TenantID, call.Meeting, call.Group = s.AppID, s.TenantID, s.Meeting, s.Group
	call.App = c.apps[strings.ToLower(s.AppID)]
	call.Participants = s.Participants
	switch ev.Kind {
	case callctl.ObservedCreated:
		c.add(call, Entry{At: ev.At, Kind: ev.Kind, Text: fmt.Sprintf("call %s (%s, %s media), state %s", s.ID, s.Direction, s.MediaMode, s.State)})
	case callctl.ObservedState:
		c.add(call, Entry{At: ev.At, Kind: ev.Kind, Text: "state " + s.State})
	case callctl.ObservedNotified:
		if call.names == nil {
			call.names = map[string]string{}
		}
		for _, n := range ev.Notifications {
			if len(call.names) >= maxNames {
				clear(call.names)
			}
			call.names[n.ID] = n.Summary
		}
		return // nothing to show until delivered
	case callctl.ObservedLeg:
		c.add(call, Entry{At: ev.At, Kind: ev.Kind, Text: ev.Detail})
	case callctl.ObservedParticipants:
		c.add(call, Entry{At: ev.At, Kind: ev.Kind, Text: rosterText(s.Participants)})
	case callctl.ObservedEnded:
		at := ev.At
		call.Ended = &at
		e := &End{}
		if ri := s.ResultInfo; ri != nil {
			e = &End{Code: ri.Code, Subcode: ri.Subcode, Message: ri.Message}
		}
		e.Explanation = Explain(e.Code, e.Subcode)
		call.End = e
		c.add(call, Entry{At: ev.At, Kind: ev.Kind, Text: fmt.Sprintf("ended %d/%d: %s", e.Code, e.Subcode, e.Message)})
		c.ended = append(c.ended, s.ID)
		for len(c.ended) > MaxEnded {
			delete(c.calls, c.ended[0])
			c.ended = c.ended[1:]
		}
	}
	c.publish(call)
}

var _ callctl.Tracer = (*Console)(nil)

// Trace is callctl's Tracer: a SIP or media event of a call, added to its
// timeline. It runs on the goroutine where the event happened (a leg's,
// the call's actor) and only takes the console's lock.
func (c *Console) Trace(ev callctl.TraceEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	call := c.calls[ev.CallID]
	if call == nil {
		c.holdEarly(ev)
		return
	}
	c.addTrace(call, ev)
	c.publish(call)
}

// holdEarly keeps a trace of a call not yet created, bounded. Under c.mu.
func (c *Console) holdEarly(ev callctl.TraceEvent) {
	held, ok := c.early[ev.CallID]
	if !ok {
		// A call never created (or created on another node) is forgotten
		// with the oldest.
		for len(c.earlyOrder) > 0 && len(c.early) >= maxEarlyCalls {
			delete(c.early, c.earlyOrder[0])
			c.earlyOrder = c.earlyOrder[1:]
		}
		c.earlyOrder = slices.DeleteFunc(c.earlyOrder, func(id string) bool { _, ok := c.early[id]; return !ok })
		c.earlyOrder = append(c.earlyOrder, ev.CallID)
	}
	if len(held) < maxEarlyTraces {
		c.early[ev.CallID] = append(held, ev)
	}
}

// addTrace adds a trace to call's timeline, and a stored recording to its
// list. Under c.mu.
func (c *Console) addTrace(call *Call, ev callctl.TraceEvent) {
	c.add(call, Entry{At: ev.At, Kind: ev.Kind, Text: ev.Text})
	if ev.Recording == "" || slices.ContainsFunc(call.Recordings, func(r Recording) bool { return r.ID == ev.Recording }) {
		return
	}
	if len(call.Recordings) >= MaxRecordings {
		call.Recordings = slices.Delete(call.Recordings, 0, 1)
	}
	call.Recordings = append(call.Recordings, Recording{ID: ev.Recording, At: ev.At,
		URL: Path + "/calls/" + url.PathEscape(call.ID) + "/recordings/" + url.PathEscape(ev.Recording)})
}

// OnResult is the webhook outbox's Result callback: one delivery of one
// notification of a call, as its timeline shows it.
func (c *Console) OnResult(r webhook.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	call := c.calls[r.CallID]
	if call == nil {
		return // a call the console never saw, or one it forgot
	}
	target := safeURL(r.URL)
	what := "notification"
	if name, ok := call.names[r.ID]; ok {
		what = "notification (" + name + ")"
		delete(call.names, r.ID)
	}
	var text string
	if r.Delivered {
		text = fmt.Sprintf("%s delivered: HTTP %d from %s (%d attempt%s, %s)", what, r.Status, target, r.Attempts, plural(r.Attempts),
			r.Finished.Sub(r.Enqueued).Round(time.Millisecond))
	} else {
		why := "dropped"
		if r.Err != nil {
			why = strings.ReplaceAll(r.Err.Error(), r.URL, target)
		}
		status := "no HTTP answer"
		if r.Status != 0 {
			status = "last HTTP " + strconv.Itoa(r.Status)
		}
		text = fmt.Sprintf("%s NOT delivered to %s: %s after %d attempt%s: %s", what, target, status, r.Attempts, plural(r.Attempts), why)
	}
	at := r.Finished
	if at.IsZero() {
		at = c.now()
	}
	c.add(call, Entry{At: at, Kind: "notification", Text: text, Failed: !r.Delivered})
	c.publish(call)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// safeURL is u without its query, fragment or user info, which may hold a
// bot's token.
func safeURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(the bot's callback)"
	}
	return (&url.URL{Scheme: p.Scheme, Host: p.Host, Path: p.Path}).String()
}

func rosterText(ps []callctl.ParticipantSnapshot) string {
	if len(ps) == 0 {
		return "roster empty"
	}
	names := make([]string, 0, len(ps))
	for _, p := range ps {
		n := p.Name
		if n == "" {
			n = p.ID
		}
		if p.InLobby {
			n += " (lobby)"
		}
		if p.Muted {
			n += " (muted)"
		}
		names = append(names, n)
	}
	return "roster: " + strings.Join(names, ", ")
}

// add appends e to call's timeline, keeping it bounded. Under c.mu.
func (c *Console) add(call *Call, e Entry) {
	if len(call.Timeline) >= MaxTimeline {
		n := len(call.Timeline) - MaxTimeline + 1
		call.Timeline = append(call.Timeline[:0], call.Timeline[n:]...)
		call.Forgotten += n
	}
	call.Timeline = append(call.Timeline, e)
}

// publish sends call to every SSE client, never waiting. Under c.mu.
func (c *Console) publish(call *Call) {
	if len(c.subs) == 0 {
		return
	}
	data, err := json.Marshal(call)
	if err != nil {
		return
	}
	msg := sse("call", data)
	for s := range c.subs {
		select {
		case s.ch <- msg:
		default:
			delete(c.subs, s)
			s.drop()
			c.dropped.Add(1)
		}
	}
}

func sse(event string, data []byte) []byte {
	return []byte("event: " + event + "\ndata: " + string(data) + "\n\n")
}

// Snapshot returns the calls the console knows, live first, each newest
// first; copies.
func (c *Console) Snapshot() []Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshot()
}

func (c *Console) snapshot() []Call {
	out := make([]Call, 0, len(c.calls))
	for _, call := range c.calls {
		cp := *call
		cp.Timeline = append([]Entry(nil), call.Timeline...)
		cp.Recordings = slices.Clone(call.Recordings)
		out = append(out, cp)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Ended == nil) != (out[j].Ended == nil) {
			return out[i].Ended == nil
		}
		return out[i].Started.After(out[j].Started)
	})
	return out
}

// Routes mounts the console. With c nil (no operator configured) every
// route answers 403 saying the console is off.
func Routes(mux interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}, c *Console) {
	mux.HandleFunc("GET "+Path, c.guarded(c.page))
	mux.HandleFunc("GET "+Path+"/events", c.guarded(c.events))
	mux.HandleFunc("GET "+Path+"/static/{file}", c.guarded(c.asset))
	mux.HandleFunc("GET "+Path+"/calls/{call}/recordings/{id}", c.guarded(c.recording))
}

// RecordingServer serves a call's recording without its access token
// (record.Store).
type RecordingServer interface {
	ServeCallRecording(w http.ResponseWriter, r *http.Request, callID, id string)
}

type recordingServer struct{ RecordingServer }

// ServeRecordings lets operators play calls' recordings from rs. Safe to
// call on a nil Console (the console is off).
func (c *Console) ServeRecordings(rs RecordingServer) {
	if c != nil && rs != nil {
		c.recs.Store(&recordingServer{rs})
	}
}

// recording plays a recording the console lists on a call it knows: an
// operator hears the node's calls, but this route serves nothing else of
// the recordings bucket.
func (c *Console) recording(w http.ResponseWriter, r *http.Request) {
	callID, id := r.PathValue("call"), r.PathValue("id")
	c.mu.Lock()
	listed := false
	if call := c.calls[callID]; call != nil {
		listed = slices.ContainsFunc(call.Recordings, func(rec Recording) bool { return rec.ID == id })
	}
	c.mu.Unlock()
	rs := c.recs.Load()
	if !listed || rs == nil {
		http.Error(w, "No such recording of a call this console knows.", http.StatusNotFound)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	rs.ServeCallRecording(w, r, callID, id)
}

const realm = `Basic realm="Switchboard console", charset="UTF-8"`

func (c *Console) guarded(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if c == nil {
			http.Error(w, "The console is off: no operator is configured (console.users).", http.StatusForbidden)
			return
		}
		src := remoteIP(r)
		if src.IsValid() {
			switch v, wait := c.guard.Allow(src); v {
			case abuse.Banned, abuse.Limited:
				w.Header().Set("Retry-After", strconv.Itoa(int(max(wait.Round(time.Second), time.Second)/time.Second)))
				msg := "Too many requests from this address; retry later."
				if v == abuse.Banned {
					msg = "Too many wrong console credentials from this address; retry later."
				}
				http.Error(w, msg, http.StatusTooManyRequests)
				return
			}
		}
		name, pass, ok := r.BasicAuth()
		if !ok || !c.check(name, pass) {
			if ok && src.IsValid() {
				c.guard.Fail(src)
			}
			w.Header().Set("WWW-Authenticate", realm)
			http.Error(w, "Operator credentials are required (console.users).", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

// check compares in constant time; an unknown name costs the same as a
// wrong password (no user enumeration).
func (c *Console) check(name, pass string) bool {
	got := sha256.Sum256([]byte(pass))
	want, known := c.users[name]
	if !known {
		want = sha256.Sum256([]byte("\x00no such operator"))
	}
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1 && known
}

func remoteIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

func headers(w http.ResponseWriter, contentType string) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; "+
		"base-uri 'none'; frame-ancestors 'none'; form-action 'none'")
	h.Set("X-Frame-Options", "DENY")
}

func (c *Console) page(w http.ResponseWriter, r *http.Request) {
	data, _ := static.ReadFile("static/index.html")
	headers(w, "text/html; charset=utf-8")
	_, _ = w.Write(data)
}

func (c *Console) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
	ct, ok := types[path.Ext(name)]
	data, err := static.ReadFile("static/" + name)
	if !ok || err != nil {
		http.NotFound(w, r)
		return
	}
	headers(w, ct)
	_, _ = w.Write(data)
}

// events is the SSE stream: a snapshot of every call the console knows,
// then each call again whenever it changes.
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	s := &sub{ch: make(chan []byte, subBuffer), gone: make(chan struct{})}
	c.mu.Lock()
	snap, err := json.Marshal(struct {
		Calls []Call `json:"calls"`
	}{c.snapshot()})
	c.subs[s] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.subs, s)
		c.mu.Unlock()
	}()
	if err != nil {
		http.Error(w, "snapshot: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no")
	_, _ = w.Write([]byte("retry: 2000\n\n"))
	_, _ = w.Write(sse("snapshot", snap))
	fl.Flush()
	ping := time.NewTicker(25 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.gone:
			return // too slow: the browser reconnects and gets a snapshot
		case msg := <-s.ch:
			if _, err := w.Write(msg); err != nil {
				return
			}
			for n := len(s.ch); n > 0; n-- {
				if _, err := w.Write(<-s.ch); err != nil {
					return
				}
			}
			fl.Flush()
		case <-ping.C:
			if _, err := w.Write([]byte(": ping\n\n")); err != nil {
				return
			}
			fl.Flush()
		}
	}
}
