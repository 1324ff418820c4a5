package sdk

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// State is a Handler's in-memory view of the calls it has heard of, with
// their participants and operations, built by merging every notification
// and response (partial ones included) into what was known before. A call
// stays in State for HandlerOptions.Retention after it terminates, so late
// waits and reads still see how it ended. State is safe for concurrent use.
type State struct {
	h *Handler

	mu    sync.Mutex
	calls map[string]*Call // by idKey
	ops   map[string]*Call // operation idKey -> its call
	// changed is closed (and replaced) when a call or an operation is
	// added, for waits on operations whose call is not yet known.
	changed chan struct{}
}

func newState(h *Handler) *State {
	return &State{h: h, calls: map[string]*Call{}, ops: map[string]*Call{}, changed: make(chan struct{})}
}

// Call returns the call with id (compared as Graph ids are: ignoring case
// and dashes).
func (s *State) Call(id string) (*Call, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.calls[idKey(id)]
	return c, ok
}

// Calls returns every call in the state, terminated ones included until
// they are forgotten.
func (s *State) Calls() []*Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Call, 0, len(s.calls))
	for _, c := range s.calls {
		out = append(out, c)
	}
	return out
}

// Operation returns an operation as last reported, by its id.
func (s *State) Operation(id string) (graph.Operation, bool) {
	s.mu.Lock()
	c := s.ops[idKey(id)]
	s.mu.Unlock()
	if c == nil {
		return graph.Operation{}, false
	}
	return c.Operation(id)
}

