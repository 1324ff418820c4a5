package callctl

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// The call state machine as a table: for every state a call can be in and
// every command or leg event that can reach it, the state it moves to, the
// reply, the notifications the bot gets (in order) and what the far end is
// asked. A missing pair fails the test, so a new state, command or event
// must be written down here.
//
// Columns: state | event | next state ("gone": 404) | reply ("ok", "op
// <status>", or the HTTP status of the error) | notifications, ";"
// between | what the leg was asked, ";" between.
const stateTable = `
incoming      | hangUp          | gone          | ok           | deleted call terminated 9001 | reject 9001
incoming      | keepAlive       | incoming      | ok           |  |
incoming      | answer          | establishing  | ok           | updated call establishing | answer
incoming      | reject          | gone          | ok           | deleted call terminated 9002 | reject 9002
incoming      | redirect        | redirecting   | ok           | updated call redirecting |
incoming      | mute            | incoming      | 409          |  |
incoming      | unmute          | incoming      | 409          |  |
incoming      | subscribeToTone | incoming      | 409          |  |
incoming      | sendDtmfTones   | incoming      | 409          |  |
incoming      | playPrompt      | incoming      | 409          |  |
incoming      | recordResponse  | incoming      | 409          |  |
incoming      | cancelMedia     | incoming      | op Completed |  |
incoming      | startHoldMusic  | incoming      | 409          |  |
incoming      | stopHoldMusic   | incoming      | 400          |  |
incoming      | leg ringing     | incoming      | -            |  |
incoming      | leg progress    | incoming      | -            |  |
incoming      | leg answered    | incoming      | -            |  |
incoming      | leg ended       | gone          | -            | deleted call terminated 9008 |
incoming      | leg tone        | incoming      | -            |  |
incoming      | clock +2h       | gone          | -            | deleted call terminated 1106 | reject 1106

answering     | hangUp          | gone          | ok           | updated call terminating; deleted call terminated 5001 | hangUp 5001
answering     | keepAlive       | establishing  | ok           |  |
answering     | answer          | establishing  | 409          |  |
answering     | reject          | establishing  | 409          |  |
answering     | redirect        | establishing  | 409          |  |
answering     | mute            | establishing  | 409          |  |
answering     | unmute          | establishing  | 409          |  |
answering     | subscribeToTone | establishing  | op Completed |  |
answering     | sendDtmfTones   | establishing  | 409          |  |
answering     | playPrompt      | establishing  | 409          |  |
answering     | recordResponse  | establishing  | 409          |  |
answering     | cancelMedia     | establishing  | op Completed |  |
answering     | startHoldMusic  | establishing  | 409          |  |
answering     | stopHoldMusic   | establishing  | 400          |  |
answering     | leg ringing     | establishing  | -            |  |
answering     | leg progress    | establishing  | -            |  |
answering     | leg answered    | established   | -            | updated call established |
answering     | leg ended       | gone          | -            | deleted call terminated 4521 |
answering     | leg tone        | establishing  | -            |  |
answering     | clock +2h       | gone          | -            | deleted call terminated 8537 | hangUp 8537

dialing       | hangUp          | gone          | ok           | updated call terminating; deleted call terminated 5001 | hangUp 5001
dialing       | keepAlive       | establishing  | ok           |  |
dialing       | answer          | establishing  | 409          |  |
dialing       | reject          | establishing  | 409          |  |
dialing       | redirect        | establishing  | 409          |  |
dialing       | mute            | establishing  | 409          |  |
dialing       | unmute          | establishing  | 409          |  |
dialing       | subscribeToTone | establishing  | op Completed |  |
dialing       | sendDtmfTones   | establishing  | 409          |  |
dialing       | playPrompt      | establishing  | 409          |  |
dialing       | recordResponse  | establishing  | 409          |  |
dialing       | cancelMedia     | establishing  | op Completed |  |
dialing       | startHoldMusic  | establishing  | 409          |  |
dialing       | stopHoldMusic   | establishing  | 400          |  |
dialing       | leg ringing     | ringing       | -            | updated call ringing |
dialing       | leg progress    | establishing  | -            |  |
dialing       | leg answered    | established   | -            | updated call established |
dialing       | leg ended       | gone          | -            | deleted call terminated 4521 |
dialing       | leg tone        | establishing  | -            |  |
dialing       | clock +2h       | gone          | -            | deleted call terminated 10057 | hangUp 10057

ringing       | hangUp          | gone          | ok           | updated call terminating; deleted call terminated 5001 | hangUp 5001
ringing       | keepAlive       | ringing       | ok           |  |
ringing       | answer          | ringing       | 409          |  |
ringing       | reject          | ringing       | 409          |  |
ringing       | redirect        | ringing       | 409          |  |
ringing       | mute            | ringing       | 409          |  |
ringing       | unmute          | ringing       | 409          |  |
ringing       | subscribeToTone | ringing       | 409          |  |
ringing       | sendDtmfTones   | ringing       | 409          |  |
ringing       | playPrompt      | ringing       | 409          |  |
ringing       | recordResponse  | ringing       | 409          |  |
ringing       | cancelMedia     | ringing       | op Completed |  |
ringing       | startHoldMusic  | ringing       | 409          |  |
ringing       | stopHoldMusic   | ringing       | 400          |  |
ringing       | leg ringing     | ringing       | -            |  |
ringing       | leg progress    | ringing       | -            |  |
ringing       | leg answered    | established   | -            | updated call established |
ringing       | leg ended       | gone          | -            | deleted call terminated 4521 |
ringing       | leg tone        | ringing       | -            |  |
ringing       | clock +2h       | gone          | -            | deleted call terminated 10057 | hangUp 10057

established   | hangUp          | gone          | ok           | updated call terminating; deleted call terminated 5001 | hangUp 5001
established   | keepAlive       | established   | ok           |  |
established   | answer          | established   | 409          |  |
established   | reject          | established   | 409          |  |
established   | redirect        | established   | 409          |  |
established   | mute            | established   | op Completed |  |
established   | unmute          | established   | op Completed |  |
established   | subscribeToTone | established   | op Completed |  |
established   | sendDtmfTones   | established   | op Running   |  | tones 1
established   | playPrompt      | established   | op Running   |  |
established   | recordResponse  | established   | op Running   |  |
established   | cancelMedia     | established   | op Completed |  |
established   | startHoldMusic  | established   | op Running   | deleted operation Completed |
established   | stopHoldMusic   | established   | 400          |  |
established   | leg ringing     | established   | -            |  |
established   | leg progress    | established   | -            |  |
established   | leg answered    | established   | -            |  |
established   | leg ended       | gone          | -            | deleted call terminated 4521 |
established   | leg tone        | established   | -            |  |
established   | clock +2h       | gone          | -            | deleted call terminated 8537 | hangUp 8537

redirecting   | hangUp          | gone          | ok           | deleted call terminated 9001 | reject 9001
redirecting   | keepAlive       | redirecting   | ok           |  |
redirecting   | answer          | redirecting   | 409          |  |
redirecting   | reject          | redirecting   | 409          |  |
redirecting   | redirect        | redirecting   | 409          |  |
redirecting   | mute            | redirecting   | 409          |  |
redirecting   | unmute          | redirecting   | 409          |  |
redirecting   | subscribeToTone | redirecting   | 409          |  |
redirecting   | sendDtmfTones   | redirecting   | 409          |  |
redirecting   | playPrompt      | redirecting   | 409          |  |
redirecting   | recordResponse  | redirecting   | 409          |  |
redirecting   | cancelMedia     | redirecting   | op Completed |  |
redirecting   | startHoldMusic  | redirecting   | 409          |  |
redirecting   | stopHoldMusic   | redirecting   | 400          |  |
redirecting   | leg ringing     | redirecting   | -            |  |
redirecting   | leg progress    | redirecting   | -            |  |
redirecting   | leg answered    | redirecting   | -            |  |
redirecting   | leg ended       | gone          | -            | deleted call terminated 9008 |
redirecting   | leg tone        | redirecting   | -            |  |
redirecting   | clock +2h       | gone          | -            | deleted call terminated 10057 | reject 10057

terminated    | hangUp          | gone          | 404          |  |
terminated    | keepAlive       | gone          | 404          |  |
terminated    | answer          | gone          | 404          |  |
terminated    | reject          | gone          | 404          |  |
terminated    | redirect        | gone          | 404          |  |
terminated    | mute            | gone          | 404          |  |
terminated    | unmute          | gone          | 404          |  |
terminated    | subscribeToTone | gone          | 404          |  |
terminated    | sendDtmfTones   | gone          | 404          |  |
terminated    | playPrompt      | gone          | 404          |  |
terminated    | recordResponse  | gone          | 404          |  |
terminated    | cancelMedia     | gone          | 404          |  |
terminated    | startHoldMusic  | gone          | 404          |  |
terminated    | stopHoldMusic   | gone          | 404          |  |
terminated    | leg ringing     | gone          | -            |  |
terminated    | leg progress    | gone          | -            |  |
terminated    | leg answered    | gone          | -            |  |
terminated    | leg ended       | gone          | -            |  |
terminated    | leg tone        | gone          | -            |  |
terminated    | clock +2h       | gone          | -            |  |
`

