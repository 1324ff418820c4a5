// Package callctl runs calls: one actor per call owns its state machine,
// commands arrive on its mailbox, and every change is written to the store
// with compare-and-set before the bot is notified.
//
// A call belongs to the node that created it (the node that owns its
// media). The Manager of any node accepts a command for any call: it reads
// the call's record from the store, and when another node owns the call it
// forwards the command to that node over NATS (subject sb.node.<node>.cmd).
// Reads (GET) are served from the store by whichever node is asked.
package callctl

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/clock"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/identity"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/store"
	"github.com/switchboard-voice/switchboard/internal/webhook"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Notifier queues notifications for delivery; *webhook.Outbox is one.
type Notifier interface {
	Enqueue(ctx context.Context, n webhook.Notification) error
}

var _ Notifier = (*webhook.Outbox)(nil)

// Caller is the authenticated application a command comes from.
type Caller struct {
	TenantID string   `json:"tenantId"`
	AppID    string   `json:"appId"`
	Roles    []string `json:"roles"`
}

func (c Caller) has(perm string) bool {
	for _, r := range c.Roles {
		if strings.EqualFold(r, perm) {
			return true
		}
	}
	return false
}

func (c Caller) require(anyOf ...string) error {
	for _, p := range anyOf {
		if c.has(p) {
			return nil
		}
	}
	return errs.E(errs.Forbidden, "The application does not have any of the required application permissions (%s) to perform this action.", strings.Join(anyOf, ", "))
}

// Options configure a Manager.
type Options struct {
	Node      string
	Config    *config.Config
	Directory *identity.Directory
	// Store is the node's JetStream: the calls bucket, and the NATS
	// connection commands are forwarded over. Nil runs the Manager on
	// Calls alone, without forwarding (one node; the state-machine tests).
	Store *store.Store
	// Calls overrides where call records live; nil is Store's sb_calls.
	Calls    CallStore
	Notifier Notifier
	Dialer   Dialer
	// Conferences makes the media of group calls; nil refuses them.
	Conferences Conferences
	// Meetings finds the meetings bots join, Rooms makes their
	// conferences; without both, joining meetings is refused.
	Meetings   Meetings
	Rooms      Rooms
	Prompts    PromptSource
	Recordings RecordingStore
	Clock      clock.Clock
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// SIPAddr, if set, is this node's SIP address (host:port) for other
	// nodes: a meeting's room claimed here names it, and people who
	// reach another node are carried to the room by a SIP leg to it
	// (cascade.go). Read when a room is claimed (SIP listens after Start).
	SIPAddr func() string
	// Observer, if set, watches this node's calls (observe.go).
	Observer Observer
	// Takeover runs the Manager on behalf of Node, a node that was lost,
	// from another node's process (platform's node takeover): Start
	// ends each of Node's calls with errs.NodeLost instead of resuming
	// it, releasing its legs' far ends through Dialer.Resume, and the
	// cluster-wide call counts are left to the takeover.
	Takeover bool
}

