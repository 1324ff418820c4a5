package callctl

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/store"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// One room per meeting across nodes (docs/deploy.md, "Meetings across
// nodes"). A meeting's room is mixed on one node, the room's node, which
// claims it in KV RoomsBucket when it opens it (create-if-absent; the
// value names the node and its SIP address) and marks the claim free when
// it closes. A join arriving elsewhere goes to that node:
//
//   - a bot's Graph create is forwarded over NATS (sb.node.<node>.cmd,
//     op "create"), so the room's node creates and owns the call;
//   - a person (a dial-in caller once the meeting is known, a join-page
//     guest) keeps their leg on the node they reached, which places a SIP
//     leg to the room's node for sip:meeting-{conferenceId}, carrying who
//     they are in a header the nodes MAC with their shared secret
//     (sipgw), and bridges the two legs' media; on the room's node that
//     cascade leg is a person in the room like any other.
//
// A claim whose node does not answer on NATS (no responders: the node is
// gone, crashed or stopped) or answers that it has no such room (it
// restarted) is stale, and the join takes it over with compare-and-set
// and opens the room afresh where it is. A room's node that is there but
// cannot be reached in time leaves the join in a room of its own node,
// logged: a split meeting rather than none.

// RoomsBucket is the KV bucket of the rooms' claims, one key per meeting.
const RoomsBucket = "sb_rooms"

// roomClaim is the value of a meeting's key in RoomsBucket; an empty Node
// is a free claim (the room closed).
type roomClaim struct {
	Node   string    `json:"node,omitempty"`
	SIP    string    `json:"sip,omitempty"` // host:port other nodes send the cascade INVITE to
	Opened time.Time `json:"opened,omitzero"`
}

// Cascade is a target on the room's node: the SIP leg that carries a
// person who reached another node into the meeting's room there.
type Cascade struct {
	// Addr is the room's node's SIP address (host:port).
	Addr         string
	ConferenceID string
	// Caller is who the person is; Guest that they hold a join page's
	// pass (the room's node applies the meeting's lobby settings for
	// guests). The passcode was checked on the node they reached.
	Caller *graph.IdentitySet
	Guest  bool
}

// roomAsk is the question a node asks the node a claim names: is the
// meeting's room open there?
type roomAsk struct {
	Meeting string `json:"meeting"`
}

// askTimeout bounds the question to a room's node; a node that is gone
// answers at once (no responders).
const askTimeout = 2 * time.Second

// placeRoom decides where meeting mt's room is mixed: nil when here (the
// room is claimed for this node, or there is no store to claim it in), or
// the claim of the live node that mixes it. An error means the room's
// node or the store could not be asked; the caller opens the room here.
func (m *Manager) placeRoom(ctx context.Context, mt *Meeting) (*roomClaim, error) {
	if m.roomKV == nil {
		return nil, nil
	}
	m.mu.Lock()
	_, pending := m.roomClaims[mt.ID]
	here := m.rooms[mt.ID] != nil || pending
	m.mu.Unlock()
	if here {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	mine, _ := json.Marshal(roomClaim{Node: m.o.Node, SIP: m.sipAddr(), Opened: m.clk.Now().UTC()})
	key := roomKey(mt.ID)
	for range 4 {
		rev, err := m.roomKV.Create(ctx, key, mine)
		if err == nil {
			m.claimed(mt.ID, rev)
			return nil, nil
		}
		if !errors.Is(err, store.ErrExists) {
			return nil, err
		}
		data, rev, err := m.roomKV.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var c roomClaim
		_ = json.Unmarshal(data, &c)
		if c.Node != "" && c.Node != m.o.Node {
			open, err := m.askRoom(ctx, c.Node, mt.ID)
			if err != nil && !errors.Is(err, nats.ErrNoResponders) {
				return nil, err
			}
			if open {
				return &c, nil
			}
			m.log.Info("meeting room: its node is gone or closed it; opening it here", "meeting", mt.ID, "node", c.Node)
		}
		rev, err = m.roomKV.Update(ctx, key, mine, rev)
		if err == nil {
			if c.Node != "" && c.Node != m.o.Node {
				m.roomTakeovers.Inc()
			}
			m.claimed(mt.ID, rev)
			return nil, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, err
		}
	}
	return nil, errs.E(errs.Unavailable, "The claim on meeting %s's room kept changing.", mt.ID)
}

// roomKey is a meeting's key in RoomsBucket: a hash of its id, which is
// long and case-sensitive, of characters a key may not all hold.
func roomKey(meetingID string) string {
	h := sha256.Sum256([]byte(meetingID))
	return "room." + hex.EncodeToString(h[:16])
}

// claimed notes a claim made for a room this node is about to open; the
// room takes it over in Manager.room.
func (m *Manager) claimed(meetingID string, rev uint64) {
	m.mu.Lock()
	if r := m.rooms[meetingID]; r != nil {
		r.claimRev = rev
	} else {
		m.roomClaims[meetingID] = rev
	}
	m.mu.Unlock()
}

// freeClaim marks the claim of a room that closed free, unless another
// node (or a newer room here) claimed it since.
func (m *Manager) freeClaim(meetingID string, rev uint64) {
	if m.roomKV == nil || rev == 0 {
		return
	}
	m.goBG(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, storeTimeout)
		defer cancel()
		free, _ := json.Marshal(roomClaim{})
		if _, err := m.roomKV.Update(ctx, roomKey(meetingID), free, rev); err != nil && !errors.Is(err, store.ErrConflict) {
			m.log.Warn("meeting room: free its claim", "meeting", meetingID, "err", err)
		}
	})
}

