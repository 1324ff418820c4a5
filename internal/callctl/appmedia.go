package callctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Application-hosted media (docs/media-socket.md): a call created or
// answered with appHostedMediaConfig gets no prompts or recordings from
// the platform; its bot hears and speaks over the media socket instead.
//
// The call's media is then always a conference with an AppPort for the
// bot: a group call's, a meeting room's, or, for a two-party call, one of
// its own whose only member is the far end (appConf), so that one path
// serves every kind of call. The socket (package mediasock) attaches to
// the call's appMedia, which outlives sockets: a bot may open one before
// answering, lose it and open another, and a newer one replaces the
// older. While the media is up with no socket, a timer of
// media.socket.reconnectWindow runs; when it fires the call ends with
// 500/1005.

// MediaSocket is the bot's end of a call's app-hosted media: a media
// socket connection as package mediasock serves it.
type MediaSocket interface {
	// Send queues a control message for the bot (JSON-encoded by the
	// socket). It never blocks.
	Send(msg any)
	// SetPort gives the socket the call's media: it reads the port's
	// batches and writes the bot's frames into it; nil takes it away.
	SetPort(p *media.AppPort)
	// Close sends a close frame with code and reason and closes the
	// socket; once it returns, the socket no longer uses the port.
	Close(code int, reason string)
}

// The media socket's control messages (docs/media-socket.md).
type (
	// MediaSource is a roster entry: a participant the bot can hear.
	MediaSource struct {
		ParticipantID string `json:"participantId"`
		SourceID      string `json:"sourceId"`
		DisplayName   string `json:"displayName,omitempty"`
	}
	// MediaFormat is the audio format of the frames.
	MediaFormat struct {
		Encoding   string `json:"encoding"`
		SampleRate int    `json:"sampleRate"`
		Channels   int    `json:"channels"`
		FrameMs    int    `json:"frameMs"`
	}
	// MediaHello is the first message of every socket.
	MediaHello struct {
		Type   string        `json:"type"`
		CallID string        `json:"callId"`
		Format MediaFormat   `json:"format"`
		Roster []MediaSource `json:"roster"`
	}
	// MediaRoster is a roster change.
	MediaRoster struct {
		Type   string        `json:"type"`
		Roster []MediaSource `json:"roster"`
	}
	// MediaDominant is a change of dominant speaker.
	MediaDominant struct {
		Type          string `json:"type"`
		SourceID      string `json:"sourceId"`
		ParticipantID string `json:"participantId"`
	}
	// MediaDTMF is a key a participant pressed.
	MediaDTMF struct {
		Type          string `json:"type"`
		Tone          string `json:"tone"`
		SourceID      string `json:"sourceId"`
		ParticipantID string `json:"participantId"`
	}
	// MediaBye is the last message: the call ended.
	MediaBye struct {
		Type       string            `json:"type"`
		ResultInfo *graph.ResultInfo `json:"resultInfo"`
	}
)

// The close codes call control asks for (docs/media-socket.md).
const (
	CloseNormal   = 1000
	ClosePolicy   = 1008
	CloseReplaced = 4001
)

// appMedia is a call's app-hosted media as the sockets see it. Its
// methods are safe for concurrent use: the actor calls the set* and end
// methods, the sockets attach and detach.
type appMedia struct {
	callID string
	post   func(func(*actor)) bool // to the call's actor

	mu       sync.Mutex
	sock     MediaSocket
	port     *media.AppPort
	roster   []MediaSource
	opened   bool // a socket was ever attached
	closed   bool
	closeMsg string // why a socket may not attach any more
}

// appMediaFor returns the call's appMedia, made on first use; only calls
// that may have app-hosted media get one (outbound app-hosted calls, and
// incoming calls until answered: the bot may open the socket first).
func (a *actor) appMediaFor() *appMedia {
	if a.app != nil {
		return a.app
	}
	a.app = &appMedia{callID: a.rec.Call.ID, post: a.post}
	a.m.mu.Lock()
	a.m.apps[a.rec.Call.ID] = a.app
	a.m.mu.Unlock()
	return a.app
}

// appHosted reports whether the call's media is the bot's.
func (a *actor) appHosted() bool {
	return a.rec.Call.MediaConfig != nil && a.rec.Call.MediaConfig.AppHosted()
}

