package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// The group calls the bot places: a call names at most maxCreateTargets
// targets and an invite at most maxInviteBatch (Switchboard's limits, the
// second Graph's), so a conference of more parties is created with the
// first 25 and the rest are invited, five at a time.
const (
	maxCreateTargets = 25
	maxInviteBatch   = 5
)

// confPlan is how one conference's parties are dialed: the targets of its
// create request, then its invites.
type confPlan struct {
	create  []string   // phone numbers
	invites [][]string // batches
}

// planConference splits parties phone numbers, numbered from conference
// index i, into a create and invites.
func planConference(i, parties int) confPlan {
	nums := make([]string, parties)
	for j := range nums {
		nums[j] = partyNumber(i, j)
	}
	n := min(parties, maxCreateTargets)
	p := confPlan{create: nums[:n]}
	for rest := nums[n:]; len(rest) > 0; {
		k := min(len(rest), maxInviteBatch)
		p.invites = append(p.invites, rest[:k])
		rest = rest[k:]
	}
	return p
}

// partyNumber is the E.164 number of party j of conference i: the trunk
// (SIPp) answers any number, and distinct numbers make the legs easy to
// tell apart in the node's log.
func partyNumber(i, j int) string { return fmt.Sprintf("+1555%04d%04d", i%10000, j%10000) }

// confCall is what the bot saw of one group call.
type confCall struct {
	id          string
	index       int
	want        int       // parties asked for
	posted      time.Time // the create request was sent
	created     time.Time // its 201 returned
	established time.Time // the established notification arrived
	full        time.Time // the first roster with every party
	hangup      time.Time // DELETE sent
	ended       time.Time // the terminated notification arrived
	roster      int       // parties in the last roster, the bot not counted
	maxRoster   int
	shrank      int // rosters smaller than the one before, before the hang-up
	createErr   string
	inviteErrs  []string // refused invite requests
	opsFailed   []string // invite operations that failed
	opsDone     int      // invite operations completed
	hangupErr   string
	end         graph.ResultInfo
	estab       chan struct{} // closed by the established notification
}

// confDriver is the bot's part in a conference run. It creates the group
// calls and invites their parties, paced at a number of legs per second,
// keeps what the notifications say of each call, and hangs them up. Its
// methods are safe for concurrent use; the webhook calls handle.
type confDriver struct {
	b       *bot
	limiter *rate.Limiter

	rosters     atomic.Int64 // roster notifications
	rosterBytes atomic.Int64 // their resourceData, in bytes
	rosterMax   atomic.Int64 // the largest one

	mu    sync.Mutex
	calls map[string]*confCall
	order []*confCall
}

func newConfDriver(b *bot, legsPerSecond float64) *confDriver {
	d := &confDriver{b: b, calls: map[string]*confCall{},
		limiter: rate.NewLimiter(rate.Limit(legsPerSecond), maxCreateTargets)}
	return d
}

// reset forgets the calls seen so far (after a warm-up).
func (d *confDriver) reset() {
	d.mu.Lock()
	d.calls = map[string]*confCall{}
	d.order = nil
	d.mu.Unlock()
	d.rosters.Store(0)
	d.rosterBytes.Store(0)
	d.rosterMax.Store(0)
}

// callLocked returns the call id, made on first sight: its notifications
// may come before its 201 does.
func (d *confDriver) callLocked(id string) *confCall {
	c := d.calls[id]
	if c == nil {
		c = &confCall{id: id, index: -1, estab: make(chan struct{})}
		d.calls[id] = c
	}
	return c
}