// Manager owns this node's calls. It is safe for concurrent use.
type Manager struct {
	o     Options
	cfg   *config.Config
	dir   *identity.Directory
	calls CallStore
	log   *slog.Logger
	clk   clock.Clock
	// pepper keys the hash that hides callers from apps without calls
	// permissions; shared by the nodes through the store.
	pepper []byte

	mu     sync.Mutex
	actors map[string]*actor
	rooms  map[string]*room // meetings in progress, by meeting id
	// roomClaims are the rooms claimed in roomKV for this node and not
	// open yet (their claim's revision), by meeting id.
	roomClaims map[string]uint64
	roomKV     *store.KV // the rooms' claims (cascade.go); nil without a store or in a takeover
	// watching are the roster watchers of meetings (watch.go), by
	// meeting id; guarded by watchMu, never held while calling one.
	watchMu   sync.Mutex
	watching  map[string]map[*meetingWatch]struct{}
	watchSubs map[string]*nats.Subscription // the room's node's changes, for meetings watched here
	apps      map[string]*appMedia          // app-hosted media of this node's calls, by call id
	perApp    map[string]int                // live calls per app|tenant on this node
	closing   bool
	wg        sync.WaitGroup // the actors
	sub       *nats.Subscription

	// bg tracks the work actors start off their goroutine (prompt and
	// hold music fetches, recordings being stored, prefetches); bgCtx is
	// cancelled when the node stops, and Shutdown and Stop wait for them.
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc

	active    prometheus.Gauge
	ended     *prometheus.CounterVec
	echoDelay prometheus.Histogram
	recFailed prometheus.Counter
	// Meetings across nodes (cascade.go).
	joinsForwarded prometheus.Counter
	cascades       *prometheus.CounterVec
	roomTakeovers  prometheus.Counter
	// appDone sums the frame counters of app ports that closed (under mu).
	appDone media.AppStats

	limits *limits      // the cluster-wide call counts; nil without a store, or in a takeover
	endedN atomic.Int64 // calls ended and deleted
}

// New opens the calls bucket and returns a Manager. Call Start to resume
// this node's calls and serve commands forwarded by other nodes.
func New(ctx context.Context, o Options) (*Manager, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	calls := o.Calls
	if calls == nil {
		kv, err := o.Store.Bucket(ctx, "sb_calls", 0)
		if err != nil {
			return nil, err
		}
		calls = kv
	}
	pepper := make([]byte, 32)
	if o.Store != nil {
		var err error
		if pepper, err = loadPepper(ctx, o.Store); err != nil {
			return nil, err
		}
	} else {
		_, _ = rand.Read(pepper)
	}
	m := &Manager{
		o: o, cfg: o.Config, dir: o.Directory, calls: calls, log: o.Logger, clk: o.Clock,
		actors: map[string]*actor{}, rooms: map[string]*room{}, roomClaims: map[string]uint64{}, watchSubs: map[string]*nats.Subscription{}, apps: map[string]*appMedia{}, perApp: map[string]int{}, pepper: pepper,
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchboard_calls_active", Help: "Calls live on this node."}),
		ended:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_calls_ended_total", Help: "Calls ended, by resultInfo code and subcode."}, []string{"code", "subcode"}),
		recFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_recordings_failed_total",
			Help: "Recordings the store refused while they were being made (a full disk, say): their recordResponse failed at once (resultInfo 500/9013)."}),
		echoDelay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "switchboard_media_socket_echo_delay_seconds",
			Help: "App-hosted media: how long a frame a bot sent straight back (an echo) took from leaving the mix to being mixed again.",
			// A typical echo takes one tick, 20 ms: the bounds stay clear of
			// multiples of it, so jitter does not move it between buckets.
			Buckets: []float64{.005, .015, .025, .035, .045, .055, .065, .085, .105, .155, .205, .305}}),
	}
	m.joinsForwarded = prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_meeting_joins_forwarded_total",
		Help: "Bots' meeting joins this node forwarded to the node that mixes the meeting, which made the call."})
	m.cascades = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_meeting_cascades_total",
		Help: "People who reached this node carried to their meeting's room on another node by a SIP leg: bridged (in the room), local (the room's node was not reached: a room here), ended (refused there)."},
		[]string{"outcome"})
	m.roomTakeovers = prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_meeting_room_takeovers_total",
		Help: "Meeting rooms this node opened afresh because the node that held them was gone or had closed them."})
	m.bgCtx, m.bgCancel = context.WithCancel(context.Background())
	if o.Store != nil && !o.Takeover {
		kv, err := o.Store.Bucket(ctx, LimitsBucket, 0)
		if err != nil {
			return nil, err
		}
		m.limits = newLimits(kv, o.Node, func() int { return m.cfg.Calls.MaxConcurrentPerApp }, o.Logger)
		if o.Meetings != nil && o.Rooms != nil {
			if m.roomKV, err = o.Store.Bucket(ctx, RoomsBucket, 0); err != nil {
				return nil, err
			}
		}
	}
	frames := func(dir, outcome string, f func(media.AppStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchboard_media_socket_frames_total",
			Help:        "App-hosted media frames, to the bots (sent, dropped: the bot read too slowly) and from them (received, dropped: sent too far ahead).",
			ConstLabels: prometheus.Labels{"direction": dir, "outcome": outcome}},
			func() float64 { return float64(f(m.appFrames())) })
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{m.active, m.ended, m.echoDelay, m.recFailed, m.joinsForwarded, m.cascades, m.roomTakeovers,
			frames("toBot", "sent", func(s media.AppStats) uint64 { return s.Sent }),
			frames("toBot", "dropped", func(s media.AppStats) uint64 { return s.Dropped }),
			frames("fromBot", "received", func(s media.AppStats) uint64 { return s.Received }),
			frames("fromBot", "dropped", func(s media.AppStats) uint64 { return s.Overrun }),
		} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("callctl: metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Start resumes the calls this node owned before a restart and subscribes
// to commands forwarded by other nodes.
func (m *Manager) Start(ctx context.Context) error {
	if m.o.Store != nil {
		sub, err := m.o.Store.Conn().Subscribe(nodeSubject(m.o.Node), m.serveForwarded)
		if err != nil {
			return fmt.Errorf("callctl: subscribe: %w", err)
		}
		m.sub = sub
	}
	// The hold music is ready before the first call needs it: the
	// built-in chime made, the configured one being fetched.
	media.HoldChime()
	if uri := m.cfg.Media.HoldMusic; uri != "" && m.o.Prompts != nil {
		m.goBG(func(ctx context.Context) { m.o.Prompts.Prefetch(ctx, []graph.MediaInfo{{URI: uri}}) })
	}
	keys, err := m.calls.Keys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		data, rev, err := m.calls.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		var rec Record
		if err := json.Unmarshal(data, &rec); err != nil {
			m.log.Error("drop unreadable call record", "call", k, "err", err)
			_ = m.calls.Delete(ctx, k)
			continue
		}
		if rec.Node != m.o.Node {
			continue
		}
		if err := m.resume(ctx, &rec, rev); err != nil {
			return fmt.Errorf("callctl: resume call %s: %w", k, err)
		}
	}
	if m.limits != nil {
		// The counts this node left in the store become those of the
		// calls it resumed.
		return m.limits.sync(ctx)
	}
	return nil
}