// getOrCreate returns the call with id, adding it when unknown.
func (s *State) getOrCreate(id, tenant string) *Call {
	key := idKey(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.calls[key]; c != nil {
		return c
	}
	c := newCall(s.h, id, tenant)
	s.calls[key] = c
	s.broadcastLocked()
	return c
}

// indexOperation records that operation key belongs to c. The caller holds c.mu.
func (s *State) indexOperation(key string, c *Call) {
	s.mu.Lock()
	s.ops[key] = c
	s.broadcastLocked()
	s.mu.Unlock()
}

// unindexOperations drops operation keys of c. The caller holds c.mu.
func (s *State) unindexOperations(c *Call, keys ...string) {
	s.mu.Lock()
	for _, k := range keys {
		if s.ops[k] == c {
			delete(s.ops, k)
		}
	}
	s.mu.Unlock()
}

func (s *State) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// forget removes a terminated call and its operations.
func (s *State) forget(c *Call) {
	c.mu.Lock()
	keys := make([]string, 0, len(c.ops))
	for k := range c.ops {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls[c.key] == c {
		delete(s.calls, c.key)
	}
	for _, k := range keys {
		if s.ops[k] == c {
			delete(s.ops, k)
		}
	}
}

// opRecord is one operation of a call.
type opRecord struct {
	raw resource
	op  graph.Operation
	// final is set once a terminal status has been seen: later
	// notifications about the operation are redeliveries.
	final bool
}

// maxOperations bounds the finished operations a call keeps; the oldest
// finished ones are forgotten first.
const maxOperations = 1024

// stateRank orders call states for Graph's out-of-order rule
// (https://learn.microsoft.com/graph/api/application-post-calls):
// establishing and established may arrive in either order, so an earlier
// setup state never overwrites a later one.
func stateRank(s graph.CallState) int {
	switch s {
	case "":
		return -1
	case graph.StateIncoming:
		return 0
	case graph.StateEstablishing:
		return 1
	case graph.StateRinging:
		return 2
	default:
		return 3
	}
}

// regresses reports whether moving from cur to next would go back to a
// setup state, which only a late notification can cause.
func regresses(cur, next graph.CallState) bool {
	return stateRank(next) <= 2 && stateRank(next) < stateRank(cur)
}

// eventKind is what an event reports.
type eventKind int

const (
	evIncoming eventKind = iota
	evUpdated
	evParticipants
	evOperation
	evTerminated
)

// event is one callback to run on a call's queue.
type event struct {
	kind   eventKind
	change graph.Call
	parts  ParticipantsChange
	op     graph.Operation
}

// ParticipantsChange is what one roster notification changed.
type ParticipantsChange struct {
	// Added are participants not in the roster before.
	Added []graph.Participant
	// Updated are participants already in the roster, as they are now.
	Updated []graph.Participant
	// Removed are participants that left, as last known.
	Removed []graph.Participant
}

func (p ParticipantsChange) empty() bool {
	return len(p.Added)+len(p.Updated)+len(p.Removed) == 0
}

// applyCall merges a call notification. The caller holds c.mu.
func (c *Call) applyCall(change graph.ChangeType, upd resource) []event {
	if c.ended {
		return nil // nothing follows terminated; a redelivery
	}
	upd = upd.clone()
	if upd.str("id") == "" {
		upd.set("id", c.id)
	}
	var next graph.CallState
	if v, ok := upd["state"]; ok {
		_ = json.Unmarshal(v, &next)
	}
	terminal := change == graph.ChangeDeleted || next == graph.StateTerminated
	switch {
	case terminal:
		// A deleted notification may carry no state at all (a reject:
		// https://learn.microsoft.com/graph/api/call-reject); it always means
		// terminated.
		next = graph.StateTerminated
		upd.set("state", next)
	case next != "" && regresses(c.state, next):
		delete(upd, "state")
		next = ""
	case next != "":
		upd.set("state", next) // Graph's spelling, whatever the casing received
	}

	var ch graph.Call
	if dropped := decodeInto(upd, &ch); dropped != nil {
		c.h.log.Warn("ignored call properties of an unexpected type", "call", c.id, "properties", dropped)
	}
	c.raw.merge(upd)
	c.snapshotLocked()

	if t := ch.ToneInfo; t != nil {
		if t.SequenceID > 0 && t.SequenceID <= c.lastTone {
			ch.ToneInfo = nil // a redelivery
		} else {
			c.lastTone = max(c.lastTone, t.SequenceID)
			c.pushTone(*t)
		}
	}

	var evs []event
	switch {
	case change == graph.ChangeCreated || (next == graph.StateIncoming && !c.announced):
		if !c.announced {
			c.announced = true
			evs = append(evs, event{kind: evIncoming})
		}
	default:
		evs = append(evs, event{kind: evUpdated, change: ch})
	}
	if terminal {
		c.endLocked()
		evs = append(evs, event{kind: evTerminated})
	}
	c.broadcastLocked()
	return evs
}

// fillCall merges a call resource older than what is known (the
// create-call response, which may arrive after the first notifications).
// The caller holds c.mu.
func (c *Call) fillCall(call *graph.Call) {
	data, err := json.Marshal(call)
	if err != nil {
		return
	}
	base := parseResource(data)
	delete(base, "@odata.context")
	if st := graph.CallState(base.str("state")); st != "" && regresses(c.state, st) {
		delete(base, "state")
	}
	c.raw.fill(base)
	c.snapshotLocked()
	c.broadcastLocked()
}

// snapshotLocked re-reads the merged call. The caller holds c.mu.
func (c *Call) snapshotLocked() {
	var snap graph.Call
	if dropped := decodeInto(c.raw, &snap); dropped != nil {
		c.h.log.Warn("ignored call properties of an unexpected type", "call", c.id, "properties", dropped)
	}
	c.rawJSON, _ = json.Marshal(c.raw)
	c.state = snap.State
	if o := snap.CallOptions; o != nil && o.IsDeltaRosterEnabled != nil {
		c.deltaRoster = *o.IsDeltaRosterEnabled
	}
}

// applyParticipants merges a roster notification: resourceData is an
// array of participants
// (https://learn.microsoft.com/graph/api/participant-invite shows one), a
// deltaParticipants object {sequenceNumber, participants} or one participant.
// Without delta roster an array is the whole roster: whoever is missing from
// it has left. The caller holds c.mu.
func (c *Call) applyParticipants(change graph.ChangeType, data json.RawMessage, single bool) []event {
	var items []resource
	delta := c.deltaRoster || single
	if list, ok := parseArray(data); ok {
		items = list
	} else if obj := parseResource(data); obj != nil {
		if inner, ok := obj["participants"]; ok {
			delta = true
			items, _ = parseArray(inner)
		} else {
			delta = true
			items = []resource{obj}
		}
	}
	for _, it := range items {
		if _, ok := it["removedState"]; ok {
			delta = true
		}
		if _, ok := it["rosterSequenceNumber"]; ok {
			delta = true
		}
	}

	var pc ParticipantsChange
	seen := map[string]bool{}
	for _, it := range items {
		id := it.str("id")
		if id == "" {
			c.h.log.Debug("roster entry without an id ignored", "call", c.id)
			continue
		}
		key := idKey(id)
		seen[key] = true
		cur, known := c.parts[key]
		removed := change == graph.ChangeDeleted
		if v, ok := it["removedState"]; ok && string(v) != "null" {
			removed = true
		}
		switch {
		case removed:
			if known {
				cur.merge(it)
				pc.Removed = append(pc.Removed, c.participantLocked(cur))
				c.removeParticipantLocked(key)
			}
		case known:
			cur.mergeEntity(it)
			pc.Updated = append(pc.Updated, c.participantLocked(cur))
		default:
			r := resource{}
			r.merge(it)
			c.parts[key] = r
			c.partOrder = append(c.partOrder, key)
			pc.Added = append(pc.Added, c.participantLocked(r))
		}
	}
	if !delta && change != graph.ChangeDeleted {
		for _, key := range append([]string(nil), c.partOrder...) {
			if !seen[key] {
				pc.Removed = append(pc.Removed, c.participantLocked(c.parts[key]))
				c.removeParticipantLocked(key)
			}
		}
	}
	if pc.empty() {
		return nil
	}
	c.broadcastLocked()
	return []event{{kind: evParticipants, parts: pc}}
}

func parseArray(data []byte) ([]resource, bool) {
	data = bytes.TrimSpace(data)
	var raw []json.RawMessage
	if len(data) == 0 || data[0] != '[' || json.Unmarshal(data, &raw) != nil {
		return nil, false
	}
	out := make([]resource, 0, len(raw))
	for _, r := range raw {
		if obj := parseResource(r); obj != nil {
			out = append(out, obj)
		}
	}
	return out, true
}

func (c *Call) participantLocked(r resource) graph.Participant {
	var p graph.Participant
	if dropped := decodeInto(r, &p); dropped != nil {
		c.h.log.Warn("ignored participant properties of an unexpected type", "call", c.id, "properties", dropped)
	}
	return p
}

func (c *Call) removeParticipantLocked(key string) {
	delete(c.parts, key)
	for i, k := range c.partOrder {
		if k == key {
			c.partOrder = append(c.partOrder[:i], c.partOrder[i+1:]...)
			break
		}
	}
}

// applyOperation merges an operation notification: changeType deleted
// reports its completion
// (https://learn.microsoft.com/graph/api/resources/commsoperation). The
// caller holds c.mu.
func (c *Call) applyOperation(change graph.ChangeType, opID string, upd resource) []event {
	rec := c.operationLocked(opID)
	if rec.final {
		return nil // reported already; a redelivery
	}
	upd = upd.clone()
	if upd.str("id") == "" {
		upd.set("id", opID)
	}
	if change == graph.ChangeDeleted && upd.str("status") == "" {
		// A completion without a status: say how it ended from resultInfo.
		var ri struct {
			ResultInfo *graph.ResultInfo `json:"resultInfo"`
		}
		_ = json.Unmarshal(mustJSON(upd), &ri)
		st := graph.OperationCompleted
		if ri.ResultInfo != nil && ri.ResultInfo.Code >= 400 {
			st = graph.OperationFailed
		}
		upd.set("status", st)
	}
	rec.raw.merge(upd)
	if dropped := decodeInto(rec.raw, &rec.op); dropped != nil {
		c.h.log.Warn("ignored operation properties of an unexpected type", "call", c.id, "operation", opID, "properties", dropped)
	}
	rec.final = rec.op.Status.Terminal()
	c.broadcastLocked()
	return []event{{kind: evOperation, op: rec.op}}
}

// trackOperation records an operation from an action's response, so an
// Await finds it whichever comes first, the response or the notification.
// The caller holds c.mu.
func (c *Call) trackOperationLocked(op *graph.Operation) {
	if op == nil || op.ID == "" {
		return
	}
	rec := c.operationLocked(op.ID)
	base := parseResource(mustJSON(op))
	delete(base, "@odata.context")
	rec.raw.fill(base)
	_ = decodeInto(rec.raw, &rec.op)
	if rec.op.Status.Terminal() {
		rec.final = true
	}
	c.broadcastLocked()
}

// operationLocked returns the record of an operation, adding it (and
// forgetting the oldest finished ones past maxOperations) when new.
func (c *Call) operationLocked(opID string) *opRecord {
	key := idKey(opID)
	if rec := c.ops[key]; rec != nil {
		return rec
	}
	rec := &opRecord{raw: resource{}}
	c.ops[key] = rec
	c.opOrder = append(c.opOrder, key)
	c.h.state.indexOperation(key, c)
	if len(c.ops) > maxOperations {
		var drop []string
		kept := c.opOrder[:0]
		for _, k := range c.opOrder {
			if len(c.ops)-len(drop) > maxOperations && c.ops[k].final {
				drop = append(drop, k)
				continue
			}
			kept = append(kept, k)
		}
		c.opOrder = kept
		for _, k := range drop {
			delete(c.ops, k)
		}
		c.h.state.unindexOperations(c, drop...)
	}
	return rec
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// pushTone hands a tone to Tones without ever blocking: when the buffer
// is full the oldest tone is dropped. The caller holds c.mu.
func (c *Call) pushTone(t graph.ToneInfo) {
	select {
	case c.tones <- t:
		return
	default:
	}
	select {
	case <-c.tones:
	default:
	}
	select {
	case c.tones <- t:
	default:
	}
	c.h.log.Warn("tone buffer full; dropped the oldest tone", "call", c.id)
}

// endLocked marks the call terminated: waits end, Tones closes, the
// keepAlive loop stops and the call is forgotten after the retention
// time. The caller holds c.mu.
func (c *Call) endLocked() {
	if c.ended {
		return
	}
	c.ended = true
	close(c.done)
	close(c.tones)
	c.forget = time.AfterFunc(c.h.o.Retention, func() { c.h.state.forget(c) })
}

func (c *Call) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}
