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
	Node       string
	Config     *config.Config
	Directory  *identity.Directory
	Store      *store.Store
	Notifier   Notifier
	Dialer     Dialer
	Prompts    PromptSource
	Recordings RecordingStore
	Clock      clock.Clock
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Manager owns this node's calls. It is safe for concurrent use.
type Manager struct {
	o     Options
	cfg   *config.Config
	dir   *identity.Directory
	calls *store.KV
	log   *slog.Logger
	clk   clock.Clock
	// pepper keys the hash that hides callers from apps without calls
	// permissions; shared by the nodes through the store.
	pepper []byte

	mu      sync.Mutex
	actors  map[string]*actor
	perApp  map[string]int // live calls per app|tenant on this node
	closing bool
	wg      sync.WaitGroup
	sub     *nats.Subscription

	active prometheus.Gauge
	ended  *prometheus.CounterVec
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
	kv, err := o.Store.Bucket(ctx, "sb_calls", 0)
	if err != nil {
		return nil, err
	}
	pepper, err := loadPepper(ctx, o.Store)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		o: o, cfg: o.Config, dir: o.Directory, calls: kv, log: o.Logger, clk: o.Clock,
		actors: map[string]*actor{}, perApp: map[string]int{}, pepper: pepper,
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchboard_calls_active", Help: "Calls live on this node."}),
		ended:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_calls_ended_total", Help: "Calls ended, by resultInfo code and subcode."}, []string{"code", "subcode"}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{m.active, m.ended} {
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
	sub, err := m.o.Store.Conn().Subscribe(nodeSubject(m.o.Node), m.serveForwarded)
	if err != nil {
		return fmt.Errorf("callctl: subscribe: %w", err)
	}
	m.sub = sub
	// The hold music is ready before the first call needs it: the
	// built-in chime made, the configured one being fetched.
	media.HoldChime()
	if uri := m.cfg.Media.HoldMusic; uri != "" && m.o.Prompts != nil {
		go m.o.Prompts.Prefetch(context.Background(), []graph.MediaInfo{{URI: uri}})
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
		m.resume(&rec, rev)
	}
	return nil
}

// Shutdown stops accepting calls, lets the live ones finish until drainBy,
// then ends the rest (each with a terminated notification, 503/9007), and
// waits for them until ctx is done.
func (m *Manager) Shutdown(ctx context.Context, drainBy time.Time) error {
	m.mu.Lock()
	m.closing = true
	m.mu.Unlock()
	if m.sub != nil {
		_ = m.sub.Unsubscribe()
	}
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	drain := time.NewTimer(time.Until(drainBy))
	defer drain.Stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	case <-drain.C:
	}
	m.mu.Lock()
	actors := make([]*actor, 0, len(m.actors))
	for _, a := range m.actors {
		actors = append(actors, a)
	}
	m.mu.Unlock()
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
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop abandons the node's actors without ending their calls, as a crash
// would: the calls stay in the store for the next start to resume. Tests
// use it to restart a node.
func (m *Manager) Stop() {
	m.mu.Lock()
	m.closing = true
	actors := make([]*actor, 0, len(m.actors))
	for _, a := range m.actors {
		actors = append(actors, a)
	}
	m.mu.Unlock()
	if m.sub != nil {
		_ = m.sub.Unsubscribe()
	}
	for _, a := range actors {
		a.abandon()
	}
	m.wg.Wait()
}

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
	Op          string          `json:"op"`
	CallID      string          `json:"callId"`
	Participant string          `json:"participant,omitempty"` // for participant actions
	Caller      Caller          `json:"caller"`
	Body        json.RawMessage `json:"body,omitempty"`
}

// reply is the owner's answer to a command.
type reply struct {
	Operation *graph.Operation `json:"operation,omitempty"`
	ErrKind   *errs.Kind       `json:"errKind,omitempty"`
	ErrMsg    string           `json:"errMsg,omitempty"`
}

func nodeSubject(node string) string { return "sb.node." + node + ".cmd" }

// exec runs cmd on the node that owns the call.
func (m *Manager) exec(ctx context.Context, cmd command) (*graph.Operation, error) {
	if !validKey(normID(cmd.CallID)) {
		return nil, notFound(cmd.CallID)
	}
	rec, _, err := m.load(ctx, cmd.Caller, cmd.CallID)
	if err != nil {
		return nil, err
	}
	if rec.Node == m.o.Node {
		return m.execLocal(ctx, cmd)
	}
	data, _ := json.Marshal(cmd)
	msg, err := m.o.Store.Conn().RequestWithContext(ctx, nodeSubject(rec.Node), data)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "The node that owns call %s (%s) did not answer.", cmd.CallID, rec.Node)
	}
	var r reply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "forwarded command")
	}
	if r.ErrKind != nil {
		return nil, errs.E(*r.ErrKind, "%s", r.ErrMsg)
	}
	return r.Operation, nil
}

func (m *Manager) serveForwarded(msg *nats.Msg) {
	var cmd command
	var r reply
	if err := json.Unmarshal(msg.Data, &cmd); err != nil {
		k := errs.BadRequest
		r = reply{ErrKind: &k, ErrMsg: "malformed forwarded command"}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		op, err := m.execLocal(ctx, cmd)
		cancel()
		r.Operation = op
		if err != nil {
			k := errs.KindOf(err)
			r.ErrKind, r.ErrMsg = &k, errs.Message(err)
		}
	}
	data, _ := json.Marshal(r)
	_ = msg.Respond(data)
}

