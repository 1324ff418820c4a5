package callctl

import (
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Watching a meeting's roster from outside it: the join page shows a guest
// in the browser who is in the meeting, who waits in the lobby and who is
// speaking, as the bots' roster notifications do, without being a bot.

// Across nodes (cascade.go): the room's node publishes each change on
// NATS (meetingSubject), a node with watchers of a meeting subscribes to
// it, and MeetingRoster asks the room's node for a roster it does not
// have. So a guest's page on any node follows the one room.

type meetingWatch struct{ changed func() }

// meetingSubject is where the room's node tells of a meeting's changes.
func meetingSubject(meetingID string) string {
	return "sb.meeting." + strings.TrimPrefix(roomKey(meetingID), "room.") + ".changed"
}

// WatchMeeting calls changed after each change of the roster of the
// meeting's room on this node (someone joined, left, was admitted or
// muted, or the dominant speaker changed), and when the room closes.
// changed runs on the room's goroutines and must return at once (it is a
// wake-up: MeetingRoster reads the roster). stop ends the watch; it is
// safe to call more than once. The room is watched on whichever node
// mixes it.
func (m *Manager) WatchMeeting(meetingID string, changed func()) (stop func()) {
	w := &meetingWatch{changed: changed}
	m.watchMu.Lock()
	if m.watching == nil {
		m.watching = map[string]map[*meetingWatch]struct{}{}
	}
	if m.watching[meetingID] == nil {
		m.watching[meetingID] = map[*meetingWatch]struct{}{}
		if m.roomKV != nil {
			// The first watcher here: hear the room's node.
			sub, err := m.o.Store.Conn().Subscribe(meetingSubject(meetingID), func(*nats.Msg) { m.wakeWatchers(meetingID) })
			if err != nil {
				m.log.Warn("watch a meeting's room on other nodes", "meeting", meetingID, "err", err)
			} else {
				m.watchSubs[meetingID] = sub
			}
		}
	}
	m.watching[meetingID][w] = struct{}{}
	m.watchMu.Unlock()
	return func() {
		m.watchMu.Lock()
		defer m.watchMu.Unlock()
		delete(m.watching[meetingID], w)
		if len(m.watching[meetingID]) == 0 {
			delete(m.watching, meetingID)
			if sub := m.watchSubs[meetingID]; sub != nil {
				_ = sub.Unsubscribe()
				delete(m.watchSubs, meetingID)
			}
		}
	}
}

// MeetingRoster returns the roster of the meeting's room as it is now,
// the people in the lobby included, asking the room's node when that is
// another; nil when nobody is in it.
func (m *Manager) MeetingRoster(meetingID string) []graph.Participant {
	m.mu.Lock()
	r := m.rooms[meetingID]
	m.mu.Unlock()
	if r == nil {
		return m.remoteRoster(meetingID)
	}
	return r.rosterNow()
}

// rosterNow is the room's roster, nil once it closed.
func (r *room) rosterNow() []graph.Participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	return r.roster()
}

// meetingChanged wakes the meeting's watchers, here and on other nodes.
func (m *Manager) meetingChanged(meetingID string) {
	if m.roomKV != nil {
		if err := m.o.Store.Conn().Publish(meetingSubject(meetingID), nil); err != nil {
			m.log.Debug("tell other nodes of a meeting's change", "meeting", meetingID, "err", err)
		}
	}
	m.wakeWatchers(meetingID)
}

// wakeWatchers wakes the meeting's watchers on this node.
func (m *Manager) wakeWatchers(meetingID string) {
	m.watchMu.Lock()
	ws := make([]*meetingWatch, 0, len(m.watching[meetingID]))
	for w := range m.watching[meetingID] {
		ws = append(ws, w)
	}
	m.watchMu.Unlock()
	for _, w := range ws {
		w.changed()
	}
}