// states build a call in each state of the table. The leg is the far
// end the table's leg events come from (the caller's, for an incoming or
// redirecting call).
var states = map[string]func(h *harness) (string, *fakeLeg){
	"incoming": func(h *harness) (string, *fakeLeg) { return h.incoming() },
	"answering": func(h *harness) (string, *fakeLeg) {
		id, leg := h.incoming()
		h.must(h.do(h.bot, id, "answer", "", answerReq()))
		return id, leg
	},
	"dialing": func(h *harness) (string, *fakeLeg) { return h.outgoing() },
	"ringing": func(h *harness) (string, *fakeLeg) {
		id, leg := h.outgoing()
		leg.emit(LegRinging)
		return id, leg
	},
	"established": func(h *harness) (string, *fakeLeg) { return h.established() },
	"redirecting": func(h *harness) (string, *fakeLeg) {
		id, leg := h.incoming()
		h.must(h.do(h.bot, id, "redirect", "", redirectReq()))
		return id, leg
	},
	"terminated": func(h *harness) (string, *fakeLeg) {
		id, leg := h.established()
		h.must(h.do(h.bot, id, "hangUp", "", nil))
		return id, leg
	},
}

func (h *harness) established() (string, *fakeLeg) {
	id, leg := h.outgoing()
	leg.emit(LegRinging)
	leg.emit(LegAnswered)
	h.sync(id)
	return id, leg
}