// sipAddr is this node's SIP address for other nodes' cascade legs.
func (m *Manager) sipAddr() string {
	if m.o.SIPAddr == nil {
		return ""
	}
	return m.o.SIPAddr()
}

// askRoom asks node whether meeting's room is open there.
func (m *Manager) askRoom(ctx context.Context, node, meetingID string) (bool, error) {
	body, _ := json.Marshal(roomAsk{Meeting: meetingID})
	data, _ := json.Marshal(command{Op: opRoomAsk, Body: body})
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	msg, err := m.o.Store.Conn().RequestWithContext(ctx, nodeSubject(node), data)
	if err != nil {
		return false, err
	}
	var r forwardReply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return false, err
	}
	return r.RoomOpen, nil
}

// The node-to-node operations besides a call's commands.
const (
	opRoomAsk    = "room.ask"
	opRoomRoster = "room.roster"
	opCreate     = "create"
)

// serveRoomAsk answers whether a meeting's room is open (or being opened)
// on this node.
func (m *Manager) serveRoomAsk(body []byte) forwardReply {
	var q roomAsk
	_ = json.Unmarshal(body, &q)
	m.mu.Lock()
	defer m.mu.Unlock()
	_, pending := m.roomClaims[q.Meeting]
	r := m.rooms[q.Meeting]
	return forwardReply{RoomOpen: pending || (r != nil && !m.closing)}
}

// remoteRoster asks the node that mixes the meeting for its roster (the
// join page of a guest whose page is on another node); nil when no other
// node has the room open or it cannot be asked.
func (m *Manager) remoteRoster(meetingID string) []graph.Participant {
	if m.roomKV == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), askTimeout)
	defer cancel()
	data, _, err := m.roomKV.Get(ctx, roomKey(meetingID))
	if err != nil {
		return nil
	}
	var c roomClaim
	if json.Unmarshal(data, &c) != nil || c.Node == "" || c.Node == m.o.Node {
		return nil
	}
	body, _ := json.Marshal(roomAsk{Meeting: meetingID})
	req, _ := json.Marshal(command{Op: opRoomRoster, Body: body})
	msg, err := m.o.Store.Conn().RequestWithContext(ctx, nodeSubject(c.Node), req)
	if err != nil {
		return nil
	}
	var r forwardReply
	if json.Unmarshal(msg.Data, &r) != nil {
		return nil
	}
	return r.Roster
}

// serveRoomRoster answers remoteRoster.
func (m *Manager) serveRoomRoster(body []byte) forwardReply {
	var q roomAsk
	_ = json.Unmarshal(body, &q)
	m.mu.Lock()
	r := m.rooms[q.Meeting]
	m.mu.Unlock()
	if r == nil {
		return forwardReply{}
	}
	return forwardReply{Roster: r.rosterNow()}
}

// forwardCreate has node, the room's node, create a bot's meeting call:
// it owns the call from then on, and the bot's 201 is that node's. It
// returns nats.ErrNoResponders as is when the node is not there (nothing
// was created); any other failure may have created the call, so the bot
// hears it (503) rather than getting a second call here.
func (m *Manager) forwardCreate(ctx context.Context, node string, c Caller, req *graph.Call) (*graph.Call, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "encode create")
	}
	data, _ := json.Marshal(command{Op: opCreate, Caller: c, Body: body})
	msg, err := m.o.Store.Conn().RequestWithContext(ctx, nodeSubject(node), data)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, err // nothing reached it: the caller may join here
	}
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "The node that mixes the meeting (%s) did not answer.", node)
	}
	var r forwardReply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "forwarded create")
	}
	if r.ErrKind != nil {
		return nil, errs.E(*r.ErrKind, "%s", r.ErrMsg)
	}
	if r.Call == nil {
		return nil, errs.E(errs.Internal, "forwarded create: no call in the reply")
	}
	return r.Call, nil
}

