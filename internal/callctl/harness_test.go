package callctl

// The unit harness of call control: a Manager on an in-memory CallStore
// and Notifier, legs the test drives by hand, and a clock that fires
// timers only when told. It runs the state machine without SIP, HTTP or
// JetStream (those are tested end to end in internal/calltest and
// internal/sipgw); what it adds is determinism: after h.sync(call) every
// step posted so far has run and is stored, so a test can assert exactly
// which notifications a step produced.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/clock"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/identity"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/store"
	"github.com/switchboard-voice/switchboard/internal/webhook"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

const (
	tTenant = "11111111-1111-4111-8111-111111111111"
	tAlice  = "a0000000-0000-4000-8000-00000000000a"
	tBob    = "b0000000-0000-4000-8000-00000000000b"
	tCarol  = "c0000000-0000-4000-8000-00000000000c"
	tBot    = "b0700000-0000-4000-8000-0000000000b1"
	tOther  = "b0700000-0000-4000-8000-0000000000b2"
	tHook   = "http://127.0.0.1:9/hook"
)

var errDown = errors.New("store down (test)")

// memStore is a CallStore in memory with JetStream KV's compare-and-set
// rules; down makes every write fail.
type memStore struct {
	mu     sync.Mutex
	rev    uint64
	m      map[string]memEntry
	down   atomic.Bool
	writes atomic.Int64
	// onCreate, if set, runs as a record is created.
	onCreate func()
}

type memEntry struct {
	val []byte
	rev uint64
}

func newMemStore() *memStore { return &memStore{m: map[string]memEntry{}} }

func (s *memStore) Get(_ context.Context, key string) ([]byte, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok {
		return nil, 0, store.ErrNotFound
	}
	return e.val, e.rev, nil
}

