package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Attendee is one person, or another bot, who came to the meeting, with
// the time they spent in it and in its lobby. Someone who leaves and comes
// back (a new participant each time) is one Attendee: the same identity.
type Attendee struct {
	Name string
	// Kind is how they are in the meeting: "user" (a Teams or SIP user of
	// the tenant), "phone" (dialed in or invited by number), "guest", or
	// "bot" (an application, another bot in the meeting).
	Kind string
	// ID is their identity's id: a user's object id, a phone number, an
	// application's id.
	ID string
	// InMeeting is the time they were in the meeting; InLobby the time
	// they waited in its lobby.
	InMeeting, InLobby time.Duration
	// HeardMost is the time they were the meeting's dominant speaker, the
	// one heard most, as the roster marked it (to a second: the platform
	// tells a change of dominant speaker at most once a second).
	HeardMost time.Duration
	// Joins counts how many times they came into the meeting (out of the
	// lobby or straight in); zero for someone who only ever waited.
	Joins int
}

// Report is who came to the meeting, for how long, and who was heard
// most, measured from the roster notifications as they arrived. Who was
// heard most comes from Switchboard's dominant-speaker mark
// (@switchboard.dominantSpeaker); Microsoft Graph reports no dominant
// speaker to a bot with service-hosted media, and there HeardMost stays
// zero.
type Report struct {
	// Attendees are in the order they first appeared, the bot itself left out.
	Attendees []Attendee
}

// Write prints the report as a table.
func (r Report) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tIN MEETING\tLOBBY\tHEARD MOST\tJOINS")
	dash := func(d time.Duration) string {
		if d <= 0 {
			return "-"
		}
		return seconds(d)
	}
	for _, a := range r.Attendees {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", a.Name, a.Kind, seconds(a.InMeeting), dash(a.InLobby), dash(a.HeardMost), a.Joins)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if a, ok := r.MostHeard(); ok {
		_, err := fmt.Fprintf(w, "Heard most: %s (the dominant speaker for %s)\n", a.Name, seconds(a.HeardMost))
		return err
	}
	return nil
}

// seconds is d to the second; "<1s" for less, but not none.
func seconds(d time.Duration) string {
	if d > 0 && d < time.Second {
		return "<1s"
	}
	return d.Round(time.Second).String()
}

// MostHeard is the attendee who was the dominant speaker longest; false
// when nobody ever was.
func (r Report) MostHeard() (Attendee, bool) {
	var best Attendee
	for _, a := range r.Attendees {
		if a.HeardMost > best.HeardMost {
			best = a
		}
	}
	return best, best.HeardMost > 0
}

// Find returns the attendee named name (or whose name starts with it).
func (r Report) Find(name string) (Attendee, bool) {
	for _, a := range r.Attendees {
		if a.Name == name || strings.HasPrefix(a.Name, name+" ") {
			return a, true
		}
	}
	return Attendee{}, false
}

// change is what one roster change did to one participant.
type change struct {
	kind  changeKind
	pid   string // participant id
	who   *Attendee
	lobby bool // left: they were in the lobby
}

type changeKind int

const (
	toLobby changeKind = iota // arrived in the lobby
	joined                    // came into the meeting, straight or out of the lobby
	left                      // left the meeting or the lobby
)

// presence is one participant in the roster now.
type presence struct {
	who   *Attendee
	lobby bool
	since time.Time
}

// attendance follows the meeting's roster: who is in it or in its lobby
// now, and the time each attendee has spent there. It is a plain value:
// the caller serialises access and supplies the time.
type attendance struct {
	byKey   map[string]*Attendee
	order   []*Attendee
	parts   map[string]*presence // by participant id, lower case
	present int                  // people (not bots) in the meeting now
	came    bool                 // a person has been in the meeting
	// dominant is the participant marked as the dominant speaker, since
	// domSince; "" for none (or the bot itself).
	dominant string
	domSince time.Time
}

func newAttendance() *attendance {
	return &attendance{byKey: map[string]*Attendee{}, parts: map[string]*presence{}}
}

// identify names a participant: its display name (its id without one),
// the kind of its identity and the key that stays the same when it
// rejoins.
func identify(p graph.Participant) (name, kind, id string) {
	if p.Info == nil {
		return p.ID, "unknown", ""
	}
	key, who := p.Info.Identity.Primary()
	if who == nil {
		return p.ID, "unknown", ""
	}
	switch key {
	case "application", "applicationInstance":
		kind = "bot"
	default:
		kind = key
	}
	name = who.DisplayName
	if name == "" {
		name = who.ID
	}
	return name, kind, who.ID
}