func (h *harness) must(_ *graph.Operation, err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

func answerReq() *graph.AnswerRequest {
	return &graph.AnswerRequest{CallbackURI: tHook, AcceptedModalities: []graph.Modality{graph.ModalityAudio},
		MediaConfig: &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig}}
}

func redirectReq() *graph.RedirectRequest {
	return &graph.RedirectRequest{Targets: []graph.InvitationParticipantInfo{{
		Identity: &graph.IdentitySet{User: &graph.Identity{ID: tBob}}}}}
}

func testPrompts() []graph.MediaPrompt {
	return []graph.MediaPrompt{{ODataType: graph.TypeMediaPrompt, MediaInfo: &graph.MediaInfo{URI: "http://127.0.0.1:9/p.wav"}}}
}

// events are the table's second column: each runs against a call and
// returns the reply ("-" for what is not a command).
var events = map[string]func(h *harness, id string, leg *fakeLeg) string{
	"hangUp":          cmd("hangUp", nil),
	"keepAlive":       cmd("keepAlive", nil),
	"answer":          cmd("answer", answerReq()),
	"reject":          cmd("reject", &graph.RejectRequest{Reason: graph.RejectBusy}),
	"redirect":        cmd("redirect", redirectReq()),
	"mute":            cmd("mute", &graph.ClientContextRequest{ClientContext: "c"}),
	"unmute":          cmd("unmute", &graph.ClientContextRequest{}),
	"subscribeToTone": cmd("subscribeToTone", &graph.ClientContextRequest{}),
	"sendDtmfTones":   cmd("sendDtmfTones", &graph.SendDtmfTonesRequest{Tones: []graph.Tone{graph.Tone1}}),
	"playPrompt":      cmd("playPrompt", &graph.PlayPromptRequest{Prompts: testPrompts()}),
	"recordResponse":  cmd("recordResponse", &graph.RecordResponseRequest{}),
	"cancelMedia":     cmd("cancelMediaProcessing", &graph.ClientContextRequest{}),
	"startHoldMusic":  participantCmd("startHoldMusic", &graph.StartHoldMusicRequest{}),
	"stopHoldMusic":   participantCmd("stopHoldMusic", &graph.ClientContextRequest{}),
	"leg ringing":     legEvent(LegRinging),
	"leg progress":    legEvent(LegProgress),
	"leg answered":    legEvent(LegAnswered),
	"leg ended":       legEvent(LegEnded),
	"leg tone":        legEvent(LegTone),
	"clock +2h": func(h *harness, id string, _ *fakeLeg) string {
		h.clk.Advance(2 * time.Hour)
		return "-"
	},
}