func (s *memStore) Create(_ context.Context, key string, val []byte) (uint64, error) {
	if s.down.Load() {
		return 0, errDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; ok {
		return 0, store.ErrExists
	}
	if s.onCreate != nil {
		s.onCreate()
	}
	s.rev++
	s.m[key] = memEntry{val, s.rev}
	s.writes.Add(1)
	return s.rev, nil
}

func (s *memStore) Update(_ context.Context, key string, val []byte, rev uint64) (uint64, error) {
	if s.down.Load() {
		return 0, errDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; !ok || e.rev != rev {
		return 0, store.ErrConflict
	}
	s.rev++
	s.m[key] = memEntry{val, s.rev}
	s.writes.Add(1)
	return s.rev, nil
}

func (s *memStore) Delete(_ context.Context, key string) error {
	if s.down.Load() {
		return errDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	s.writes.Add(1)
	return nil
}

func (s *memStore) Keys(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

func (s *memStore) record(t *testing.T, id string) *Record {
	t.Helper()
	data, _, err := s.Get(context.Background(), id)
	if err != nil {
		return nil
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	return &rec
}

// memNotifier is the webhook outbox in memory, deduplicating by id as
// the JetStream stream does; down makes Enqueue fail.
type memNotifier struct {
	mu   sync.Mutex
	seen map[string]bool
	got  []webhook.Notification
	down atomic.Bool
}

func (n *memNotifier) Enqueue(_ context.Context, x webhook.Notification) error {
	if n.down.Load() {
		return errs.E(errs.Unavailable, "outbox down (test)")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.seen == nil {
		n.seen = map[string]bool{}
	}
	if x.ID == "" {
		return errors.New("notification without id")
	}
	if n.seen[x.ID] {
		return nil
	}
	n.seen[x.ID] = true
	n.got = append(n.got, x)
	return nil
}

// note is a notification as the tables write it: "changeType kind state",
// kind being call or operation, state the call's state or the
// operation's status (with its subcode when it failed).
func note(n webhook.Notification) string {
	var env graph.CommsNotifications
	if err := json.Unmarshal(n.Body, &env); err != nil || len(env.Value) != 1 {
		return "malformed"
	}
	v := env.Value[0]
	if strings.HasSuffix(v.ResourceURL, "/participants") {
		var roster []graph.Participant
		_ = json.Unmarshal(v.ResourceData, &roster)
		s := fmt.Sprintf("%s roster", v.ChangeType)
		for _, p := range roster {
			_, id := p.Info.Identity.Primary()
			s += " " + id.DisplayName
			if p.IsMuted {
				s += "(muted)"
			}
			if p.IsInLobby {
				s += "(lobby)"
			}
			if p.DominantSpeaker {
				s += "*"
			}
		}
		return s
	}
	if strings.Contains(v.ResourceURL, "/operations/") {
		var op graph.Operation
		_ = json.Unmarshal(v.ResourceData, &op)
		s := fmt.Sprintf("%s operation %s", v.ChangeType, op.Status)
		if op.Status == graph.OperationFailed && op.ResultInfo != nil {
			s += fmt.Sprintf(" %d", op.ResultInfo.Subcode)
		}
		return s
	}
	var c graph.Call
	_ = json.Unmarshal(v.ResourceData, &c)
	s := fmt.Sprintf("%s call %s", v.ChangeType, c.State)
	if c.ToneInfo != nil {
		s += " " + string(c.ToneInfo.Tone)
	}
	if c.ResultInfo != nil {
		s += fmt.Sprintf(" %d", c.ResultInfo.Subcode)
	}
	return s
}

// take returns the notifications of call queued since the last take.
func (n *memNotifier) take(call string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	keep := n.got[:0]
	for _, x := range n.got {
		if x.CallID == call {
			out = append(out, note(x))
		} else {
			keep = append(keep, x)
		}
	}
	n.got = keep
	return out
}

// stepClock is a fake clock whose due timers fire synchronously, in
// order, inside Advance: a timer's step is in the actor's mailbox when
// Advance returns.
type stepClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*stepTimer
}

type stepTimer struct {
	c    *stepClock
	at   time.Time
	f    func()
	done bool
}

func (t *stepTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &stepTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (c *stepClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*stepTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.done:
		case !t.at.After(c.now):
			t.done = true
			due = append(due, t)
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

// fakeLeg is a far end the test drives: it records what call control
// asked of it, and reports what the test says happened.
type fakeLeg struct {
	id        string
	mu        sync.Mutex
	ev        func(LegEvent)
	did       []string
	answerErr error
	port      *fakePort
	told      chan struct{} // if set, told of each request
}

var _ PortLeg = (*fakeLeg)(nil)

func (l *fakeLeg) log(s string) {
	l.mu.Lock()
	l.did = append(l.did, s)
	if l.told != nil {
		select {
		case l.told <- struct{}{}:
		default:
		}
	}
	l.mu.Unlock()
}

// waitAsked waits (bounded) until something is asked of the leg; the leg
// must have been made with told.
func (l *fakeLeg) waitAsked(t *testing.T) {
	t.Helper()
	select {
	case <-l.told:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing was asked of the leg in 10 s")
	}
}

func (l *fakeLeg) Answer() error {
	l.log("answer")
	return l.answerErr
}
func (l *fakeLeg) Reject(r errs.EndReason) { l.log(fmt.Sprintf("reject %d", r.Subcode)) }
func (l *fakeLeg) HangUp(r errs.EndReason) { l.log(fmt.Sprintf("hangUp %d", r.Subcode)) }
func (l *fakeLeg) SendTones(tones []graph.Tone, _ time.Duration, done func()) error {
	l.log(fmt.Sprintf("tones %d", len(tones)))
	return nil
}
func (l *fakeLeg) Ref() LegRef          { return LegRef{Kind: "fake", Data: json.RawMessage(`"` + l.id + `"`)} }
func (l *fakeLeg) MediaPort() MediaPort { return l.port }
func (l *fakeLeg) emit(k LegEventKind) {
	l.ev(LegEvent{Kind: k, Reason: errs.EndedByRemote, Tone: graph.Tone1})
}

func (l *fakeLeg) end(r errs.EndReason) { l.ev(LegEvent{Kind: LegEnded, Reason: r}) }

// press sends keys as the far end's tones.
func (l *fakeLeg) press(keys string) {
	for _, k := range keys {
		t, _ := graph.ParseTone(string(k))
		l.ev(LegEvent{Kind: LegTone, Tone: t})
	}
}

// did returns what was asked of the leg since the last call.
func (l *fakeLeg) asked() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.did
	l.did = nil
	return out
}

// fakePort is a leg's service-hosted media: it records what it is asked
// and completes nothing by itself; the test calls the callbacks.
type fakePort struct {
	mu       sync.Mutex
	played   int
	playDone func(bool)
	plays    chan struct{} // if set, told of each Play
	recDone  func(media.RecordResult)
}

func (p *fakePort) Play(_ *media.Audio, _ bool, done func(bool)) {
	p.mu.Lock()
	p.played++
	p.playDone = done
	if p.plays != nil {
		select {
		case p.plays <- struct{}{}:
		default:
		}
	}
	p.mu.Unlock()
}

// waitPlay waits (bounded) until something plays on the port; the port
// must have been made with plays.
func (p *fakePort) waitPlay(t *testing.T) {
	t.Helper()
	select {
	case <-p.plays:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing played on the port in 10 s")
	}
}
func (p *fakePort) StopPlay() {
	p.mu.Lock()
	done := p.playDone
	p.playDone = nil
	p.mu.Unlock()
	if done != nil {
		done(false)
	}
}
func (p *fakePort) Record(_ media.RecordOptions, _ func([]int16), done func(media.RecordResult)) {
	p.mu.Lock()
	p.recDone = done
	p.mu.Unlock()
}
func (p *fakePort) StopRecord() {
	p.mu.Lock()
	done := p.recDone
	p.recDone = nil
	p.mu.Unlock()
	if done != nil {
		done(media.RecordResult{})
	}
}
func (p *fakePort) DetectTones(bool) {}
func (p *fakePort) SetMuted(bool)    {}

// finishPlay completes the prompt playing now.
func (p *fakePort) finishPlay() bool {
	p.mu.Lock()
	done := p.playDone
	p.playDone = nil
	p.mu.Unlock()
	if done != nil {
		done(true)
	}
	return done != nil
}

// finishRecord ends the recording in progress for reason.
func (p *fakePort) finishRecord(reason media.RecordReason) bool {
	p.mu.Lock()
	done := p.recDone
	p.recDone = nil
	p.mu.Unlock()
	if done != nil {
		done(media.RecordResult{Reason: reason})
	}
	return done != nil
}

// fakeDialer places fakeLegs; targets named in refuse fail to route.
type fakeDialer struct {
	mu        sync.Mutex
	legs      map[string]*fakeLeg
	order     []*fakeLeg
	resumeErr error
	released  []LegRef
}

func (d *fakeDialer) Dial(callID string, t Target, ev func(LegEvent)) (Leg, error) {
	l := &fakeLeg{id: callID, ev: ev, port: &fakePort{plays: make(chan struct{}, 1)}}
	d.mu.Lock()
	d.legs[callID] = l
	d.order = append(d.order, l)
	d.mu.Unlock()
	return l, nil
}

// dialed returns the legs dialed so far, in order.
func (d *fakeDialer) dialed() []*fakeLeg {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.order)
}

func (d *fakeDialer) Resume(callID string, ref LegRef, _ graph.CallState, ev func(LegEvent)) (Leg, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.resumeErr != nil {
		d.released = append(d.released, ref)
		return nil, d.resumeErr
	}
	l := &fakeLeg{id: callID, ev: ev, port: &fakePort{}}
	d.legs[callID] = l
	return l, nil
}

func (d *fakeDialer) leg(callID string) *fakeLeg {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.legs[callID]
}

// fakePrompts serves every prompt at once, unless block is set: then Get
// waits for its context.
type fakePrompts struct {
	block   atomic.Bool
	started chan struct{}
	aborted atomic.Int64
}

func (p *fakePrompts) Get(ctx context.Context, _ graph.MediaInfo) (*media.Audio, error) {
	if p.block.Load() {
		select {
		case p.started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		p.aborted.Add(1)
		return nil, ctx.Err()
	}
	return media.Beep, nil
}
func (p *fakePrompts) Prefetch(context.Context, []graph.MediaInfo) {}

// fakeRecordings stores recordings in memory; with hold set, Finish waits
// until release is closed.
type fakeRecordings struct {
	mu       sync.Mutex
	finishes int
	hold     chan struct{}
	entered  chan struct{}
}

type fakeRecording struct {
	s        *fakeRecordings
	finished bool
}

func (r *fakeRecordings) Begin(context.Context, string, string) (Recording, error) {
	return &fakeRecording{s: r}, nil
}

func (r *fakeRecording) Write([]int16)        {}
func (r *fakeRecording) Abort()               {}
func (r *fakeRecording) Failed() <-chan error { return nil }
func (r *fakeRecording) Finish(ctx context.Context) (string, string, error) {
	r.s.mu.Lock()
	r.s.finishes++
	hold := r.s.hold
	r.s.mu.Unlock()
	if r.finished {
		return "", "", errors.New("recording already finished")
	}
	r.finished = true
	if hold != nil {
		r.s.entered <- struct{}{}
		select {
		case <-hold:
		case <-ctx.Done():
			return "", "", ctx.Err()
		}
	}
	return "http://127.0.0.1/recordings/x", "token", nil
}

// fakeConference records what call control asks of a group call's media.
type fakeConference struct {
	fakePort
	mu       sync.Mutex
	did      []string
	closed   bool
	dominant func(pid string) // what call control gave for dominant-speaker changes
}

func (c *fakeConference) log(s string) {
	c.mu.Lock()
	c.did = append(c.did, s)
	c.mu.Unlock()
}
func (c *fakeConference) Add(pid string, _ *media.Session) error { c.log("add"); return nil }
func (c *fakeConference) Remove(pid string)                      { c.log("remove") }
func (c *fakeConference) MuteMember(pid string, muted bool)      { c.log(fmt.Sprintf("mute %v", muted)) }
func (c *fakeConference) Close()                                 { c.log("close") }

func (c *fakeConference) asked() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.did
	c.did = nil
	return out
}

// fakeMeetings is a directory of one meeting.
type fakeMeetings struct{ m Meeting }

func (f *fakeMeetings) ByThreadID(_ context.Context, tenant, thread string) (*Meeting, error) {
	if thread != f.m.ThreadID || !strings.EqualFold(tenant, f.m.TenantID) {
		return nil, errs.E(errs.NotFound, "no meeting of thread %s", thread)
	}
	m := f.m
	return &m, nil
}

func (f *fakeMeetings) ByConferenceID(_ context.Context, id string) (*Meeting, error) {
	if id != f.m.ConferenceID {
		return nil, errs.E(errs.NotFound, "no meeting with conference id %s", id)
	}
	m := f.m
	return &m, nil
}

func (f *fakeMeetings) ByJoinMeetingID(_ context.Context, tenant, id string) (*Meeting, error) {
	if id != f.m.JoinMeetingID || !strings.EqualFold(tenant, f.m.TenantID) {
		return nil, errs.E(errs.NotFound, "no meeting %s", id)
	}
	m := f.m
	return &m, nil
}

// fakeRoom records what call control asks of a meeting's conference.
type fakeRoom struct {
	fakeConference
	ports int
}

func (r *fakeRoom) NewPort(name string) (BotPort, error) {
	r.log("port")
	r.mu.Lock()
	r.ports++
	r.mu.Unlock()
	return &fakeBotPort{room: r}, nil
}

type fakeBotPort struct {
	fakePort
	room *fakeRoom
}

func (p *fakeBotPort) Close() { p.room.log("port closed") }

// harness is a Manager on the fakes above.
type harness struct {
	t     *testing.T
	m     *Manager
	st    *memStore
	nt    *memNotifier
	dl    *fakeDialer
	clk   *stepClock
	pr    *fakePrompts
	recs  *fakeRecordings
	confs map[string]*fakeConference
	rooms map[string]*fakeRoom
	cmu   sync.Mutex
	meet  *fakeMeetings
	bot   Caller
	other Caller
	cfg   *config.Config
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, st: newMemStore(), nt: &memNotifier{}, dl: &fakeDialer{legs: map[string]*fakeLeg{}},
		clk: &stepClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		pr:  &fakePrompts{started: make(chan struct{}, 1)}, recs: &fakeRecordings{},
		confs: map[string]*fakeConference{}, rooms: map[string]*fakeRoom{},
		meet: &fakeMeetings{m: Meeting{ID: "mtg1", TenantID: tTenant, ThreadID: "19:meeting_abc@thread.v2",
			JoinMeetingID: "1234567", Passcode: "2468", PasscodeRequired: true, Subject: "Standup", ConferenceID: "445566",
			Organizer: &graph.IdentitySet{User: &graph.Identity{ID: tAlice}}}}}
	h.start(h.st)
	return h
}

// start runs a Manager (again, after a restart) on st.
func (h *harness) start(st *memStore) {
	h.t.Helper()
	cfg := config.Default()
	cfg.Tenants = []config.Tenant{{ID: tTenant, DisplayName: "Test", Users: []config.User{
		{ID: tAlice, DisplayName: "Alice"}, {ID: tBob, DisplayName: "Bob"}, {ID: tCarol, DisplayName: "Carol"}}}}
	all := config.Permissions
	cfg.Applications = []config.Application{
		{ID: tBot, DisplayName: "Bot", Secret: "s", Tenants: []string{tTenant}, Permissions: all, CallbackURI: tHook},
		{ID: tOther, DisplayName: "Other", Secret: "s", Tenants: []string{tTenant}, Permissions: all, CallbackURI: tHook},
	}
	h.cfg = &cfg
	m, err := New(context.Background(), Options{Node: "n1", Config: &cfg, Directory: identity.NewDirectory(&cfg),
		Calls: st, Notifier: h.nt, Dialer: h.dl, Prompts: h.pr, Recordings: h.recs, Clock: h.clk,
		Conferences: func(callID string, onDominant func(string)) (Conference, error) {
			c := &fakeConference{dominant: onDominant}
			c.plays = make(chan struct{}, 1)
			h.cmu.Lock()
			h.confs[callID] = c
			h.cmu.Unlock()
			return c, nil
		},
		Meetings: h.meet,
		Rooms: func(id string, _ func(string)) (RoomMedia, error) {
			r := &fakeRoom{}
			h.cmu.Lock()
			h.rooms[id] = r
			h.cmu.Unlock()
			return r, nil
		}})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.m = m
	h.bot = Caller{TenantID: tTenant, AppID: tBot, Roles: all}
	h.other = Caller{TenantID: tTenant, AppID: tOther, Roles: all}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx, time.Now()); err != nil {
			h.t.Errorf("shutdown: %v", err)
		}
	})
}

// syncAction is a command that does nothing: its answer comes once every
// step before it is stored (or the call is gone).
var syncAction = &Action{Name: "sync", run: func(*actor, *command) (*graph.Operation, error) { return nil, nil }}

// sync waits until every step posted to call so far has run and is
// stored; when the call has ended, until its actor has exited.
func (h *harness) sync(call string) {
	h.t.Helper()
	h.m.mu.Lock()
	a := h.m.actors[call]
	h.m.mu.Unlock()
	if a == nil {
		return
	}
	done := make(chan result, 1)
	if !a.submit(&command{Op: "sync", CallID: call, Caller: h.bot, action: syncAction}, done) {
		<-a.done
		return
	}
	select {
	case r := <-done:
		if r.err == nil {
			return
		}
	case <-time.After(10 * time.Second):
		h.t.Fatalf("call %s: its actor did not answer in 10 s", call)
	}
	// The call has ended for the bot: its actor exits once all is stored,
	// or lives on while a redirected or transferred call is bridged.
	ran := make(chan struct{})
	if !a.post(func(*actor) { close(ran) }) {
		<-a.done
		return
	}
	select {
	case <-ran:
	case <-a.done:
	case <-time.After(10 * time.Second):
		h.t.Fatalf("call %s ended but its actor neither exited nor ran in 10 s", call)
	}
}

// settle waits until the rooms have handled every leg event so far, then
// syncs the calls.
func (h *harness) settle(calls ...string) {
	h.t.Helper()
	h.m.mu.Lock()
	rooms := make([]*room, 0, len(h.m.rooms))
	for _, r := range h.m.rooms {
		rooms = append(rooms, r)
	}
	h.m.mu.Unlock()
	for _, r := range rooms {
		done := make(chan struct{})
		r.events.do(func() { close(done) })
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			h.t.Fatal("a room's events did not drain in 10 s")
		}
	}
	for _, c := range calls {
		h.sync(c)
	}
}