// goBG runs f off the actors, tracked: Shutdown and Stop cancel its
// context and wait for it.
func (m *Manager) goBG(f func(ctx context.Context)) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bgCtx.Err() != nil {
		return false
	}
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		f(m.bgCtx)
	}()
	return true
}

// stopBG cancels the background work and waits for it.
func (m *Manager) stopBG() {
	m.mu.Lock()
	m.bgCancel()
	m.mu.Unlock()
	m.bg.Wait()
}

// Shutdown stops accepting calls (Create and Incoming answer 503), lets
// the live ones finish until drainBy while their bots still drive them,
// then ends the rest (each with a terminated notification, 503/9007).
// Commands other nodes forward for its calls are served until the calls
// are gone: a bot's request reaches any node behind the balancer. When
// ctx ends first, the calls still running are abandoned as Stop does,
// left in the store for the next start. Either way it returns once no
// goroutine of the Manager is left.
func (m *Manager) Shutdown(ctx context.Context, drainBy time.Time) error {
	m.mu.Lock()
	m.closing = true
	m.mu.Unlock()
	unsubscribe := func() {
		if m.sub != nil {
			_ = m.sub.Unsubscribe()
		}
	}
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	drain := time.NewTimer(time.Until(drainBy))
	defer drain.Stop()
	select {
	case <-done:
		unsubscribe()
		m.stopBG()
		return nil
	case <-ctx.Done():
	case <-drain.C:
	}
	actors := m.live()
	if len(actors) > 0 {
		m.log.Info("ending calls still up at shutdown", "calls", len(actors))
	}
	for _, a := range actors {
		a.post(func(a *actor) {
			a.end(errs.ServerShutdown, true)
			if a.bridged != nil {
				a.endBridged(errs.ServerShutdown) // a redirected call the bot no longer sees
			}
		})
	}
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		left := m.live()
		m.log.Warn("calls not ended by the shutdown deadline; left for the next start", "calls", len(left))
		for _, a := range left {
			a.abandon()
		}
		<-done
	}
	unsubscribe()
	m.stopBG()
	if m.limits != nil {
		m.limits.wait()
	}
	return err
}