// checkMediaMode refuses appHostedMediaConfig to an application that is
// not registered for it (mediaMode: app) or lacks Calls.AccessMedia.All,
// so that no call is ever silently without media.
func (m *Manager) checkMediaMode(c Caller, mc *graph.MediaConfig) error {
	if !mc.AppHosted() {
		return nil
	}
	if err := c.require(PermAccessMedia); err != nil {
		return err
	}
	if m.dir != nil {
		if app, ok := m.dir.App(c.AppID); ok && !strings.EqualFold(app.MediaMode, "app") {
			return badRequest("mediaConfig: application %s is registered for service-hosted media (mediaMode: %s); "+
				"set its mediaMode to app to host media itself over the media socket, or use serviceHostedMediaConfig.", c.AppID, app.MediaMode)
		}
	}
	return nil
}

// Elsewhere is the cause of OpenMedia's refusal (errs.Unavailable) of a
// call another node carries, after every other check passed: the socket
// is served by node Node, to which the Graph edge may hand the request.
type Elsewhere struct {
	CallID, Node string
}

func (e *Elsewhere) Error() string {
	return "call " + e.CallID + " is carried by node " + e.Node
}

// OpenMedia checks that the caller may open the media socket of call
// callID, before the upgrade: the application owning the call, with
// Calls.AccessMedia.All, on a call whose media is (or may yet be, for an
// incoming call) app-hosted, owned by this node. For a call owned by
// another node it fails with an *Elsewhere cause once the caller has
// passed every check but that one.
func (m *Manager) OpenMedia(ctx context.Context, c Caller, callID string) error {
	rec, _, err := m.load(ctx, c, callID)
	if err != nil {
		return err
	}
	if err := c.require(PermAccessMedia); err != nil {
		return err
	}
	if m.dir != nil {
		if app, ok := m.dir.App(c.AppID); ok && !strings.EqualFold(app.MediaMode, "app") {
			return badRequest("Application %s is registered for service-hosted media (mediaMode: %s): it has no media sockets.", c.AppID, app.MediaMode)
		}
	}
	if mc := rec.Call.MediaConfig; mc != nil && !mc.AppHosted() && rec.Call.State != graph.StateIncoming {
		return badRequest("Call %s has service-hosted media (serviceHostedMediaConfig): it has no media socket.", callID)
	}
	if rec.Node != m.o.Node {
		return errs.Wrap(errs.Unavailable, &Elsewhere{CallID: callID, Node: rec.Node},
			"Call %s is carried by another Switchboard node (%s); open its media socket there.", callID, rec.Node)
	}
	m.mu.Lock()
	h := m.apps[normID(callID)]
	m.mu.Unlock()
	if h == nil {
		return notFound(callID)
	}
	return nil
}

// AttachMedia attaches sock to call callID's media, after OpenMedia said
// yes and the socket was upgraded: a socket already attached is replaced
// (closed with 4001). It sends the hello. detach must be called when the
// socket closes, whoever closed it.
func (m *Manager) AttachMedia(c Caller, callID string, sock MediaSocket) (detach func(), err error) {
	m.mu.Lock()
	h := m.apps[normID(callID)]
	m.mu.Unlock()
	if h == nil {
		return nil, notFound(callID)
	}
	if err := h.attach(sock); err != nil {
		return nil, err
	}
	return func() { h.detach(sock) }, nil
}

func (h *appMedia) attach(sock MediaSocket) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errs.E(errs.NotFound, "%s", h.closeMsg)
	}
	if old := h.sock; old != nil {
		old.Close(CloseReplaced, "replaced")
		if h.port != nil {
			h.port.Attach(false)
		}
	}
	h.sock, h.opened = sock, true
	sock.Send(MediaHello{Type: "hello", CallID: h.callID,
		Format: MediaFormat{Encoding: "s16le", SampleRate: 16000, Channels: 1, FrameMs: 20},
		Roster: h.rosterCopy()})
	if h.port != nil {
		h.port.Attach(true)
		sock.SetPort(h.port)
	}
	h.post(func(a *actor) { a.disarm("mediasocket") })
	return nil
}

func (h *appMedia) detach(sock MediaSocket) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sock != sock {
		return
	}
	h.sock = nil
	if h.port != nil {
		h.port.Attach(false)
	}
	if !h.closed {
		h.post(func(a *actor) { a.armMediaSocket("the bot's media socket closed") })
	}
}