// apply takes in one roster change at now; me is the bot's own
// participant id, left out. Full rosters repeat everyone as Updated:
// only what differs from what is known counts.
func (t *attendance) apply(ch sdk.ParticipantsChange, me string, now time.Time) []change {
	var out []change
	for _, p := range append(append([]graph.Participant(nil), ch.Added...), ch.Updated...) {
		pid := strings.ToLower(p.ID)
		if pid == "" || strings.EqualFold(p.ID, me) {
			continue
		}
		pr := t.parts[pid]
		switch {
		case pr == nil:
			name, kind, id := identify(p)
			key := kind + "/" + strings.ToLower(id)
			if id == "" {
				key = "participant/" + pid
			}
			a := t.byKey[key]
			if a == nil {
				a = &Attendee{Name: name, Kind: kind, ID: id}
				t.byKey[key] = a
				t.order = append(t.order, a)
			}
			pr = &presence{who: a, lobby: p.IsInLobby, since: now}
			t.parts[pid] = pr
			if pr.lobby {
				out = append(out, change{kind: toLobby, pid: p.ID, who: a})
			} else {
				a.Joins++
				out = append(out, change{kind: joined, pid: p.ID, who: a})
			}
		case pr.lobby && !p.IsInLobby: // admitted
			pr.who.InLobby += now.Sub(pr.since)
			pr.lobby, pr.since = false, now
			pr.who.Joins++
			out = append(out, change{kind: joined, pid: p.ID, who: pr.who})
		}
	}
	t.dominance(ch, me, now)
	for _, p := range ch.Removed {
		pid := strings.ToLower(p.ID)
		pr := t.parts[pid]
		if pr == nil {
			continue
		}
		if pr.lobby {
			pr.who.InLobby += now.Sub(pr.since)
		} else {
			pr.who.InMeeting += now.Sub(pr.since)
		}
		delete(t.parts, pid)
		out = append(out, change{kind: left, pid: p.ID, who: pr.who, lobby: pr.lobby})
	}
	t.present = 0
	for _, pr := range t.parts {
		if !pr.lobby && pr.who.Kind != "bot" {
			t.present++
			t.came = true
		}
	}
	return out
}

// dominance follows the dominant-speaker mark: at most one participant
// carries it; a change that shows the marked one without it, or removes
// them, leaves none.
func (t *attendance) dominance(ch sdk.ParticipantsChange, me string, now time.Time) {
	next := t.dominant
	for _, p := range append(append([]graph.Participant(nil), ch.Added...), ch.Updated...) {
		if pid := strings.ToLower(p.ID); pid == t.dominant && !p.DominantSpeaker {
			next = ""
		}
	}
	for _, p := range ch.Removed {
		if strings.ToLower(p.ID) == t.dominant {
			next = ""
		}
	}
	for _, p := range append(append([]graph.Participant(nil), ch.Added...), ch.Updated...) {
		if p.DominantSpeaker && !strings.EqualFold(p.ID, me) {
			next = strings.ToLower(p.ID)
		} else if p.DominantSpeaker {
			next = "" // the bot itself, speaking its prompts
		}
	}
	if next == t.dominant {
		return
	}
	if pr := t.parts[t.dominant]; pr != nil {
		pr.who.HeardMost += now.Sub(t.domSince)
	}
	t.dominant, t.domSince = next, now
}

// alone reports whether everyone who came has left: someone was in the
// meeting and no person is in it now (other bots do not count; nor do
// people still waiting in the lobby).
func (t *attendance) alone() bool { return t.came && t.present == 0 }

// report is the attendance at now: the time of those still there counts
// up to now.
func (t *attendance) report(now time.Time) Report {
	r := Report{Attendees: make([]Attendee, len(t.order))}
	at := map[*Attendee]int{}
	for i, a := range t.order {
		r.Attendees[i] = *a
		at[a] = i
	}
	for _, pr := range t.parts {
		a := &r.Attendees[at[pr.who]]
		if pr.lobby {
			a.InLobby += now.Sub(pr.since)
		} else {
			a.InMeeting += now.Sub(pr.since)
		}
	}
	if pr := t.parts[t.dominant]; pr != nil {
		r.Attendees[at[pr.who]].HeardMost += now.Sub(t.domSince)
	}
	return r
}
