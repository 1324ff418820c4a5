package callctl

import (
	"bytes"
	"context"
	"embed"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/internal/clock"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/ids"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/media/prompt"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Dial-in: people join a meeting by phone. They call the tenant's dial-in
// number (tenants[].conferencing.tollNumber), and the platform itself
// answers: a spoken prompt asks for the conference id and #, then the
// passcode if the meeting requires one (three wrong tries and the call
// is ended politely). A registered SIP user may instead call the meeting's
// own SIP URI, which skips the conference id. Then the caller enters the
// meeting's room: straight in when the meeting lets dial-in callers
// bypass the lobby, else into the lobby, where they hear hold music and
// show isInLobby in the roster until a bot in the meeting admits them
// (POST .../participants/{id}/admit).

//go:embed voice/*.wav
var voiceFS embed.FS

// voice is a spoken prompt, decoded once.
func voice(name string) *media.Audio {
	voiceOnce.Do(func() {
		voices = map[string]*media.Audio{}
		entries, _ := voiceFS.ReadDir("voice")
		for _, e := range entries {
			data, err := voiceFS.ReadFile("voice/" + e.Name())
			if err != nil {
				continue
			}
			pcm, err := prompt.DecodeWAV(bytes.NewReader(data))
			if err != nil {
				panic("callctl: embedded prompt " + e.Name() + ": " + err.Error())
			}
			voices[strings.TrimSuffix(e.Name(), ".wav")] = media.NewAudio(pcm)
		}
	})
	return voices[name]
}

var (
	voiceOnce sync.Once
	voices    map[string]*media.Audio
)

// DialIn is a person calling into meetings.
type DialIn struct {
	TenantID string
	// Caller is who calls (a phone number, or a registered user).
	Caller *graph.IdentitySet
	// ConferenceID, when set, is the meeting the caller dialed directly
	// (its SIP URI): nothing is asked but the passcode.
	ConferenceID string
	// Guest: the caller holds a guest pass for ConferenceID from the
	// meeting's join page (internal/guestpass): the join link stands for
	// the passcode, and the lobby is skipped only when the meeting lets
	// everyone bypass it (lobbyBypassSettings.scope everyone).
	Guest bool
	// Cascade: the caller reached another node, which checked the
	// passcode and carries them here, the meeting's room's node, on a
	// leg of its own (cascade.go); they enter the room here, the lobby
	// as for a caller who dialled in (or a guest, with Guest).
	Cascade bool
	// NewLeg builds the caller's leg with the callback its events go to.
	NewLeg func(id string, ev func(LegEvent)) Leg
}

// maxTries is how many wrong conference ids or passcodes a caller may
// enter before the platform hangs up.
const maxTries = 3

// digitTimeout ends the wait for the next key of an entry.
const digitTimeout = 15 * time.Second

// dialIn is one caller being let into a meeting.
type dialIn struct {
	m      *Manager
	in     DialIn
	id     string
	sink   *legSink
	mu     sync.Mutex
	leg    Leg
	port   MediaPort
	stage  dialStage
	digits []byte
	tries  int
	mt     *Meeting
	timer  clock.Timer
	done   bool
	events serial // the leg's events, timers and prompt ends, in order
}

type dialStage int

const (
	askConference dialStage = iota
	askPasscode
	leaving
)

// DialIn answers a person calling the dial-in number (or a meeting's SIP
// URI) and lets them into the meeting they name.
func (m *Manager) DialIn(ctx context.Context, in DialIn) error {
	if m.o.Meetings == nil || m.o.Rooms == nil {
		return errs.E(errs.NotFound, "This node serves no meetings.")
	}
	m.mu.Lock()
	closing := m.closing
	m.mu.Unlock()
	if closing {
		return errs.E(errs.Unavailable, "This Switchboard node is shutting down.")
	}
	d := &dialIn{m: m, in: in, id: ids.New(), events: serial{m: m}}
	if in.ConferenceID != "" {
		mt, err := m.o.Meetings.ByConferenceID(ctx, in.ConferenceID)
		if err != nil {
			return err
		}
		if in.TenantID != "" && !sameID(mt.TenantID, in.TenantID) {
			return errs.E(errs.NotFound, "No meeting with conference id %s.", in.ConferenceID)
		}
		d.mt = mt
		if in.Guest && m.guestInMeeting(mt.ID, in.Caller) {
			// A pass is one person: the same pass calling again while its
			// guest is in (or waiting to enter) would let one link fill a
			// lobby.
			return errs.E(errs.Forbidden, "This guest pass is in meeting %s already: a pass joins once at a time.", mt.ID)
		}
	}
	d.sink = newSink(func(ev LegEvent) { d.events.do(func() { d.onEvent(ev) }) })
	d.leg = in.NewLeg(d.id, d.sink.deliver)
	if err := d.leg.Answer(); err != nil {
		d.leg.HangUp(errs.AnswerFailed)
		return errs.Wrap(errs.Unavailable, err, "answer the dial-in call")
	}
	return nil
}

func (d *dialIn) onEvent(ev LegEvent) {
	if refuseRefer(ev) {
		return
	}
	switch ev.Kind {
	case LegAnswered:
		d.mu.Lock()
		d.port = mediaPortOf(d.leg)
		if d.port == nil {
			d.mu.Unlock()
			d.hangUp(errs.MediaFailure)
			return
		}
		d.port.DetectTones(true)
		first := "welcome"
		if d.mt != nil {
			if !d.mt.PasscodeRequired || d.in.Guest || d.in.Cascade {
				d.mu.Unlock()
				d.enter()
				return
			}
			d.stage, first = askPasscode, "passcode"
		}
		d.playLocked(first)
		d.mu.Unlock()
	case LegTone:
		d.key(ev.Tone)
	case LegEnded:
		d.mu.Lock()
		d.done = true
		if d.timer != nil {
			d.timer.Stop()
		}
		d.mu.Unlock()
	}
}

// playLocked plays a prompt; keys pressed meanwhile count (a caller who
// knows the id need not wait). The caller holds d.mu.
func (d *dialIn) playLocked(name string) {
	d.port.Play(voice(name), false, nil)
	d.armLocked()
}

// armLocked restarts the wait for the next key. The caller holds d.mu.
func (d *dialIn) armLocked() {
	if d.timer != nil {
		d.timer.Stop()
	}
	d.timer = d.m.clk.AfterFunc(digitTimeout, func() { d.events.do(func() { d.key("") }) })
}

// key takes one key of the entry; "" is the digit timeout.
func (d *dialIn) key(t graph.Tone) {
	d.mu.Lock()
	if d.done || d.stage == leaving {
		d.mu.Unlock()
		return
	}
	c := t.Char()
	if t != "" && c != '#' {
		if c >= '0' && c <= '9' && len(d.digits) < 32 {
			d.digits = append(d.digits, c)
		}
		d.armLocked()
		d.mu.Unlock()
		return
	}
	entry := string(d.digits)
	d.digits = d.digits[:0]
	stage := d.stage
	d.mu.Unlock()
	// The entry's length only: a passcode is a secret.
	d.m.log.Debug("dial-in entry", "stage", stage, "digits", len(entry), "timeout", t == "")
	if entry == "" && t == "" {
		d.wrong() // silence: ask again
		return
	}
	switch stage {
	case askConference:
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		mt, err := d.m.o.Meetings.ByConferenceID(ctx, entry)
		cancel()
		if err != nil || !strings.EqualFold(mt.TenantID, d.in.TenantID) {
			d.wrong()
			return
		}
		d.mu.Lock()
		d.mt, d.tries = mt, 0
		if mt.PasscodeRequired {
			d.stage = askPasscode
			d.playLocked("passcode")
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
		d.enter()
	case askPasscode:
		d.mu.Lock()
		ok := entry == keypad(d.mt.Passcode)
		d.mu.Unlock()
		if !ok {
			d.wrong()
			return
		}
		d.enter()
	}
}

// wrong counts a wrong entry: ask again, or say goodbye after maxTries.
func (d *dialIn) wrong() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tries++
	if d.tries >= maxTries {
		d.stage = leaving
		if d.timer != nil {
			d.timer.Stop()
		}
		d.port.Play(voice("goodbye"), false, func(bool) { d.events.do(func() { d.hangUp(errs.EndedByBot) }) })
		return
	}
	d.playLocked("retry")
}

func (d *dialIn) hangUp(reason errs.EndReason) {
	d.mu.Lock()
	if d.done {
		d.mu.Unlock()
		return
	}
	d.done = true
	if d.timer != nil {
		d.timer.Stop()
	}
	leg := d.leg
	d.mu.Unlock()
	leg.HangUp(reason)
}

// enter puts the caller in the meeting's room: on the node that mixes
// it, by a cascade leg, when that is another node (cascade.go); here in
// the lobby, or straight in when the meeting lets dial-in callers bypass
// it.
func (d *dialIn) enter() {
	d.mu.Lock()
	if d.done {
		d.mu.Unlock()
		return
	}
	d.stage = leaving
	if d.timer != nil {
		d.timer.Stop()
	}
	mt, port := d.mt, d.port
	d.mu.Unlock()
	// A caller another node carried here (Cascade) enters here, claiming
	// the room if it closed meanwhile; anyone else goes to the node that
	// mixes the meeting.
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	h, err := d.m.placeRoom(ctx, mt)
	cancel()
	switch {
	case err != nil:
		d.m.log.Warn("meeting room: cannot tell which node mixes it; opening it here", "meeting", mt.ID, "err", err)
	case h != nil && d.in.Cascade:
		d.m.log.Warn("meeting room: moved to another node while a caller was carried here; entering a room here", "meeting", mt.ID, "node", h.Node)
	case h != nil:
		port.DetectTones(false)
		if d.cascade(h) {
			return
		}
	}
	d.enterHere()
}

// enterHere puts the caller in the meeting's room on this node, and
// returns where their leg's events go from then on (nil when the call
// ended instead).
func (d *dialIn) enterHere() func(LegEvent) {
	d.mu.Lock()
	if d.done {
		d.mu.Unlock()
		return nil
	}
	mt, leg, port := d.mt, d.leg, d.port
	d.mu.Unlock()
	r, err := d.m.room(mt)
	if err != nil {
		d.m.log.Warn("dial-in: open the meeting's room", "meeting", mt.ID, "err", err)
		d.hangUp(errs.MediaFailure)
		return nil
	}
	port.DetectTones(false)
	p := &roomMember{pid: ids.New(), leg: leg, joined: true,
		target: graph.InvitationParticipantInfo{ODataType: graph.TypeInvitationParticipantInfo, Identity: d.in.Caller}}
	bypass := mt.DialInBypassesLobby
	if d.in.Guest {
		bypass = mt.EveryoneBypassesLobby
	}
	d.sink.hold()
	if !r.addPerson(p, !bypass) {
		d.hangUp(errs.MediaFailure)
		return nil
	}
	to := func(ev LegEvent) { r.personEvent(p, ev) }
	d.sink.retarget(to)
	if bypass {
		port.Play(voice("joined"), false, nil)
		return to
	}
	// Under the room's lock, as admit stops what plays on the caller's
	// line under it: a bot that admits the caller as soon as the roster
	// shows them in the lobby either stops the lobby prompt or keeps it
	// from starting, rather than it playing over the meeting to someone
	// already admitted.
	r.mu.Lock()
	defer r.mu.Unlock()
	if part := r.parts[p.pid]; part == nil || !part.IsInLobby {
		return to
	}
	port.Play(voice("lobby"), false, func(completed bool) {
		r.events.do(func() {
			// Checked and started under the lock admit takes, so the
			// looping music cannot start after the caller was let in.
			r.mu.Lock()
			defer r.mu.Unlock()
			if part := r.parts[p.pid]; completed && r.isPerson(p) && part != nil && part.IsInLobby {
				port.Play(media.HoldChime(), true, nil)
			}
		})
	})
	return to
}

// guestInMeeting reports whether the guest of caller (a join page's pass)
// is in the meeting's room on this node, the lobby included.
func (m *Manager) guestInMeeting(meetingID string, caller *graph.IdentitySet) bool {
	m.mu.Lock()
	r := m.rooms[meetingID]
	m.mu.Unlock()
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hasGuestLocked(caller)
}

// hasGuestLocked reports whether the room's roster holds the guest of
// caller; false for a caller who is no guest. The caller holds r.mu.
func (r *room) hasGuestLocked(caller *graph.IdentitySet) bool {
	if caller == nil || caller.Guest == nil || caller.Guest.ID == "" {
		return false
	}
	for _, p := range r.parts {
		if p.Info != nil && p.Info.Identity != nil && p.Info.Identity.Guest != nil && p.Info.Identity.Guest.ID == caller.Guest.ID {
			return true
		}
	}
	return false
}

// keypad spells a passcode as a phone keypad enters it: digits as they
// are, each letter as the key that carries it (ABC on 2 ... WXYZ on 9),
// so a caller can key in a meeting's letters-and-digits passcode.
func keypad(s string) string {
	const keys = "22233344455566677778889999"
	b := make([]byte, 0, len(s))
	for _, r := range strings.ToUpper(s) {
		switch {
		case r >= '0' && r <= '9':
			b = append(b, byte(r))
		case r >= 'A' && r <= 'Z':
			b = append(b, keys[r-'A'])
		}
	}
	return string(b)
}