// execLocal hands cmd to the call's actor and waits for its answer.
func (m *Manager) execLocal(ctx context.Context, cmd command) (*graph.Operation, error) {
	m.mu.Lock()
	a := m.actors[normID(cmd.CallID)]
	m.mu.Unlock()
	if a == nil {
		return nil, notFound(cmd.CallID)
	}
	type result struct {
		op  *graph.Operation
		err error
	}
	done := make(chan result, 1)
	if !a.post(func(a *actor) {
		if !strings.EqualFold(a.rec.TenantID, cmd.Caller.TenantID) || !strings.EqualFold(a.rec.AppID, cmd.Caller.AppID) {
			done <- result{err: notFound(cmd.CallID)}
			return
		}
		op, err := a.handle(cmd)
		// Answer only once the step is in the store: a client that
		// follows the reply (GET the operation) must find it there.
		a.afterFlush = append(a.afterFlush, func() { done <- result{op, err} })
	}) {
		return nil, notFound(cmd.CallID)
	}
	select {
	case r := <-done:
		return r.op, r.err
	case <-ctx.Done():
		return nil, errs.Wrap(errs.Unavailable, ctx.Err(), "Call %s did not answer in time.", cmd.CallID)
	}
}

func (m *Manager) do(ctx context.Context, c Caller, callID, op string, body any) (*graph.Operation, error) {
	return m.doParticipant(ctx, c, callID, "", op, body)
}

func (m *Manager) doParticipant(ctx context.Context, c Caller, callID, pid, op string, body any) (*graph.Operation, error) {
	var raw json.RawMessage
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return nil, errs.Wrap(errs.Internal, err, "encode %s", op)
		}
	}
	return m.exec(ctx, command{Op: op, CallID: callID, Participant: pid, Caller: c, Body: raw})
}

// HangUp ends the bot's call (DELETE /communications/calls/{id}).
func (m *Manager) HangUp(ctx context.Context, c Caller, callID string) error {
	_, err := m.do(ctx, c, callID, "hangUp", nil)
	return err
}

// Answer answers an incoming call.
func (m *Manager) Answer(ctx context.Context, c Caller, callID string, req *graph.AnswerRequest) error {
	_, err := m.do(ctx, c, callID, "answer", req)
	return err
}

// Reject rejects an incoming call.
func (m *Manager) Reject(ctx context.Context, c Caller, callID string, req *graph.RejectRequest) error {
	_, err := m.do(ctx, c, callID, "reject", req)
	return err
}

// Redirect sends an incoming call to other targets.
func (m *Manager) Redirect(ctx context.Context, c Caller, callID string, req *graph.RedirectRequest) error {
	_, err := m.do(ctx, c, callID, "redirect", req)
	return err
}

// KeepAlive restarts the call's keepAlive window.
func (m *Manager) KeepAlive(ctx context.Context, c Caller, callID string) error {
	_, err := m.do(ctx, c, callID, "keepAlive", nil)
	return err
}

// Mute mutes the bot toward the far end.
func (m *Manager) Mute(ctx context.Context, c Caller, callID string, req *graph.ClientContextRequest) (*graph.Operation, error) {
	return m.do(ctx, c, callID, "mute", req)
}

// Unmute unmutes the bot.
func (m *Manager) Unmute(ctx context.Context, c Caller, callID string, req *graph.ClientContextRequest) (*graph.Operation, error) {
	return m.do(ctx, c, callID, "unmute", req)
}

// SubscribeToTone starts tone notifications.
func (m *Manager) SubscribeToTone(ctx context.Context, c Caller, callID string, req *graph.ClientContextRequest) (*graph.Operation, error) {
	return m.do(ctx, c, callID, "subscribeToTone", req)
}

// SendDtmfTones plays DTMF toward the far end.
func (m *Manager) SendDtmfTones(ctx context.Context, c Caller, callID string, req *graph.SendDtmfTonesRequest) (*graph.Operation, error) {
	return m.do(ctx, c, callID, "sendDtmfTones", req)
}

// PlayPrompt queues prompts to play to the far end.
func (m *Manager) PlayPrompt(ctx context.Context, c Caller, callID string, req *graph.PlayPromptRequest) (*graph.Operation, error) {
	return m.do(ctx, c, callID, "playPrompt", req)
}

// RecordResponse queues a recording of the far end.
func (m *Manager) RecordResponse(ctx context.Context, c Caller, callID string, req *graph.RecordResponseRequest) (*graph.Operation, error) {
	return m.do(ctx, c, callID, "recordResponse", req)
}

// CancelMediaProcessing cancels running and queued prompts and recordings.
func (m *Manager) CancelMediaProcessing(ctx context.Context, c Caller, callID string, req *graph.ClientContextRequest) (*graph.Operation, error) {
	return m.do(ctx, c, callID, "cancelMediaProcessing", req)
}

// StartHoldMusic plays hold music to a participant (POST
// .../participants/{pid}/startHoldMusic); the operation is running and
// completes by notification once the music plays.
func (m *Manager) StartHoldMusic(ctx context.Context, c Caller, callID, pid string, req *graph.StartHoldMusicRequest) (*graph.Operation, error) {
	return m.doParticipant(ctx, c, callID, pid, "startHoldMusic", req)
}

// StopHoldMusic takes a participant off hold; the operation completes by
// notification once the music has stopped.
func (m *Manager) StopHoldMusic(ctx context.Context, c Caller, callID, pid string, req *graph.ClientContextRequest) (*graph.Operation, error) {
	return m.doParticipant(ctx, c, callID, pid, "stopHoldMusic", req)
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