// Stop abandons the node's actors without ending their calls, as a crash
// would: the calls stay in the store for the next start to resume. Tests
// use it to restart a node.
func (m *Manager) Stop() {
	m.mu.Lock()
	m.closing = true
	m.mu.Unlock()
	if m.sub != nil {
		_ = m.sub.Unsubscribe()
	}
	for _, a := range m.live() {
		a.abandon()
	}
	m.wg.Wait()
	m.stopBG()
	if m.limits != nil {
		m.limits.wait()
	}
}

// live returns the actors running now.
func (m *Manager) live() []*actor {
	m.mu.Lock()
	defer m.mu.Unlock()
	actors := make([]*actor, 0, len(m.actors))
	for _, a := range m.actors {
		actors = append(actors, a)
	}
	return actors
}

// Ended reports how many calls this Manager has ended (their terminated
// notification queued and their record deleted) since it was made.
func (m *Manager) Ended() int { return int(m.endedN.Load()) }

// Live reports how many calls this node runs.
func (m *Manager) Live() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.actors)
}

// load reads a call's record and checks the caller may see it: another
// tenant's or another application's call is NotFound, so its existence
// does not leak.
func (m *Manager) load(ctx context.Context, c Caller, callID string) (*Record, uint64, error) {
	id := normID(callID)
	data, rev, err := m.calls.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !validKey(id)) {
		return nil, 0, notFound(callID)
	}
	if err != nil {
		return nil, 0, errs.Wrap(errs.Unavailable, err, "The call store is unavailable.")
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, 0, errs.Wrap(errs.Internal, err, "read call %s", callID)
	}
	if !strings.EqualFold(rec.TenantID, c.TenantID) || !strings.EqualFold(rec.AppID, c.AppID) {
		return nil, 0, notFound(callID)
	}
	return &rec, rev, nil
}