func (h *appMedia) rosterCopy() []MediaSource {
	r := make([]MediaSource, len(h.roster))
	copy(r, h.roster)
	return r
}

// state reports whether a socket is attached and whether one ever was.
func (h *appMedia) state() (attached, opened bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sock != nil, h.opened
}

func (h *appMedia) attached() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sock != nil
}

// setPort hands the sockets the call's media, once it is up.
func (h *appMedia) setPort(p *media.AppPort) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.port = p
	if h.sock != nil {
		p.Attach(true)
		h.sock.SetPort(p)
	}
}

// setRoster tells the socket the roster, if it changed.
func (h *appMedia) setRoster(r []MediaSource) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if slicesEqual(h.roster, r) {
		return
	}
	h.roster = r
	if h.sock != nil {
		h.sock.Send(MediaRoster{Type: "roster", Roster: h.rosterCopy()})
	}
}

func slicesEqual(a, b []MediaSource) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// send queues a control message for the socket, if one is attached.
func (h *appMedia) send(msg any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sock != nil {
		h.sock.Send(msg)
	}
}

// end closes the call's media for the sockets: a bye with ri and a close
// with code, or, for an incoming call answered with service-hosted
// media, a policy close saying so.
func (h *appMedia) end(ri *graph.ResultInfo, code int, reason, closeMsg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed, h.closeMsg = true, closeMsg
	if h.sock != nil {
		if ri != nil {
			h.sock.Send(MediaBye{Type: "bye", ResultInfo: ri})
		}
		h.sock.Close(code, reason)
		h.sock = nil
	}
	if h.port != nil {
		h.port.Attach(false)
	}
}

// sourceOf returns the source number of a roster entry's audio stream.
func sourceOf(p *graph.Participant) (string, uint32) {
	for _, s := range p.MediaStreams {
		if s.SourceID != "" {
			if n, err := strconv.ParseUint(s.SourceID, 10, 32); err == nil {
				return s.SourceID, uint32(n)
			}
		}
	}
	return "", 0
}

func displayName(p *graph.Participant) string {
	if p.Info == nil || p.Info.Identity == nil {
		return ""
	}
	s := p.Info.Identity
	for _, id := range []*graph.Identity{s.User, s.Phone, s.Guest, s.ApplicationInstance, s.Application, s.Encrypted} {
		if id != nil {
			if id.DisplayName != "" {
				return id.DisplayName
			}
			if id.ID != "" {
				return id.ID
			}
		}
	}
	return ""
}

// appConference is what app-hosted media needs of a conference: a port
// for the bot and the members' source numbers. media.Conference has it.
type appConference interface {
	NewAppPort(name string, o media.AppOptions) (*media.AppPort, error)
	SetSource(pid string, source uint32)
}

var _ appConference = (*media.Conference)(nil)

// appOptions are the AppPort options of this node.
func (a *actor) appOptions() media.AppOptions {
	frames := int(a.m.cfg.Media.Socket.SendBuffer.D() / media.FrameDuration)
	h := a.m.echoDelay
	return media.AppOptions{Prefix: wsBinaryPrefix, SendBuffer: max(frames, 1),
		OnEchoDelay: func(d time.Duration) { h.Observe(d.Seconds()) }}
}

// wsBinaryPrefix is the WebSocket header of a server's binary frame of
// media.AppFrameBytes (656): FIN and binary, a 16-bit length, no mask
// (RFC 6455 §5.2). The batches go to the socket as they are.
var wsBinaryPrefix = []byte{0x82, 126, media.AppFrameBytes >> 8, media.AppFrameBytes & 0xff}