// serveCreate creates a meeting call another node forwarded: here it
// joins the room, whatever the claim says meanwhile (no second hop).
func (m *Manager) serveCreate(c Caller, body []byte) forwardReply {
	var req graph.Call
	if err := json.Unmarshal(body, &req); err != nil {
		k := errs.BadRequest
		return forwardReply{ErrKind: &k, ErrMsg: "forwarded create: malformed call"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call, err := m.create(ctx, c, &req, true)
	if err != nil {
		k := errs.KindOf(err)
		return forwardReply{ErrKind: &k, ErrMsg: errs.Message(err)}
	}
	return forwardReply{Call: call}
}

// cascade carries a dial-in caller whose meeting's room is on another
// node (h) into it: a SIP leg to that node, bridged to the caller's.
// False when the leg cannot be placed; the caller enters a room here.
func (d *dialIn) cascade(h *roomClaim) bool {
	if h.SIP == "" {
		return false
	}
	c := &cascadeLink{d: d}
	out, err := d.m.o.Dialer.Dial("dialin-"+d.id+"-c", Target{
		Cascade:  &Cascade{Addr: h.SIP, ConferenceID: d.mt.ConferenceID, Caller: d.in.Caller, Guest: d.in.Guest},
		FromName: callerName(d.in.Caller),
	}, func(ev LegEvent) { d.events.do(func() { c.onRoom(ev) }) })
	if err != nil {
		d.m.log.Warn("meeting room: no leg to its node; opening it here", "meeting", d.mt.ID, "node", h.Node, "err", err)
		return false
	}
	d.mu.Lock()
	c.out = out
	d.mu.Unlock()
	d.m.log.Info("meeting room: cascading a caller to its node", "meeting", d.mt.ID, "node", h.Node, "sip", h.SIP)
	d.sink.hold()
	d.sink.retarget(func(ev LegEvent) { d.events.do(func() { c.onPerson(ev) }) })
	return true
}

// cascadeLink joins a person's leg on this node to their cascade leg on
// the room's node. Its methods run on the dial-in's event queue.
type cascadeLink struct {
	d        *dialIn
	out      Leg // guarded by d.mu
	answered bool
	unbridge func()
	ended    bool
	// local, once the cascade leg failed to reach the room (unreached),
	// takes the person's events: they are in a room on this node.
	local func(LegEvent)
}

// onRoom follows the cascade leg: answered, the two legs' media are
// bridged; ended, the person is hung up (or, when it never reached the
// room, the person enters a room on this node instead).
func (c *cascadeLink) onRoom(ev LegEvent) {
	if refuseRefer(ev) || c.ended {
		return
	}
	d := c.d
	switch ev.Kind {
	case LegAnswered:
		if c.answered {
			return
		}
		c.answered = true
		d.m.cascades.WithLabelValues("bridged").Inc()
		d.mu.Lock()
		person, out, port := d.leg, c.out, d.port
		d.mu.Unlock()
		if port != nil {
			port.StopPlay()
		}
		x, y := sessionOf(person), sessionOf(out)
		if x != nil && y != nil {
			c.unbridge = media.Bridge(x, y)
		}
		if port != nil {
			port.DetectTones(true) // passed on by onPerson
		}
	case LegEnded:
		if !c.answered && unreached(ev.Reason) {
			d.m.log.Warn("meeting room: its node did not take the caller; opening it here", "meeting", d.mt.ID, "code", ev.Reason.Code, "reason", ev.Reason.Message)
			c.ended = true
			d.m.cascades.WithLabelValues("local").Inc()
			c.local = d.enterHere()
			return
		}
		if !c.answered {
			d.m.cascades.WithLabelValues("ended").Inc()
		}
		c.end()
		d.hangUp(ev.Reason)
	}
}

// unreached reports whether a cascade leg that ended unanswered never
// reached the room (no answer, unreachable, the node failing or
// draining: 408, 480, 5xx), so the person is better in a room here than
// nowhere; a refusal (a guest pass already in the meeting: 403) ends
// their call instead.
func unreached(r errs.EndReason) bool {
	return r.Code == 408 || r.Code == 480 || r.Code >= 500
}

// onPerson follows the person's leg once it is cascaded.
func (c *cascadeLink) onPerson(ev LegEvent) {
	if c.local != nil {
		c.local(ev) // the room was not reached: the caller is in a room here
		return
	}
	if refuseRefer(ev) || c.ended {
		return
	}
	if ev.Kind == LegTone {
		// The bridge carries audio only: a key the person pressed (RFC
		// 4733, or in-band found here) goes on as RFC 4733 on the cascade
		// leg, which the room's node reports to its bots.
		c.d.mu.Lock()
		out := c.out
		c.d.mu.Unlock()
		if out != nil && c.answered {
			if err := out.SendTones([]graph.Tone{ev.Tone}, 0, func() {}); err != nil {
				c.d.m.log.Debug("meeting room: pass a key on to the room's node", "err", err)
			}
		}
		return
	}
	if ev.Kind == LegEnded {
		c.end()
		c.d.mu.Lock()
		c.d.done = true
		out := c.out
		c.d.mu.Unlock()
		if out != nil {
			out.HangUp(errs.EndedByRemote)
		}
	}
}

func (c *cascadeLink) end() {
	c.ended = true
	if c.unbridge != nil {
		c.unbridge()
		c.unbridge = nil
	}
}

// callerName is the name a caller shows, for the cascade leg's From.
func callerName(s *graph.IdentitySet) string {
	if s == nil {
		return ""
	}
	_, name := identityName(s)
	return name
}