func validKey(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func notFound(callID string) error {
	return errs.E(errs.NotFound, "Call %s was not found: it does not exist, has ended, or belongs to another application or tenant.", callID)
}

// Get returns the call as GET /communications/calls/{id} shows it.
func (m *Manager) Get(ctx context.Context, c Caller, callID string) (*graph.Call, error) {
	if !validKey(normID(callID)) {
		return nil, notFound(callID)
	}
	rec, _, err := m.load(ctx, c, callID)
	if err != nil {
		return nil, err
	}
	call := rec.Call
	call.ODataType = graph.TypeCall
	return &call, nil
}

// Participants returns the call's roster.
func (m *Manager) Participants(ctx context.Context, c Caller, callID string) ([]graph.Participant, error) {
	if !validKey(normID(callID)) {
		return nil, notFound(callID)
	}
	rec, _, err := m.load(ctx, c, callID)
	if err != nil {
		return nil, err
	}
	return rec.Participants, nil
}

// Participant returns one roster entry.
func (m *Manager) Participant(ctx context.Context, c Caller, callID, pid string) (*graph.Participant, error) {
	ps, err := m.Participants(ctx, c, callID)
	if err != nil {
		return nil, err
	}
	for i := range ps {
		if strings.EqualFold(ps[i].ID, pid) {
			return &ps[i], nil
		}
	}
	return nil, errs.E(errs.NotFound, "Participant %s was not found in call %s.", pid, callID)
}

// Operation returns one of the call's operations.
func (m *Manager) Operation(ctx context.Context, c Caller, callID, opID string) (*graph.Operation, error) {
	if !validKey(normID(callID)) {
		return nil, notFound(callID)
	}
	rec, _, err := m.load(ctx, c, callID)
	if err != nil {
		return nil, err
	}
	op := rec.operation(opID)
	if op == nil {
		return nil, errs.E(errs.NotFound, "Operation %s was not found in call %s.", opID, callID)
	}
	cp := *op
	return &cp, nil
}

// command is what travels to the call's owner, locally or over NATS.
type command struct {
	Op          string `json:"op"`
	CallID      string `json:"callId"`
	Participant string `json:"participant,omitempty"` // for participant actions
	Caller      Caller `json:"caller"`
	// Body is Req on the wire, when the command is forwarded.
	Body json.RawMessage `json:"body,omitempty"`

	action *Action // Op, looked up
	Req    any     `json:"-"` // the action's request, decoded once
}

// reply is the owner's answer to a forwarded command.
type forwardReply struct {
	Operation *graph.Operation `json:"operation,omitempty"`
	ErrKind   *errs.Kind       `json:"errKind,omitempty"`
	ErrMsg    string           `json:"errMsg,omitempty"`
	// Call is a forwarded create's call; RoomOpen answers a room.ask
	// (cascade.go).
	Call     *graph.Call         `json:"call,omitempty"`
	RoomOpen bool                `json:"roomOpen,omitempty"`
	Roster   []graph.Participant `json:"roster,omitempty"` // a room.roster's answer
}

func nodeSubject(node string) string { return "sb.node." + node + ".cmd" }

// Do runs an action on a call (pid empty) or on one of its participants,
// with the request graphapi decoded into x.NewRequest(), on the node that
// owns the call. It returns the action's operation, if it has one.
func (m *Manager) Do(ctx context.Context, c Caller, callID, pid string, x *Action, req any) (*graph.Operation, error) {
	cmd := &command{Op: x.Name, CallID: callID, Participant: pid, Caller: c, action: x, Req: req}
	if x.Participant {
		cmd.Op = "participants/" + x.Name
	}
	return m.exec(ctx, cmd)
}

// lookup finds the action a forwarded command names.
func lookup(op string) (*Action, bool) {
	switch op {
	case HangUp.Name:
		return HangUp, true
	case "participants/" + RemoveParticipant.Name:
		return RemoveParticipant, true
	}
	if x, ok := actions[op]; ok {
		return x, true
	}
	if name, ok := strings.CutPrefix(op, "participants/"); ok {
		return LookupAction(name, true)
	}
	return nil, false
}

// exec runs cmd on the node that owns the call.
func (m *Manager) exec(ctx context.Context, cmd *command) (*graph.Operation, error) {
	if !validKey(normID(cmd.CallID)) {
		return nil, notFound(cmd.CallID)
	}
	m.mu.Lock()
	a := m.actors[normID(cmd.CallID)]
	m.mu.Unlock()
	if a != nil {
		// This node runs the call: the caller is checked against the
		// actor's copy of its owners, without a round trip to the store.
		if !strings.EqualFold(a.tenantID, cmd.Caller.TenantID) || !strings.EqualFold(a.appID, cmd.Caller.AppID) {
			return nil, notFound(cmd.CallID)
		}
		if cmd.action.notYet != "" {
			return nil, errs.E(errs.NotSupported, "%s", cmd.action.notYet)
		}
		return m.execLocal(ctx, cmd)
	}
	rec, _, err := m.load(ctx, cmd.Caller, cmd.CallID)
	if err != nil {
		return nil, err
	}
	if cmd.action.notYet != "" {
		return nil, errs.E(errs.NotSupported, "%s", cmd.action.notYet)
	}
	if rec.Node == m.o.Node || m.o.Store == nil {
		return m.execLocal(ctx, cmd)
	}
	if cmd.Req != nil {
		if cmd.Body, err = json.Marshal(cmd.Req); err != nil {
			return nil, errs.Wrap(errs.Internal, err, "encode %s", cmd.Op)
		}
	}
	data, err := json.Marshal(cmd)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "encode %s", cmd.Op)
	}
	msg, err := m.o.Store.Conn().RequestWithContext(ctx, nodeSubject(rec.Node), data)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "The node that owns call %s (%s) did not answer.", cmd.CallID, rec.Node)
	}
	var r forwardReply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "forwarded command")
	}
	if r.ErrKind != nil {
		return nil, errs.E(*r.ErrKind, "%s", r.ErrMsg)
	}
	return r.Operation, nil
}

