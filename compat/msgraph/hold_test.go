package msgraph

import (
	"math"
	"net/http"
	"testing"

	"github.com/microsoftgraph/msgraph-sdk-go/communications"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
)

// Hold music on an established call, through the participant's
// startHoldMusic and stopHoldMusic: the built-in chime, then a customPrompt.
// Each action returns its running operation, completed by notification; the
// held user's handset hears the music.
func TestHoldMusic(t *testing.T) {
	client, _ := botClient(t)
	ctx := testCtx(t)
	call := callAlice(t, client)
	id := val(call.GetId())
	item := client.Communications().Calls().ByCallId(id)
	alice := farParticipant(t, item, val(call.GetMyParticipantId()))
	held := item.Participants().ByParticipantId(alice)

	// stopHoldMusic for somebody not on hold is a 400 the client parses.
	_, err := held.StopHoldMusic().Post(ctx, communications.NewCallsItemParticipantsItemStopHoldMusicPostRequestBody(), nil)
	if oe := graphError(t, err); oe.ResponseStatusCode != http.StatusBadRequest {
		t.Errorf("stopHoldMusic before startHoldMusic: %d %q", oe.ResponseStatusCode, val(oe.GetErrorEscaped().GetMessage()))
	}

	for _, tc := range []struct {
		name   string
		prompt models.Promptable // nil: the built-in chime
		length float64           // seconds of one loop of the music
	}{
		{"built-in chime", nil, 4},
		{"customPrompt", mediaPrompt("/short.wav"), 0.3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := pollLeg(t, id, "connected", func(l leg) bool { return l.State == "connected" })

			sb := communications.NewCallsItemParticipantsItemStartHoldMusicPostRequestBody()
			sb.SetClientContext(ptr("hold-" + tc.name))
			if tc.prompt != nil {
				sb.SetCustomPrompt(tc.prompt)
			}
			start, err := held.StartHoldMusic().Post(ctx, sb, nil)
			if err != nil {
				t.Fatal(describe(err))
			}
			startID := val(start.GetId())
			if val(start.GetOdataType()) != "#microsoft.graph.startHoldMusicOperation" || val(start.GetClientContext()) != "hold-"+tc.name || startID == "" {
				t.Errorf("startHoldMusic: %q clientContext %q id %q", val(start.GetOdataType()), val(start.GetClientContext()), startID)
			}
			if s := val(start.GetStatus()); s != models.RUNNING_OPERATIONSTATUS && s != models.NOTSTARTED_OPERATIONSTATUS {
				t.Errorf("startHoldMusic status %v, want running", s)
			}
			done := waitOperation(t, id, startID)
			if _, ok := done.(models.StartHoldMusicOperationable); !ok {
				t.Errorf("the ending notification parsed as %T, want a startHoldMusicOperation", done)
			}
			if val(done.GetStatus()) != models.COMPLETED_OPERATIONSTATUS || val(done.GetClientContext()) != "hold-"+tc.name {
				t.Errorf("startHoldMusic ended with status %v clientContext %q", val(done.GetStatus()), val(done.GetClientContext()))
			}
			checkResult(t, "startHoldMusic", done.GetResultInfo(), 200, 0)
			got, err := item.Operations().ByCommsOperationId(startID).Get(ctx, nil)
			if err != nil {
				t.Fatal(describe(err))
			}
			if _, ok := got.(models.StartHoldMusicOperationable); !ok || val(got.GetStatus()) != models.COMPLETED_OPERATIONSTATUS {
				t.Errorf("GET operation: %T status %v", got, val(got.GetStatus()))
			}

			// The held user hears the music: one more prompt, of the music's
			// length (a loop counts once), and sound on its handset.
			heard := pollLeg(t, id, "hearing the music", func(l leg) bool {
				return l.PromptsHeard == before.PromptsHeard+1 && math.Abs(l.PromptSeconds-before.PromptSeconds-tc.length) < 0.01 &&
					(!before.Audio || l.SoundSeconds >= before.SoundSeconds+0.2)
			})
			if !before.Audio {
				t.Log("the simulated user has no RTP handset: sound not checked")
			}
			t.Logf("on hold Alice heard %d prompt(s), %.1f s of music, %.2f s of sound", heard.PromptsHeard-before.PromptsHeard,
				heard.PromptSeconds-before.PromptSeconds, heard.SoundSeconds-before.SoundSeconds)

			xb := communications.NewCallsItemParticipantsItemStopHoldMusicPostRequestBody()
			xb.SetClientContext(ptr("unhold-" + tc.name))
			stop, err := held.StopHoldMusic().Post(ctx, xb, nil)
			if err != nil {
				t.Fatal(describe(err))
			}
			if val(stop.GetOdataType()) != "#microsoft.graph.stopHoldMusicOperation" || val(stop.GetClientContext()) != "unhold-"+tc.name || val(stop.GetId()) == "" {
				t.Errorf("stopHoldMusic: %q clientContext %q id %q", val(stop.GetOdataType()), val(stop.GetClientContext()), val(stop.GetId()))
			}
			if s := val(stop.GetStatus()); s != models.RUNNING_OPERATIONSTATUS && s != models.NOTSTARTED_OPERATIONSTATUS {
				t.Errorf("stopHoldMusic status %v, want running", s)
			}
			stopped := waitOperation(t, id, val(stop.GetId()))
			if _, ok := stopped.(models.StopHoldMusicOperationable); !ok {
				t.Errorf("the ending notification parsed as %T, want a stopHoldMusicOperation", stopped)
			}
			if val(stopped.GetStatus()) != models.COMPLETED_OPERATIONSTATUS || val(stopped.GetClientContext()) != "unhold-"+tc.name {
				t.Errorf("stopHoldMusic ended with status %v clientContext %q", val(stopped.GetStatus()), val(stopped.GetClientContext()))
			}
			checkResult(t, "stopHoldMusic", stopped.GetResultInfo(), 200, 0)
		})
	}

	// Off hold, the call is still up.
	got, err := item.Get(ctx, nil)
	if err != nil {
		t.Fatal(describe(err))
	}
	if val(got.GetState()) != models.ESTABLISHED_CALLSTATE {
		t.Errorf("after hold music the call is %v, want established", val(got.GetState()))
	}
}

// farParticipant returns the id of the call's participant that is not the
// bot, read through the client.
func farParticipant(t *testing.T, item *communications.CallsCallItemRequestBuilder, me string) string {
	t.Helper()
	res, err := item.Participants().Get(testCtx(t), nil)
	if err != nil {
		t.Fatal(describe(err))
	}
	for _, p := range res.GetValue() {
		if id := val(p.GetId()); id != "" && id != me {
			return id
		}
	}
	t.Fatalf("no participant besides the bot (%s)", me)
	return ""
}