func cmd(name string, req any) func(h *harness, id string, leg *fakeLeg) string {
	return func(h *harness, id string, _ *fakeLeg) string { return replyOf(h.do(h.bot, id, name, "", req)) }
}

// participantCmd runs a participant action on the far end's participant.
func participantCmd(name string, req any) func(h *harness, id string, leg *fakeLeg) string {
	return func(h *harness, id string, _ *fakeLeg) string {
		pid := "0f0f0f0f-0000-4000-8000-000000000000" // the call is gone: any id
		if rec := h.st.record(h.t, id); rec != nil {
			for _, p := range rec.Participants {
				if p.ID != rec.Call.MyParticipantID {
					pid = p.ID
				}
			}
		}
		return replyOf(h.do(h.bot, id, name, pid, req))
	}
}

func legEvent(k LegEventKind) func(h *harness, id string, leg *fakeLeg) string {
	return func(_ *harness, _ string, leg *fakeLeg) string {
		leg.emit(k)
		return "-"
	}
}

func replyOf(op *graph.Operation, err error) string {
	switch {
	case err != nil:
		return fmt.Sprint(errs.KindOf(err).HTTPStatus())
	case op != nil:
		return "op " + string(op.Status)
	}
	return "ok"
}

type stateRow struct {
	state, event, next, reply string
	notes, asked              []string
}

func parseTable(t *testing.T) []stateRow {
	var rows []stateRow
	split := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ";") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	for _, line := range strings.Split(stateTable, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != 6 {
			t.Fatalf("table line %q: %d columns, want 6", line, len(f))
		}
		rows = append(rows, stateRow{
			state: strings.TrimSpace(f[0]), event: strings.TrimSpace(f[1]),
			next: strings.TrimSpace(f[2]), reply: strings.TrimSpace(f[3]),
			notes: split(f[4]), asked: split(f[5]),
		})
	}
	return rows
}

func TestStateMachineTable(t *testing.T) {
	rows := parseTable(t)
	seen := map[[2]string]bool{}
	for _, r := range rows {
		if states[r.state] == nil || events[r.event] == nil {
			t.Fatalf("table row %s | %s: unknown state or event", r.state, r.event)
		}
		seen[[2]string{r.state, r.event}] = true
	}
	for s := range states {
		for e := range events {
			if !seen[[2]string{s, e}] {
				t.Errorf("the table has no row for state %q and event %q", s, e)
			}
		}
	}
	for _, r := range rows {
		t.Run(r.state+"/"+r.event, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			id, leg := states[r.state](h)
			h.sync(id)
			h.nt.take(id)
			leg.asked()
			got := events[r.event](h, id, leg)
			h.sync(id)
			if got != r.reply {
				t.Errorf("reply %q, want %q", got, r.reply)
			}
			if s := h.state(id); s != r.next {
				t.Errorf("state %q, want %q", s, r.next)
			}
			if notes := h.nt.take(id); !slices.Equal(notes, r.notes) {
				t.Errorf("notifications\n got %q\nwant %q", notes, r.notes)
			}
			if asked := leg.asked(); !slices.Equal(asked, r.asked) {
				t.Errorf("leg asked %q, want %q", asked, r.asked)
			}
			if r.next == "gone" {
				if rec := h.st.record(t, id); rec != nil {
					t.Errorf("the ended call's record is still stored (state %s)", rec.Call.State)
				}
				h.leak(id)
			}
		})
	}
}