// serveForwarded runs a command another node forwarded for a call this
// node owns.
func (m *Manager) serveForwarded(msg *nats.Msg) {
	r := m.runForwarded(msg.Data)
	data, _ := json.Marshal(r)
	_ = msg.Respond(data)
}

func (m *Manager) runForwarded(data []byte) forwardReply {
	fail := func(err error) forwardReply {
		k := errs.KindOf(err)
		return forwardReply{ErrKind: &k, ErrMsg: errs.Message(err)}
	}
	var cmd command
	if err := json.Unmarshal(data, &cmd); err != nil {
		return fail(errs.E(errs.BadRequest, "malformed forwarded command"))
	}
	switch cmd.Op {
	case opRoomAsk:
		return m.serveRoomAsk(cmd.Body)
	case opRoomRoster:
		return m.serveRoomRoster(cmd.Body)
	case opCreate:
		return m.serveCreate(cmd.Caller, cmd.Body)
	}
	x, ok := lookup(cmd.Op)
	if !ok {
		return fail(errs.E(errs.BadRequest, "forwarded command: unknown action %q", cmd.Op))
	}
	cmd.action, cmd.Req = x, x.NewRequest()
	if len(cmd.Body) > 0 {
		if err := json.Unmarshal(cmd.Body, cmd.Req); err != nil {
			return fail(errs.E(errs.BadRequest, "forwarded command: malformed %s request", cmd.Op))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	op, err := m.execLocal(ctx, &cmd)
	if err != nil {
		return fail(err)
	}
	return forwardReply{Operation: op}
}

// execLocal hands cmd to the call's actor and waits for its answer. Every
// command the actor accepts is answered: after its step is stored, or, if
// the call ends first, with 404 (see actor.exit).
func (m *Manager) execLocal(ctx context.Context, cmd *command) (*graph.Operation, error) {
	m.mu.Lock()
	a := m.actors[normID(cmd.CallID)]
	m.mu.Unlock()
	done := make(chan result, 1)
	if a == nil || !a.submit(cmd, done) {
		return nil, notFound(cmd.CallID)
	}
	select {
	case r := <-done:
		return r.op, r.err
	case <-ctx.Done():
		return nil, errs.Wrap(errs.Unavailable, ctx.Err(), "Call %s did not answer in time.", cmd.CallID)
	}
}

// loadPepper returns the deployment's secret for encrypted identities,
// creating it on first start.
func loadPepper(ctx context.Context, st *store.Store) ([]byte, error) {
	kv, err := st.Bucket(ctx, "sb_meta", 0)
	if err != nil {
		return nil, err
	}
	if v, _, err := kv.Get(ctx, "identity-pepper"); err == nil {
		return v, nil
	}
	p := make([]byte, 32)
	_, _ = rand.Read(p)
	if _, err := kv.Create(ctx, "identity-pepper", p); errors.Is(err, store.ErrExists) {
		v, _, err := kv.Get(ctx, "identity-pepper")
		return v, err
	} else if err != nil {
		return nil, err
	}
	return p, nil
}
