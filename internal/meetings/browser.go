package meetings

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/switchboard-voice/switchboard/internal/abuse"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/guestpass"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Joining from the browser: the join page asks for a name, gets a guest
// pass for the meeting (POST {link}/guest), and calls the meeting's SIP
// URI with it over SIP over WebSocket from the /phone page's user agent
// (/phone/sip.js), with the browser's microphone over WebRTC. Call control
// takes the call like a dial-in caller's: into the lobby unless the
// meeting lets everyone bypass it, until a bot admits them. The page
// shows where the guest is (joining, the lobby, the meeting) and, once
// in, who else is and who is speaking, from a roster stream
// (GET {link}/roster, server-sent events) the guest's pass opens.

//go:embed static
var static embed.FS

// BrowserJoin is what joining from the browser needs; without it (no SIP
// over WebSocket on this node) the join page only says how to join.
type BrowserJoin struct {
	// Passes mint the guests' passes (the SIP gateway's, which checks them).
	Passes *guestpass.Keys
	// Rosters are the meetings in progress on this node.
	Rosters Rosters
	// WSPath is where SIP over WebSocket is served (sipgw.WSPath).
	WSPath string
}

// Rosters are the meetings' rosters as call control keeps them
// (callctl.Manager).
type Rosters interface {
	// WatchMeeting calls changed, which must not block, after each change
	// of the meeting's roster; stop ends the watch.
	WatchMeeting(meetingID string, changed func()) (stop func())
	// MeetingRoster is the meeting's roster now, the lobby included.
	MeetingRoster(meetingID string) []graph.Participant
}

// EnableBrowserJoin lets the join page join from the browser. It is called
// once, before the node serves HTTP.
func (s *Store) EnableBrowserJoin(b BrowserJoin) {
	if s.sip == "" || b.Passes == nil || b.Rosters == nil {
		return // the meeting's SIP URI needs sip.domain
	}
	s.browser = &b
	s.mints = abuse.New[netip.Addr](abuse.Limits{Rate: mintRate, Burst: mintBurst}, nil)
}

// A source address gets mintBurst guest passes at once and mintRate a
// second after that: an office behind one NAT joining a meeting together
// is served, a script filling a meeting's lobby is slowed to a crawl (and
// each pass joins once at a time: callctl).
const (
	mintRate  = 0.5
	mintBurst = 20
)

// maxRosterStreams bounds the roster streams a node keeps open: each is a
// connection and a goroutine, and passes are free to anyone with a link.
const maxRosterStreams = 2000

// rosterKeepAlive is how often an idle roster stream sends a comment, so
// proxies keep it open and a gone page is noticed.
const rosterKeepAlive = 15 * time.Second

func (s *Store) browserRoutes(mux interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}) {
	mux.HandleFunc("POST "+JoinPath+"{thread}/{message}/guest", s.mintGuest)
	mux.HandleFunc("GET "+JoinPath+"{thread}/{message}/roster", s.rosterStream)
	mux.HandleFunc("GET "+JoinPath+"{file}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		ct, ok := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}[path.Ext(name)]
		data, err := static.ReadFile("static/" + name)
		if !ok || err != nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", ct)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(data)
	})
}

// linkMeeting is the meeting a join link's path (and its context, when
// given) names.
func (s *Store) linkMeeting(r *http.Request) (*Meeting, error) {
	m, err := s.byThread(r.Context(), r.PathValue("thread"))
	if err != nil {
		return nil, err
	}
	// A link whose context names another tenant is not this meeting's.
	var ctx struct{ Tid string }
	if c := r.URL.Query().Get("context"); c != "" && json.Unmarshal([]byte(c), &ctx) == nil &&
		ctx.Tid != "" && !strings.EqualFold(ctx.Tid, m.TenantID) {
		return nil, notFound("")
	}
	return m, nil
}

// guestError answers a request of the page's script in plain words.
func guestError(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, text, status)
}