// handle takes one notification the webhook received.
func (d *confDriver) handle(now time.Time, n graph.CommsNotification) {
	callID, opID := splitResource(n.ResourceURL)
	if callID == "" {
		return
	}
	roster := strings.HasSuffix(n.ResourceURL, "/participants")
	if roster {
		var ps []graph.Participant
		if json.Unmarshal(n.ResourceData, &ps) != nil {
			return
		}
		d.rosters.Add(1)
		size := int64(len(n.ResourceData))
		d.rosterBytes.Add(size)
		for {
			m := d.rosterMax.Load()
			if size <= m || d.rosterMax.CompareAndSwap(m, size) {
				break
			}
		}
		parties := rosterParties(ps)
		d.mu.Lock()
		defer d.mu.Unlock()
		c := d.callLocked(callID)
		if c.ended.IsZero() {
			if parties < c.roster && c.hangup.IsZero() {
				c.shrank++
			}
			c.roster = parties
			c.maxRoster = max(c.maxRoster, parties)
			if c.want > 0 && parties >= c.want && c.full.IsZero() {
				c.full = now
			}
		}
		return
	}
	var nd notificationData
	if len(n.ResourceData) == 0 || n.ResourceData[0] != '{' || json.Unmarshal(n.ResourceData, &nd) != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.callLocked(callID)
	if opID != "" {
		if nd.ODataType != graph.TypeInviteParticipantsOperation {
			return
		}
		switch nd.Status {
		case graph.OperationCompleted:
			c.opsDone++
		case graph.OperationFailed:
			r := "no resultInfo"
			if nd.ResultInfo != nil {
				r = nd.ResultInfo.String()
			}
			c.opsFailed = append(c.opsFailed, r)
		}
		return
	}
	switch {
	case nd.State == graph.StateEstablished && c.established.IsZero():
		c.established = now
		close(c.estab)
	case (nd.State == graph.StateTerminated || n.ChangeType == graph.ChangeDeleted) && c.ended.IsZero():
		c.ended = now
		c.roster = 0
		if nd.ResultInfo != nil {
			c.end = *nd.ResultInfo
		}
	}
}

// rosterParties counts the parties of a roster: everyone but the bot,
// whose identity is an application or its instance.
func rosterParties(ps []graph.Participant) int {
	n := 0
	for _, p := range ps {
		if p.Info != nil && p.Info.Identity != nil && (p.Info.Identity.Application != nil || p.Info.Identity.ApplicationInstance != nil) {
			continue
		}
		n++
	}
	return n
}

// Joined returns the parties in the rosters of the calls not yet ended.
func (d *confDriver) Joined() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.calls {
		if c.ended.IsZero() {
			n += c.roster
		}
	}
	return n
}

// Live returns the calls not yet ended.
func (d *confDriver) Live() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.calls {
		if c.ended.IsZero() {
			n++
		}
	}
	return n
}

// Calls returns a copy of what the bot saw of each call it placed, in the
// order it placed them.
func (d *confDriver) Calls() []confCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]confCall, 0, len(d.order))
	for _, c := range d.order {
		cc := *c
		cc.inviteErrs = append([]string(nil), c.inviteErrs...)
		cc.opsFailed = append([]string(nil), c.opsFailed...)
		out = append(out, cc)
	}
	return out
}

// run places one conference: the create request with the first parties,
// then, once it is established, the invites. Each request waits its turn
// at the legs-per-second pace.
func (d *confDriver) run(ctx context.Context, i int, plan confPlan) {
	parties := len(plan.create)
	for _, inv := range plan.invites {
		parties += len(inv)
	}
	fail := func(err error) {
		d.mu.Lock()
		c := &confCall{id: fmt.Sprintf("(conference %d: not created)", i), index: i, want: parties, createErr: err.Error(), estab: make(chan struct{})}
		d.order = append(d.order, c)
		d.mu.Unlock()
	}
	if err := d.limiter.WaitN(ctx, len(plan.create)); err != nil {
		fail(err)
		return
	}
	posted := time.Now()
	id, err := d.create(ctx, i, plan.create)
	if err != nil {
		fail(err)
		return
	}
	d.mu.Lock()
	c := d.callLocked(id)
	c.index, c.want, c.posted, c.created = i, parties, posted, time.Now()
	d.order = append(d.order, c)
	estab := c.estab
	if c.roster >= parties && c.full.IsZero() {
		c.full = time.Now()
	}
	d.mu.Unlock()
	if len(plan.invites) == 0 {
		return
	}
	select {
	case <-estab:
	case <-ctx.Done():
		return
	case <-time.After(60 * time.Second):
		d.mu.Lock()
		c.inviteErrs = append(c.inviteErrs, "not established 60 s after its create: no invites")
		d.mu.Unlock()
		return
	}
	for k, batch := range plan.invites {
		if err := d.limiter.WaitN(ctx, len(batch)); err != nil {
			return
		}
		if err := d.invite(ctx, id, k, batch); err != nil {
			d.mu.Lock()
			c.inviteErrs = append(c.inviteErrs, err.Error())
			d.mu.Unlock()
		}
	}
}