// do runs the named action with req.
func (h *harness) do(c Caller, call, name, pid string, req any) (*graph.Operation, error) {
	var x *Action
	switch {
	case name == "hangUp":
		x = HangUp
	case name == "remove":
		x = RemoveParticipant
	case pid != "":
		x, _ = LookupAction(name, true)
	default:
		x, _ = LookupAction(name, false)
	}
	if x == nil {
		h.t.Fatalf("no action %q", name)
	}
	if req == nil {
		req = x.NewRequest()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h.m.Do(ctx, c, call, pid, x, req)
}

// incoming makes an incoming call from Alice to the bot.
func (h *harness) incoming() (string, *fakeLeg) {
	h.t.Helper()
	var leg *fakeLeg
	id, err := h.m.Incoming(context.Background(), IncomingCall{TenantID: tTenant, AppID: tBot,
		Caller: &graph.IdentitySet{User: &graph.Identity{ID: tAlice, DisplayName: "Alice"}},
		Called: &graph.IdentitySet{Application: &graph.Identity{ID: tBot}},
		NewLeg: func(callID string, ev func(LegEvent)) Leg {
			leg = &fakeLeg{id: callID, ev: ev, port: &fakePort{}}
			return leg
		}})
	if err != nil {
		h.t.Fatal(err)
	}
	h.sync(id)
	return id, leg
}

// outgoing makes a call from the bot to Bob.
func (h *harness) outgoing() (string, *fakeLeg) {
	h.t.Helper()
	call, err := h.m.Create(context.Background(), h.bot, &graph.Call{
		CallbackURI: tHook,
		MediaConfig: &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig},
		Targets: []graph.InvitationParticipantInfo{{Identity: &graph.IdentitySet{
			User: &graph.Identity{ID: tBob}}}},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.sync(call.ID)
	return call.ID, h.dl.leg(call.ID)
}

// state is the call's state as GET shows it; "gone" once it is not found.
func (h *harness) state(call string) string {
	c, err := h.m.Get(context.Background(), h.bot, call)
	if errs.KindOf(err) == errs.NotFound {
		return "gone"
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return string(c.State)
}

func (h *harness) leak(call string) {
	h.t.Helper()
	if h.m.Live() != 0 {
		h.t.Errorf("call %s: %d actors left", call, h.m.Live())
	}
}