// meetingOr answers the page's script when the link names no meeting it
// can read, and returns nil then.
func (s *Store) meetingOr(w http.ResponseWriter, r *http.Request) *Meeting {
	if s.browser == nil {
		guestError(w, http.StatusNotFound, "Joining from the browser is not enabled on this server (webrtc.enabled and sip.listen).")
		return nil
	}
	m, err := s.linkMeeting(r)
	switch {
	case errs.KindOf(err) == errs.NotFound:
		guestError(w, http.StatusNotFound, "This meeting does not exist, or it has been deleted.")
		return nil
	case err != nil:
		s.log.Warn("join from the browser", "thread", r.PathValue("thread"), "err", err)
		w.Header().Set("Retry-After", "5")
		guestError(w, http.StatusServiceUnavailable, "The meeting could not be read; try again in a moment.")
		return nil
	}
	return m
}

// guestPass is what the page gets to join with.
type guestPass struct {
	User     string    `json:"user"`
	Password string    `json:"password"`
	Domain   string    `json:"domain"`
	URI      string    `json:"uri"` // the meeting's SIP URI, without the scheme (SipUA.call's target)
	WSPath   string    `json:"ws"`
	Expires  time.Time `json:"expires"`
	Name     string    `json:"name"`
}

// mintGuest answers POST {link}/guest {"name": "..."} with a guest pass
// for the link's meeting.
func (s *Store) mintGuest(w http.ResponseWriter, r *http.Request) {
	m := s.meetingOr(w, r)
	if m == nil {
		return
	}
	src, _ := netip.ParseAddrPort(r.RemoteAddr)
	if v, wait := s.mints.Allow(src.Addr().Unmap()); v != abuse.Allowed {
		secs := int(wait/time.Second) + 1
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		guestError(w, http.StatusTooManyRequests, fmt.Sprintf("Too many guest passes for your address: try again in %d s.", secs))
		return
	}
	var body struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
		guestError(w, http.StatusBadRequest, "The request is a JSON object with your name: {\"name\": \"…\"}.")
		return
	}
	name, err := guestName(body.Name)
	if err != nil {
		guestError(w, http.StatusBadRequest, err.Error())
		return
	}
	p := s.browser.Passes.Mint(m.ConferenceID, guestpass.TTL)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(guestPass{User: p.User, Password: p.Password, Domain: s.sip,
		URI: "meeting-" + m.ConferenceID + "@" + s.sip, WSPath: s.browser.WSPath, Expires: p.Expires.UTC(), Name: name})
}

// guestName checks the name a guest typed: what the meeting shows of them.
func guestName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", errors.New("Type your name: the meeting shows it.")
	case !utf8.ValidString(name) || utf8.RuneCountInString(name) > 64:
		return "", errors.New("A name is at most 64 characters.")
	case strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) || r == '"' || r == '\\' }):
		return "", errors.New("A name may not hold quotes, backslashes or control characters.")
	}
	return name, nil
}

// guestView is what the page's roster shows: where the guest is, and
// once in the meeting, who else is. Someone in the lobby sees nobody, and
// nobody sees the others waiting in the lobby: the organizer's bot
// decides who meets whom. No ids, numbers or addresses: names only.
type guestView struct {
	// State is joining (not in the meeting yet, or gone), lobby or in.
	State  string       `json:"state"`
	People []guestEntry `json:"people"`
}

type guestEntry struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"` // user, guest, phone or bot
	You      bool   `json:"you,omitempty"`
	Muted    bool   `json:"muted,omitempty"`
	Speaking bool   `json:"speaking,omitempty"`
}

// viewOf is the guest's view of roster.
func viewOf(roster []graph.Participant, guestID string) guestView {
	v := guestView{State: "joining", People: []guestEntry{}}
	for _, p := range roster {
		if p.Info != nil && p.Info.Identity != nil && p.Info.Identity.Guest != nil && p.Info.Identity.Guest.ID == guestID {
			v.State = "in"
			if p.IsInLobby {
				v.State = "lobby"
			}
		}
	}
	if v.State != "in" {
		return v
	}
	for _, p := range roster {
		if p.IsInLobby {
			continue
		}
		e := guestEntry{Muted: p.IsMuted, Speaking: p.DominantSpeaker}
		e.Name, e.Kind, e.You = describe(p.Info, guestID)
		v.People = append(v.People, e)
	}
	return v
}