// openAppMedia brings an app-hosted call's media up once the call is
// established: the AppPort on its conference (opening one for a
// two-party call), the roster, the socket's timer.
func (a *actor) openAppMedia() {
	if !a.appHosted() || a.appOpen || a.deleted {
		return
	}
	a.appOpen = true
	h := a.appMediaFor()
	var conf appConference
	switch {
	case a.room != nil:
		// room.join opened the port (joinMeeting): nothing to do here.
	case a.conf != nil:
		c, ok := a.conf.(appConference)
		if !ok {
			a.log.Error("app-hosted media: the group call's conference has no app ports")
			a.end(errs.MediaFailure, true)
			return
		}
		conf = c
	default:
		if err := a.openAppConference(); err != nil {
			a.log.Error("app-hosted media: open the call's conference", "err", err)
			a.end(errs.MediaFailure, true)
			return
		}
		conf = a.appConf.(appConference)
	}
	if conf != nil {
		p, err := conf.NewAppPort(a.rec.Call.ID, a.appOptions())
		if err != nil {
			a.log.Error("app-hosted media: open the bot's port", "err", err)
			a.end(errs.MediaFailure, true)
			return
		}
		a.appPort = p
	}
	if a.appPort == nil {
		return
	}
	if a.rec.Muted {
		a.appPort.SetMuted(true)
	}
	a.appPort.DetectTones(true) // for the socket's dtmf events
	a.appRoster()
	h.setPort(a.appPort)
	if attached, opened := h.state(); !attached {
		if !opened {
			a.log.Warn("app-hosted call established before its bot opened the media socket; its audio is not heard until it does",
				"window", a.m.cfg.Media.Socket.ReconnectWindow.D())
		}
		a.armMediaSocket("the bot never opened the media socket")
	}
}

// openAppConference makes the conference of a two-party app-hosted call:
// the far end its only member, the bot's port added by the caller.
func (a *actor) openAppConference() error {
	if a.m.o.Conferences == nil {
		return errs.E(errs.NotSupported, "App-hosted media needs conference media, which this node does not have.")
	}
	conf, err := a.m.o.Conferences(a.rec.Call.ID, func(pid string) {
		a.post(func(a *actor) { a.appDominant(pid) })
	})
	if err != nil {
		return err
	}
	if _, ok := conf.(appConference); !ok {
		conf.Close()
		return errs.E(errs.NotSupported, "This node's conferences have no app ports.")
	}
	a.appConf = conf
	a.appAddFar()
	return nil
}

// appAddFar puts the two-party call's far end on its app conference.
func (a *actor) appAddFar() {
	if a.appConf == nil || a.leg == nil {
		return
	}
	s := sessionOf(a.leg)
	if s == nil {
		return // a simulated user without audio: nothing to hear
	}
	pid := a.farPID()
	if err := a.appConf.Add(pid, s); err != nil {
		a.log.Warn("app-hosted media: put the far end on the conference", "err", err)
	}
}

// farPID is the participant id of a two-party call's far end.
func (a *actor) farPID() string {
	for _, p := range a.rec.Participants {
		if p.ID != a.rec.Call.MyParticipantID {
			return p.ID
		}
	}
	return "far"
}

// appLegReplaced moves a two-party app-hosted call's media to its new far
// end (a REFER from the old one), old being the far end it replaced.
func (a *actor) appLegReplaced(oldPID string) {
	if a.appConf == nil {
		return
	}
	a.appConf.Remove(oldPID)
	a.appAddFar()
	a.appRoster()
}

// appRoster tells the socket the roster: the people in the call (not the
// bot, nor other bots in a meeting), with the source their audio comes
// as, and the conference the same numbers.
func (a *actor) appRoster() {
	if a.app == nil || a.appPort == nil {
		return
	}
	conf := a.appSources()
	r := make([]MediaSource, 0, len(a.rec.Participants))
	for i := range a.rec.Participants {
		p := &a.rec.Participants[i]
		if p.ID == a.rec.Call.MyParticipantID {
			continue
		}
		if p.Info != nil && p.Info.Identity != nil && p.Info.Identity.Application != nil {
			continue // another bot in a meeting: its voice is in the mix, not a stream of its own
		}
		src, n := sourceOf(p)
		if n == 0 {
			continue
		}
		if conf != nil {
			conf.SetSource(p.ID, n)
		}
		r = append(r, MediaSource{ParticipantID: p.ID, SourceID: src, DisplayName: displayName(p)})
	}
	a.app.setRoster(r)
}

// appSources is the conference the bot's port is on, for source numbers.
func (a *actor) appSources() appConference {
	var c any
	switch {
	case a.appConf != nil:
		c = a.appConf
	case a.conf != nil:
		c = a.conf
	case a.room != nil:
		c = a.room.media
	}
	if ac, ok := c.(appConference); ok {
		return ac
	}
	return nil
}

