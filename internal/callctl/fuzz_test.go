package callctl

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// FuzzActionBody feeds a bot's request body to every Graph action of the
// table (Actions), and to a new call's (POST /communications/calls):
// decoded into the action's request type as graphapi decodes it (a body
// that does not decode is graphapi's 400), then run by a call's actor on
// the in-memory harness, on a call (state: 0 established two-party, 1
// ringing in, 2 a group call of three), participant actions on a
// participant other than the bot. sel picks the action, the last index
// being the new call. Nothing may panic; the answer is success or a
// client error (4xx), never a server error; the call still answers after.
func FuzzActionBody(f *testing.F) {
	all := Actions()
	index := map[string]int{}
	for i, x := range all {
		index[x.Name] = i
	}
	f.Add([]byte(`{"callbackUri":"http://127.0.0.1:9/hook","acceptedModalities":["audio"],`+
		`"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"}}`), uint8(index["answer"]), uint8(1))
	f.Fuzz(func(t *testing.T, body []byte, sel uint8, state uint8) {
		var x *Action
		if i := int(sel) % (len(all) + 1); i < len(all) {
			x = all[i]
		}
		if x == nil {
			var req graph.Call
			if !decodes(body, &req) {
				return
			}
			h := newHarness(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			call, err := h.m.Create(ctx, h.bot, &req)
			checkAnswer(t, "create", err)
			if err == nil {
				h.sync(call.ID)
				stillAnswers(t, h, call.ID)
			}
			return
		}
		req := x.NewRequest()
		if !decodes(body, req) {
			return
		}
		h := newHarness(t)
		var id string
		switch state % 3 {
		case 0:
			id, _ = h.established()
		case 1:
			id, _ = h.incoming()
		case 2:
			id, _ = h.group()
		}
		pid := ""
		if x.Participant {
			rec := h.st.record(t, id)
			for _, p := range rec.Participants {
				if p.ID != rec.Call.MyParticipantID && pid == "" {
					pid = p.ID
				}
			}
		}
		name := x.Name
		if x == RemoveParticipant {
			name = "remove"
		}
		_, err := h.do(h.bot, id, name, pid, req)
		checkAnswer(t, x.Name, err)
		h.sync(id)
		stillAnswers(t, h, id)
	})
}

// decodes is graphapi's decoding of a request body: an empty one leaves
// the request as it is.
func decodes(body []byte, req any) bool {
	return len(bytes.TrimSpace(body)) == 0 || json.Unmarshal(body, req) == nil
}

// checkAnswer fails on an error that is not the client's.
func checkAnswer(t *testing.T, action string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if st := errs.KindOf(err).HTTPStatus(); st < 400 || st >= 500 {
		t.Fatalf("%s: answered %d: %v", action, st, err)
	}
}

// stillAnswers checks that the call's record reads after the action: it
// exists, or the call is gone.
func stillAnswers(t *testing.T, h *harness, id string) {
	t.Helper()
	_, err := h.m.Get(context.Background(), h.bot, id)
	if err != nil && errs.KindOf(err) != errs.NotFound {
		t.Fatalf("GET after the action: %v", err)
	}
}