// describe names a participant for the guests' roster.
func describe(info *graph.ParticipantInfo, guestID string) (name, kind string, you bool) {
	var id *graph.IdentitySet
	if info != nil {
		id = info.Identity
	}
	switch {
	case id == nil:
		return "Someone", "user", false
	case id.Guest != nil:
		return nonEmpty(id.Guest.DisplayName, "Guest"), "guest", id.Guest.ID == guestID
	case id.User != nil:
		return nonEmpty(id.User.DisplayName, "A participant"), "user", false
	case id.Phone != nil:
		// A caller's number is theirs to give, not the page's.
		return nonEmpty(id.Phone.DisplayName, "Phone caller"), "phone", false
	case id.ApplicationInstance != nil:
		return nonEmpty(id.ApplicationInstance.DisplayName, "Bot"), "bot", false
	case id.Application != nil:
		return nonEmpty(id.Application.DisplayName, "Bot"), "bot", false
	}
	return "Someone", "user", false
}

func nonEmpty(s, otherwise string) string {
	if s = strings.TrimSpace(s); s == "" {
		return otherwise
	}
	return s
}

// rosterStream serves the guest's view of the meeting as server-sent
// events (an "roster" event with a guestView each time it changes) to the
// holder of a pass for it: Authorization: Bearer {user}:{password}. An
// expired pass still opens it while its guest is in the meeting (a page
// reconnecting); the stream ends once the pass has expired and its guest
// is not in the meeting.
func (s *Store) rosterStream(w http.ResponseWriter, r *http.Request) {
	m := s.meetingOr(w, r)
	if m == nil {
		return
	}
	user, password, _ := strings.Cut(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), ":")
	c, err := s.browser.Passes.Check(user, password)
	switch {
	case errors.Is(err, guestpass.ErrExpired):
		if viewOf(s.browser.Rosters.MeetingRoster(m.ID), c.GuestID).State == "joining" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="guest"`)
			guestError(w, http.StatusUnauthorized, "Your guest pass has expired: open the join link again.")
			return
		}
	case err != nil:
		w.Header().Set("WWW-Authenticate", `Bearer realm="guest"`)
		guestError(w, http.StatusUnauthorized, "This request needs the guest pass the join page gave (Authorization: Bearer user:password).")
		return
	}
	if c.ConferenceID != m.ConferenceID {
		w.Header().Set("WWW-Authenticate", `Bearer realm="guest"`)
		guestError(w, http.StatusUnauthorized, "This guest pass is for another meeting.")
		return
	}
	if s.streams.Add(1) > maxRosterStreams {
		s.streams.Add(-1)
		w.Header().Set("Retry-After", "10")
		guestError(w, http.StatusServiceUnavailable, "Too many people are watching meetings on this server; try again in a moment.")
		return
	}
	defer s.streams.Add(-1)
	flusher, ok := w.(http.Flusher)
	if !ok {
		guestError(w, http.StatusInternalServerError, "Streaming is not supported here.")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	wake := make(chan struct{}, 1)
	stop := s.browser.Rosters.WatchMeeting(m.ID, func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	defer stop()
	tick := time.NewTicker(rosterKeepAlive)
	defer tick.Stop()
	var last []byte
	send := func() (guestView, bool) {
		v := viewOf(s.browser.Rosters.MeetingRoster(m.ID), c.GuestID)
		b, _ := json.Marshal(v)
		if last != nil && slices.Equal(b, last) {
			return v, true
		}
		last = b
		_, err := fmt.Fprintf(w, "event: roster\ndata: %s\n\n", b)
		flusher.Flush()
		return v, err == nil
	}
	if _, ok := send(); !ok {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-wake:
			if _, ok := send(); !ok {
				return
			}
		case <-tick.C:
			v, ok := send()
			if !ok {
				return
			}
			if v.State == "joining" && s.browser.Passes.Expired(c) {
				_, _ = fmt.Fprint(w, "event: expired\ndata: {}\n\n")
				flusher.Flush()
				return
			}
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}