// appTone tells the socket a key a participant pressed.
func (a *actor) appTone(pid string, tone graph.Tone) {
	if a.app == nil || a.appPort == nil {
		return
	}
	src := ""
	for i := range a.rec.Participants {
		if a.rec.Participants[i].ID == pid {
			src, _ = sourceOf(&a.rec.Participants[i])
		}
	}
	a.app.send(MediaDTMF{Type: "dtmf", Tone: toneKey(tone), SourceID: src, ParticipantID: pid})
}

// toneKey is a Graph tone as the socket spells it: "5", "*", "#", "A".
func toneKey(t graph.Tone) string {
	s := string(t)
	switch {
	case strings.EqualFold(s, "star"):
		return "*"
	case strings.EqualFold(s, "pound"):
		return "#"
	case len(s) == 5 && strings.HasPrefix(strings.ToLower(s), "tone"):
		return s[4:]
	}
	return strings.ToUpper(s)
}

// appDominant tells the socket the dominant speaker.
func (a *actor) appDominant(pid string) {
	if a.rec.Group && a.conf != nil && a.appConf == nil && !a.inDominant {
		// A two-party call's conference became the group call's: its
		// dominant speaker is the roster's too.
		a.inDominant = true
		a.dominantIs(pid)
		a.inDominant = false
		return
	}
	if a.app == nil || a.appPort == nil {
		return
	}
	src := ""
	for i := range a.rec.Participants {
		if a.rec.Participants[i].ID == pid {
			src, _ = sourceOf(&a.rec.Participants[i])
		}
	}
	a.app.send(MediaDominant{Type: "dominantSpeaker", SourceID: src, ParticipantID: pid})
}

// armMediaSocket starts the wait for a socket: the call ends when none is
// attached by the end of media.socket.reconnectWindow.
func (a *actor) armMediaSocket(why string) {
	if a.deleted || a.appPort == nil {
		return
	}
	window := a.m.cfg.Media.Socket.ReconnectWindow.D()
	a.arm("mediasocket", a.m.clk.Now().Add(window), func(a *actor) {
		if a.app == nil || a.app.attached() {
			return
		}
		a.log.Warn("app-hosted call ended: no media socket", "why", why, "window", window)
		r := errs.BotMediaGone
		r.Message = fmt.Sprintf("The platform could not reach the bot's media: its media socket was not open for %v (%s).", window, why)
		a.end(r, true)
	})
}

// appFrames sums the frame counters of every app port, open or closed.
func (m *Manager) appFrames() media.AppStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.appDone
	for _, h := range m.apps {
		h.mu.Lock()
		if h.port != nil {
			s = addStats(s, h.port.Stats())
		}
		h.mu.Unlock()
	}
	return s
}

func addStats(a, b media.AppStats) media.AppStats {
	return media.AppStats{Sent: a.Sent + b.Sent, Dropped: a.Dropped + b.Dropped,
		Received: a.Received + b.Received, Overrun: a.Overrun + b.Overrun}
}

// closeAppMedia ends the call's app-hosted media as the call ends: the
// socket gets the bye, the port and a two-party call's conference close.
func (a *actor) closeAppMedia(ri *graph.ResultInfo) {
	a.disarm("mediasocket")
	if a.app != nil {
		a.app.end(ri, CloseNormal, "call ended", "The call has ended.")
	}
	if a.appPort != nil {
		a.appPort.Close() // its counters stop
	}
	// The port's counters move from the live calls' sum to the closed
	// ones' at once: the metric never goes back.
	a.m.mu.Lock()
	if a.app != nil && a.m.apps[a.rec.Call.ID] == a.app {
		delete(a.m.apps, a.rec.Call.ID)
	}
	if a.appPort != nil {
		a.m.appDone = addStats(a.m.appDone, a.appPort.Stats())
		a.appPort = nil
	}
	a.m.mu.Unlock()
	if a.appConf != nil {
		a.appConf.Close()
		a.appConf = nil
	}
}

// refuseAppMedia closes a socket opened before an incoming call was
// answered with service-hosted media.
func (a *actor) refuseAppMedia() {
	if a.app == nil {
		return
	}
	a.app.end(nil, ClosePolicy, "the call was answered with service-hosted media",
		"The call was answered with service-hosted media: it has no media socket.")
	a.m.mu.Lock()
	if a.m.apps[a.rec.Call.ID] == a.app {
		delete(a.m.apps, a.rec.Call.ID)
	}
	a.m.mu.Unlock()
	a.app = nil
}
