package callctl

import (
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Watching a meeting's roster from outside it: the join page shows a guest
// in the browser who is in the meeting, who waits in the lobby and who is
// speaking, as the bots' roster notifications do, without being a bot.

type meetingWatch struct{ changed func() }

// WatchMeeting calls changed after each change of the roster of the
// meeting's room on this node (someone joined, left, was admitted or
// muted, or the dominant speaker changed), and when the room closes.
// changed runs on the room's goroutines and must return at once (it is a
// wake-up: MeetingRoster reads the roster). stop ends the watch; it is
// safe to call more than once. Only this node's room is watched: a
// meeting's room lives on the node its first participant joined.
func (m *Manager) WatchMeeting(meetingID string, changed func()) (stop func()) {
	w := &meetingWatch{changed: changed}
	m.watchMu.Lock()
	if m.watching == nil {
		m.watching = map[string]map[*meetingWatch]struct{}{}
	}
	if m.watching[meetingID] == nil {
		m.watching[meetingID] = map[*meetingWatch]struct{}{}
	}
	m.watching[meetingID][w] = struct{}{}
	m.watchMu.Unlock()
	return func() {
		m.watchMu.Lock()
		defer m.watchMu.Unlock()
		delete(m.watching[meetingID], w)
		if len(m.watching[meetingID]) == 0 {
			delete(m.watching, meetingID)
		}
	}
}

// MeetingRoster returns the roster of the meeting's room on this node as
// it is now, the people in the lobby included; nil when nobody is in it
// here.
func (m *Manager) MeetingRoster(meetingID string) []graph.Participant {
	m.mu.Lock()
	r := m.rooms[meetingID]
	m.mu.Unlock()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	return r.roster()
}

// meetingChanged wakes the meeting's watchers.
func (m *Manager) meetingChanged(meetingID string) {
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