func phoneTargets(nums []string) []graph.InvitationParticipantInfo {
	t := make([]graph.InvitationParticipantInfo, len(nums))
	for i, n := range nums {
		t[i] = graph.InvitationParticipantInfo{ODataType: graph.TypeInvitationParticipantInfo,
			Identity: &graph.IdentitySet{Phone: &graph.Identity{ID: n}}}
	}
	return t
}

// create POSTs the group call and returns its id.
func (d *confDriver) create(ctx context.Context, i int, nums []string) (string, error) {
	req := graph.Call{
		ODataType:   graph.TypeCall,
		CallbackURI: d.b.callback,
		Subject:     fmt.Sprintf("sbbench conference %d", i),
		Source: &graph.ParticipantInfo{ODataType: graph.TypeParticipantInfo,
			Identity: &graph.IdentitySet{ApplicationInstance: &graph.Identity{ID: benchInstance}}},
		Targets:             phoneTargets(nums),
		RequestedModalities: []graph.Modality{graph.ModalityAudio},
		MediaConfig:         &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig},
		TenantID:            benchTenant,
	}
	var call graph.Call
	if err := d.do(ctx, "POST", "/v1.0/communications/calls", req, &call); err != nil {
		return "", fmt.Errorf("create: %w", err)
	}
	if call.ID == "" {
		return "", fmt.Errorf("create: no call id in the response")
	}
	return call.ID, nil
}

// invite POSTs one batch of participants to call id.
func (d *confDriver) invite(ctx context.Context, id string, k int, nums []string) error {
	req := graph.InviteParticipantsRequest{Participants: phoneTargets(nums), ClientContext: fmt.Sprintf("sbbench-invite-%d", k)}
	if err := d.do(ctx, "POST", "/v1.0/communications/calls/"+id+"/participants/invite", req, nil); err != nil {
		return fmt.Errorf("invite: %w", err)
	}
	return nil
}

// hangUp DELETEs every call the bot placed that has not ended, all at once
// on the bot's workers, and returns when every request has returned.
func (d *confDriver) hangUp(ctx context.Context) {
	d.mu.Lock()
	var ids []*confCall
	for _, c := range d.order {
		if c.created.IsZero() || !c.ended.IsZero() {
			continue
		}
		c.hangup = time.Now()
		ids = append(ids, c)
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range ids {
		wg.Add(1)
		d.b.jobs <- func() {
			defer wg.Done()
			if err := d.do(ctx, "DELETE", "/v1.0/communications/calls/"+c.id, nil, nil); err != nil {
				d.mu.Lock()
				c.hangupErr = err.Error()
				d.mu.Unlock()
			}
		}
	}
	wg.Wait()
}

// do makes one Graph request with the bot's token; out, when not nil, is
// filled from a 2xx body.
func (d *confDriver) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.b.api+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+d.b.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	r, err := d.b.client.Do(req)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if r.StatusCode/100 != 2 {
		var e graph.ErrorResponse
		if json.Unmarshal(msg, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("%d %s: %s", r.StatusCode, e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("%s", r.Status)
	}
	if out != nil {
		return json.Unmarshal(msg, out)
	}
	return nil
}
