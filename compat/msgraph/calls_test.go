package msgraph

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	jsonserialization "github.com/microsoft/kiota-serialization-json-go"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	"github.com/microsoftgraph/msgraph-sdk-go/communications"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
)

func ptr[T any](v T) *T { return &v }

// val dereferences p, or returns T's zero value for nil, so an assertion on
// a missing property fails with a readable message instead of a panic.
func val[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func callURL(id string) string { return "/communications/calls/" + id }

// parseCall reads a notification's resourceData with the client's own JSON
// parse node and model factory, the way the client reads a GET response.
func parseCall(t *testing.T, raw json.RawMessage) models.Callable {
	t.Helper()
	node, err := jsonserialization.NewJsonParseNode(raw)
	if err != nil {
		t.Fatalf("parse resourceData: %v", err)
	}
	v, err := node.GetObjectValue(models.CreateCallFromDiscriminatorValue)
	if err != nil {
		t.Fatalf("parse resourceData as a call: %v\n%s", err, raw)
	}
	c, ok := v.(models.Callable)
	if !ok {
		t.Fatalf("resourceData parsed as %T, not a call", v)
	}
	return c
}

func parseOperation(t *testing.T, raw json.RawMessage) models.CommsOperationable {
	t.Helper()
	node, err := jsonserialization.NewJsonParseNode(raw)
	if err != nil {
		t.Fatalf("parse resourceData: %v", err)
	}
	v, err := node.GetObjectValue(models.CreateCommsOperationFromDiscriminatorValue)
	if err != nil {
		t.Fatalf("parse resourceData as an operation: %v\n%s", err, raw)
	}
	op, ok := v.(models.CommsOperationable)
	if !ok {
		t.Fatalf("resourceData parsed as %T, not an operation", v)
	}
	return op
}

// waitCall waits for a notification on the call whose resource data, parsed
// as a call, satisfies match.
func waitCall(t *testing.T, callID, what string, match func(changeType string, c models.Callable) bool) models.Callable {
	t.Helper()
	var got models.Callable
	env.bot.wait(t, what+" on call "+callID, func(n notification) bool {
		if !strings.EqualFold(n.ResourceURL, callURL(callID)) {
			return false
		}
		c := parseCall(t, n.ResourceData)
		if match(n.ChangeType, c) {
			got = c
			return true
		}
		return false
	})
	return got
}

func waitState(t *testing.T, callID string, state models.CallState) models.Callable {
	t.Helper()
	return waitCall(t, callID, "state "+state.String(), func(_ string, c models.Callable) bool {
		return val(c.GetState()) == state
	})
}

// waitOperation waits for the deleted notification that ends an operation.
func waitOperation(t *testing.T, callID, opID string) models.CommsOperationable {
	t.Helper()
	n := env.bot.wait(t, "ending operation "+opID, func(n notification) bool {
		return strings.EqualFold(n.ResourceURL, callURL(callID)+"/operations/"+opID) && n.ChangeType == "deleted"
	})
	return parseOperation(t, n.ResourceData)
}

func checkResult(t *testing.T, what string, ri models.ResultInfoable, code, subcode int32) {
	t.Helper()
	if ri == nil {
		t.Fatalf("%s: no resultInfo", what)
	}
	if val(ri.GetCode()) != code || val(ri.GetSubcode()) != subcode || val(ri.GetMessage()) == "" {
		t.Errorf("%s: resultInfo %d/%d %q, want %d/%d with a message", what, val(ri.GetCode()), val(ri.GetSubcode()), val(ri.GetMessage()), code, subcode)
	}
}

func mediaPrompt(path string) models.Promptable {
	info := models.NewMediaInfo()
	info.SetUri(ptr(env.prompts.URL + path))
	info.SetResourceId(ptr("compat" + strings.ReplaceAll(path, "/", "-")))
	p := models.NewMediaPrompt()
	p.SetMediaInfo(info)
	return p
}

// callAlice places a call from the bot to the simulated user Alice and waits
// until it is established.
func callAlice(t *testing.T, client *msgraphsdk.GraphServiceClient) models.Callable {
	t.Helper()
	ctx := testCtx(t)
	user := models.NewIdentity()
	user.SetId(ptr(aliceID))
	user.SetDisplayName(ptr("Alice"))
	set := models.NewIdentitySet()
	set.SetUser(user)
	target := models.NewInvitationParticipantInfo()
	target.SetIdentity(set)
	req := models.NewCall()
	req.SetCallbackUri(ptr(env.hook.URL + "/callback"))
	req.SetTargets([]models.InvitationParticipantInfoable{target})
	req.SetRequestedModalities([]models.Modality{models.AUDIO_MODALITY})
	req.SetMediaConfig(models.NewServiceHostedMediaConfig())
	req.SetTenantId(ptr(tenantID))

	call, err := client.Communications().Calls().Post(ctx, req, nil)
	if err != nil {
		t.Fatalf("create call: %v", describe(err))
	}
	id := val(call.GetId())
	if id == "" {
		t.Fatal("created call has no id")
	}
	t.Cleanup(func() { _ = client.Communications().Calls().ByCallId(id).Delete(context.Background(), nil) })
	if got := val(call.GetOdataType()); got != "#microsoft.graph.call" {
		t.Errorf("@odata.type %q", got)
	}
	if s := val(call.GetState()); s != models.ESTABLISHING_CALLSTATE {
		t.Errorf("state %v, want establishing", s)
	}
	if d := val(call.GetDirection()); d != models.OUTGOING_CALLDIRECTION {
		t.Errorf("direction %v, want outgoing", d)
	}
	if val(call.GetMyParticipantId()) == "" || val(call.GetCallbackUri()) != env.hook.URL+"/callback" || val(call.GetTenantId()) != tenantID {
		t.Errorf("myParticipantId %q callbackUri %q tenantId %q", val(call.GetMyParticipantId()), val(call.GetCallbackUri()), val(call.GetTenantId()))
	}
	if ts := call.GetTargets(); len(ts) != 1 || ts[0].GetIdentity() == nil || ts[0].GetIdentity().GetUser() == nil || val(ts[0].GetIdentity().GetUser().GetId()) != aliceID {
		t.Errorf("targets do not name Alice: %+v", ts)
	}
	if m := call.GetRequestedModalities(); len(m) != 1 || m[0] != models.AUDIO_MODALITY {
		t.Errorf("requestedModalities %v", m)
	}
	if _, ok := call.GetMediaConfig().(models.ServiceHostedMediaConfigable); !ok {
		t.Errorf("mediaConfig parsed as %T, want serviceHostedMediaConfig", call.GetMediaConfig())
	}
	waitState(t, id, models.ESTABLISHED_CALLSTATE)
	return call
}

// describe spells out a Graph error for a test failure.
func describe(err error) error {
	var oe *odataerrors.ODataError
	if errors.As(err, &oe) && oe.GetErrorEscaped() != nil {
		return &describedError{err, oe.ResponseStatusCode, val(oe.GetErrorEscaped().GetCode()), val(oe.GetErrorEscaped().GetMessage())}
	}
	return err
}

type describedError struct {
	err           error
	status        int
	code, message string
}

func (e *describedError) Error() string {
	return e.err.Error() + " (HTTP " + http.StatusText(e.status) + ", " + e.code + ": " + e.message + ")"
}
func (e *describedError) Unwrap() error { return e.err }

// graphError returns err as the client's ODataError, failing the test when
// it is anything else.
func graphError(t *testing.T, err error) *odataerrors.ODataError {
	t.Helper()
	var oe *odataerrors.ODataError
	if !errors.As(err, &oe) {
		t.Fatalf("error %T %v, want *odataerrors.ODataError", err, err)
	}
	if oe.GetErrorEscaped() == nil {
		t.Fatalf("ODataError without its error object: %v", err)
	}
	return oe
}

// An outgoing call through the fluent API: create, get, participants,
// keepAlive, mute/unmute, media operations with their notifications and
// GETs, and hang up.
func TestOutgoingCall(t *testing.T) {
	client, wire := botClient(t)
	ctx := testCtx(t)
	call := callAlice(t, client)
	id := val(call.GetId())
	item := client.Communications().Calls().ByCallId(id)

	t.Run("get", func(t *testing.T) {
		got, err := item.Get(ctx, nil)
		if err != nil {
			t.Fatal(describe(err))
		}
		if val(got.GetId()) != id || val(got.GetState()) != models.ESTABLISHED_CALLSTATE || val(got.GetDirection()) != models.OUTGOING_CALLDIRECTION {
			t.Errorf("id %q state %v direction %v", val(got.GetId()), val(got.GetState()), val(got.GetDirection()))
		}
		if ms := got.GetMediaState(); ms == nil || val(ms.GetAudio()) != models.ACTIVE_MEDIASTATE {
			t.Errorf("mediaState %+v, want audio active", ms)
		}
		src := got.GetSource()
		if src == nil || src.GetIdentity() == nil || src.GetIdentity().GetApplication() == nil || val(src.GetIdentity().GetApplication().GetId()) != appID {
			t.Errorf("source does not name the bot application: %+v", src)
		}
		if val(got.GetCallChainId()) == "" {
			t.Error("no callChainId")
		}
	})

	t.Run("participants", func(t *testing.T) {
		res, err := item.Participants().Get(ctx, nil)
		if err != nil {
			t.Fatal(describe(err))
		}
		ps := res.GetValue()
		if len(ps) != 2 {
			t.Fatalf("%d participants, want 2 (the bot and Alice)", len(ps))
		}
		var me, alice models.Participantable
		for _, p := range ps {
			if val(p.GetId()) == val(call.GetMyParticipantId()) {
				me = p
			} else if p.GetInfo() != nil && p.GetInfo().GetIdentity() != nil && p.GetInfo().GetIdentity().GetUser() != nil &&
				val(p.GetInfo().GetIdentity().GetUser().GetId()) == aliceID {
				alice = p
			}
		}
		if me == nil || alice == nil {
			t.Fatalf("participants do not hold the bot (%s) and Alice", val(call.GetMyParticipantId()))
		}
		if val(alice.GetIsMuted()) || val(alice.GetIsInLobby()) {
			t.Errorf("Alice muted %v, in lobby %v", val(alice.GetIsMuted()), val(alice.GetIsInLobby()))
		}
		if ms := alice.GetMediaStreams(); len(ms) == 0 || val(ms[0].GetMediaType()) != models.AUDIO_MODALITY {
			t.Errorf("Alice's media streams %+v, want audio", ms)
		}
		one, err := item.Participants().ByParticipantId(val(alice.GetId())).Get(ctx, nil)
		if err != nil {
			t.Fatal(describe(err))
		}
		if val(one.GetId()) != val(alice.GetId()) || val(one.GetOdataType()) != "#microsoft.graph.participant" {
			t.Errorf("participant %q of type %q", val(one.GetId()), val(one.GetOdataType()))
		}
	})

	t.Run("keepAlive", func(t *testing.T) {
		if err := item.KeepAlive().Post(ctx, nil); err != nil {
			t.Fatal(describe(err))
		}
	})

	t.Run("mute and unmute", func(t *testing.T) {
		mb := communications.NewCallsItemMutePostRequestBody()
		mb.SetClientContext(ptr("mute-1"))
		op, err := item.Mute().Post(ctx, mb, nil)
		if err != nil {
			t.Fatal(describe(err))
		}
		if val(op.GetOdataType()) != "#microsoft.graph.muteParticipantOperation" || val(op.GetStatus()) != models.COMPLETED_OPERATIONSTATUS || val(op.GetClientContext()) != "mute-1" || val(op.GetId()) == "" {
			t.Errorf("mute: %q status %v clientContext %q id %q", val(op.GetOdataType()), val(op.GetStatus()), val(op.GetClientContext()), val(op.GetId()))
		}
		me, err := item.Participants().ByParticipantId(val(call.GetMyParticipantId())).Get(ctx, nil)
		if err != nil {
			t.Fatal(describe(err))
		}
		if !val(me.GetIsMuted()) {
			t.Error("the bot's participant is not muted after mute")
		}
		ub := communications.NewCallsItemUnmutePostRequestBody()
		ub.SetClientContext(ptr("unmute-1"))
		uop, err := item.Unmute().Post(ctx, ub, nil)
		if err != nil {
			t.Fatal(describe(err))
		}
		if val(uop.GetOdataType()) != "#microsoft.graph.unmuteParticipantOperation" || val(uop.GetStatus()) != models.COMPLETED_OPERATIONSTATUS || val(uop.GetClientContext()) != "unmute-1" {
			t.Errorf("unmute: %q status %v clientContext %q", val(uop.GetOdataType()), val(uop.GetStatus()), val(uop.GetClientContext()))
		}
		me, err = item.Participants().ByParticipantId(val(call.GetMyParticipantId())).Get(ctx, nil)
		if err != nil {
			t.Fatal(describe(err))
		}
		if val(me.GetIsMuted()) {
			t.Error("the bot's participant is still muted after unmute")
		}
	})

	t.Run("playPrompt", func(t *testing.T) {
		body := communications.NewCallsItemPlayPromptPostRequestBody()
		body.SetPrompts([]models.Promptable{mediaPrompt("/short.wav")})
		body.SetClientContext(ptr("play-1"))
		op, err := item.PlayPrompt().Post(ctx, body, nil)
		if err != nil {
			t.Fatal(describe(err))
		}
		opID := val(op.GetId())
		if val(op.GetOdataType()) != "#microsoft.graph.playPromptOperation" || val(op.GetClientContext()) != "play-1" || opID == "" {
			t.Errorf("playPrompt: %q clientContext %q id %q", val(op.GetOdataType()), val(op.GetClientContext()), opID)
		}
		if s := val(op.GetStatus()); s != models.RUNNING_OPERATIONSTATUS && s != models.NOTSTARTED_OPERATIONSTATUS {
			t.Errorf("playPrompt status %v, want running", s)
		}
		done := waitOperation(t, id, opID)
		if _, ok := done.(models.PlayPromptOperationable); !ok {
			t.Errorf("the ending notification parsed as %T, want a playPromptOperation", done)
		}
		if val(done.GetStatus()) != models.COMPLETED_OPERATIONSTATUS || val(done.GetClientContext()) != "play-1" {
			t.Errorf("ended with status %v clientContext %q", val(done.GetStatus()), val(done.GetClientContext()))
		}
		checkResult(t, "playPrompt", done.GetResultInfo(), 200, 0)

		got, err := item.Operations().ByCommsOperationId(opID).Get(ctx, nil)
		if err != nil {
			t.Fatal(describe(err))
		}
		if _, ok := got.(models.PlayPromptOperationable); !ok || val(got.GetStatus()) != models.COMPLETED_OPERATIONSTATUS {
			t.Errorf("GET operation: %T status %v", got, val(got.GetStatus()))
		}
	})

	t.Run("recordResponse", func(t *testing.T) {
		body := communications.NewCallsItemRecordResponsePostRequestBody()
		body.SetPrompts([]models.Promptable{mediaPrompt("/short.wav")})
		body.SetBargeInAllowed(ptr(false))
		body.SetInitialSilenceTimeoutInSeconds(ptr(int32(5)))
		body.SetMaxSilenceTimeoutInSeconds(ptr(int32(2)))
		body.SetMaxRecordDurationInSeconds(ptr(int32(1)))
		body.SetPlayBeep(ptr(true))
		body.SetStopTones([]string{"#"})
		body.SetClientContext(ptr("record-1"))
		op, err := item.RecordResponse().Post(ctx, body, nil)
		if err != nil {
			t.Fatal(describe(err))
		}
		opID := val(op.GetId())
		if val(op.GetOdataType()) != "#microsoft.graph.recordOperation" || val(op.GetClientContext()) != "record-1" || opID == "" {
			t.Errorf("recordResponse: %q clientContext %q id %q", val(op.GetOdataType()), val(op.GetClientContext()), opID)
		}
		if s := val(op.GetStatus()); s != models.RUNNING_OPERATIONSTATUS && s != models.NOTSTARTED_OPERATIONSTATUS {
			t.Errorf("recordResponse status %v, want running", s)
		}
		done := waitOperation(t, id, opID)
		rec, ok := done.(models.RecordOperationable)
		if !ok {
			t.Fatalf("the ending notification parsed as %T, want a recordOperation", done)
		}
		// The simulated user is silent, and the recording is shorter than the
		// initial-silence timeout: it ends on its maximum duration.
		if val(rec.GetStatus()) != models.COMPLETED_OPERATIONSTATUS {
			t.Errorf("ended with status %v", val(rec.GetStatus()))
		}
		checkResult(t, "recordResponse", rec.GetResultInfo(), 200, 8515)
		loc, tok := val(rec.GetRecordingLocation()), val(rec.GetRecordingAccessToken())
		if loc == "" || tok == "" {
			t.Fatalf("recordingLocation %q, recordingAccessToken %q", loc, tok)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET recordingLocation: %s", resp.Status)
		}
	})

	t.Run("sendDtmfTones", func(t *testing.T) {
		body := communications.NewCallsItemSendDtmfTonesPostRequestBody()
		body.SetTones([]models.Tone{models.TONE4_TONE, models.POUND_TONE})
		body.SetDelayBetweenTonesMs(ptr(int32(50)))
		body.SetClientContext(ptr("dtmf-1"))
		op, err := item.SendDtmfTones().Post(ctx, body, nil)
		if err != nil {
			t.Fatal(describe(err))
		}
		if val(op.GetOdataType()) != "#microsoft.graph.sendDtmfTonesOperation" || val(op.GetClientContext()) != "dtmf-1" {
			t.Errorf("sendDtmfTones: %q clientContext %q", val(op.GetOdataType()), val(op.GetClientContext()))
		}
		done := waitOperation(t, id, val(op.GetId()))
		dt, ok := done.(models.SendDtmfTonesOperationable)
		if !ok {
			t.Fatalf("the ending notification parsed as %T, want a sendDtmfTonesOperation", done)
		}
		if val(dt.GetStatus()) != models.COMPLETED_OPERATIONSTATUS || val(dt.GetCompletionReason()) != models.COMPLETEDSUCCESSFULLY_SENDDTMFCOMPLETIONREASON {
			t.Errorf("ended with status %v completionReason %v", val(dt.GetStatus()), val(dt.GetCompletionReason()))
		}
		// The operation completes on the platform's estimate of the tones'
		// length; Alice's handset hears them at its own pace.
		pollLeg(t, id, "tones 4#", func(l leg) bool { return l.TonesReceived == "4#" })
	})

	t.Run("cancelMediaProcessing", func(t *testing.T) {
		body := communications.NewCallsItemPlayPromptPostRequestBody()
		body.SetPrompts([]models.Promptable{mediaPrompt("/long.wav")})
		play, err := item.PlayPrompt().Post(ctx, body, nil)
		if err != nil {
			t.Fatal(describe(err))
		}
		cb := communications.NewCallsItemCancelMediaProcessingPostRequestBody()
		cb.SetClientContext(ptr("cancel-1"))
		op, err := item.CancelMediaProcessing().Post(ctx, cb, nil)
		if err != nil {
			t.Fatal(describe(err))
		}
		if val(op.GetOdataType()) != "#microsoft.graph.cancelMediaProcessingOperation" || val(op.GetStatus()) != models.COMPLETED_OPERATIONSTATUS {
			t.Errorf("cancelMediaProcessing: %q status %v", val(op.GetOdataType()), val(op.GetStatus()))
		}
		done := waitOperation(t, id, val(play.GetId()))
		if val(done.GetStatus()) != models.FAILED_OPERATIONSTATUS {
			t.Errorf("the cancelled prompt ended %v, want failed", val(done.GetStatus()))
		}
		checkResult(t, "cancelled playPrompt", done.GetResultInfo(), 400, 8508)
	})

	t.Run("delete", func(t *testing.T) {
		if err := item.Delete(ctx, nil); err != nil {
			t.Fatal(describe(err))
		}
		end := waitCall(t, id, "terminated", func(changeType string, c models.Callable) bool {
			return changeType == "deleted" && val(c.GetState()) == models.TERMINATED_CALLSTATE
		})
		checkResult(t, "hang up", end.GetResultInfo(), 200, 5001)
		_, err := item.Get(ctx, nil)
		oe := graphError(t, err)
		if oe.ResponseStatusCode != http.StatusNotFound || val(oe.GetErrorEscaped().GetCode()) != "itemNotFound" {
			t.Errorf("GET after hang-up: %d %q", oe.ResponseStatusCode, val(oe.GetErrorEscaped().GetCode()))
		}
	})

	// The client compresses request bodies (kiota's compression handler);
	// every POST above was accepted that way.
	if n := wire.count("gzip"); n == 0 {
		t.Errorf("no request body went out gzip-encoded (encodings seen: %v)", wire.encodings)
	} else {
		t.Logf("%d request bodies were sent gzip-encoded, %d plain", n, wire.count(""))
	}
}

// An incoming call from a simulated caller: the bot's webhook gets the
// incoming call, the bot answers it, subscribes to tones and hears a key.
func TestIncomingCall(t *testing.T) {
	client, _ := botClient(t)
	ctx := testCtx(t)
	var l leg
	simulator(t, http.MethodPost, "/calls", map[string]string{"from": alicePhone, "to": botNumber}, &l)
	if l.CallID == "" {
		t.Fatalf("simulator gave no call id: %+v", l)
	}
	item := client.Communications().Calls().ByCallId(l.CallID)
	t.Cleanup(func() { _ = item.Delete(context.Background(), nil) })

	in := waitCall(t, l.CallID, "incoming", func(changeType string, c models.Callable) bool {
		return changeType == "created"
	})
	if val(in.GetState()) != models.INCOMING_CALLSTATE || val(in.GetDirection()) != models.INCOMING_CALLDIRECTION || val(in.GetId()) != l.CallID {
		t.Errorf("incoming call: id %q state %v direction %v", val(in.GetId()), val(in.GetState()), val(in.GetDirection()))
	}
	if in.GetSource() == nil {
		t.Fatal("incoming call without source")
	}
	// A caller's phone number is only in a communicationsIdentitySet: a
	// plain identitySet has no phone (graph-deviations.md).
	cis, ok := in.GetSource().GetIdentity().(models.CommunicationsIdentitySetable)
	if !ok {
		t.Fatalf("source identity parsed as %T, want communicationsIdentitySet", in.GetSource().GetIdentity())
	}
	if cis.GetPhone() == nil || val(cis.GetPhone().GetId()) != alicePhone {
		t.Errorf("source phone %+v, want %s", cis.GetPhone(), alicePhone)
	}
	if ts := in.GetTargets(); len(ts) != 1 {
		t.Errorf("%d targets, want the bot", len(ts))
	} else if tcis, ok := ts[0].GetIdentity().(models.CommunicationsIdentitySetable); !ok || tcis.GetApplicationInstance() == nil {
		t.Errorf("target identity %T does not name the bot's applicationInstance", ts[0].GetIdentity())
	}

	body := communications.NewCallsItemAnswerPostRequestBody()
	body.SetCallbackUri(ptr(env.hook.URL + "/callback"))
	body.SetAcceptedModalities([]models.Modality{models.AUDIO_MODALITY})
	body.SetMediaConfig(models.NewServiceHostedMediaConfig())
	if err := item.Answer().Post(ctx, body, nil); err != nil {
		t.Fatal(describe(err))
	}
	est := waitState(t, l.CallID, models.ESTABLISHED_CALLSTATE)
	if ms := est.GetMediaState(); ms != nil && val(ms.GetAudio()) != models.ACTIVE_MEDIASTATE {
		t.Errorf("established with media state %v", val(ms.GetAudio()))
	}

	// A second answer conflicts; the client parses the 409.
	err := item.Answer().Post(ctx, body, nil)
	oe := graphError(t, err)
	if oe.ResponseStatusCode != http.StatusConflict || val(oe.GetErrorEscaped().GetCode()) != "conflict" {
		t.Errorf("second answer: %d %q %q", oe.ResponseStatusCode, val(oe.GetErrorEscaped().GetCode()), val(oe.GetErrorEscaped().GetMessage()))
	}

	sb := communications.NewCallsItemSubscribeToTonePostRequestBody()
	sb.SetClientContext(ptr("tones-1"))
	op, err := item.SubscribeToTone().Post(ctx, sb, nil)
	if err != nil {
		t.Fatal(describe(err))
	}
	if val(op.GetOdataType()) != "#microsoft.graph.subscribeToToneOperation" || val(op.GetStatus()) != models.COMPLETED_OPERATIONSTATUS || val(op.GetClientContext()) != "tones-1" {
		t.Errorf("subscribeToTone: %q status %v clientContext %q", val(op.GetOdataType()), val(op.GetStatus()), val(op.GetClientContext()))
	}
	checkResult(t, "subscribeToTone", op.GetResultInfo(), 200, 0)

	simulator(t, http.MethodPost, "/calls/"+l.ID+"/keys", map[string]string{"keys": "1*"}, nil)
	for i, want := range []models.Tone{models.TONE1_TONE, models.STAR_TONE} {
		c := waitCall(t, l.CallID, "tone "+want.String(), func(_ string, c models.Callable) bool {
			return c.GetToneInfo() != nil && val(c.GetToneInfo().GetSequenceId()) == int64(i+1)
		})
		if got := val(c.GetToneInfo().GetTone()); got != want {
			t.Errorf("tone %d is %v, want %v", i+1, got, want)
		}
	}

	if err := item.Delete(ctx, nil); err != nil {
		t.Fatal(describe(err))
	}
	waitState(t, l.CallID, models.TERMINATED_CALLSTATE)
}

// Rejecting an incoming call: 202 through the client, and the caller's
// phone hears busy.
func TestRejectIncomingCall(t *testing.T) {
	client, _ := botClient(t)
	ctx := testCtx(t)
	var l leg
	simulator(t, http.MethodPost, "/calls", map[string]string{"from": alicePhone, "to": botNumber}, &l)
	waitCall(t, l.CallID, "incoming", func(changeType string, _ models.Callable) bool { return changeType == "created" })

	body := communications.NewCallsItemRejectPostRequestBody()
	body.SetReason(ptr(models.BUSY_REJECTREASON))
	if err := client.Communications().Calls().ByCallId(l.CallID).Reject().Post(ctx, body, nil); err != nil {
		t.Fatal(describe(err))
	}
	end := waitState(t, l.CallID, models.TERMINATED_CALLSTATE)
	checkResult(t, "reject busy", end.GetResultInfo(), 486, 9002)
	var after struct {
		State     string `json:"state"`
		SIPStatus int    `json:"sipStatus"`
	}
	simulator(t, http.MethodGet, "/calls/"+l.ID+"?waitFor=ended&timeout=10s", nil, &after)
	if after.State != "ended" || after.SIPStatus != 486 {
		t.Errorf("the caller's leg is %s with SIP status %d, want ended with 486", after.State, after.SIPStatus)
	}
}

// Errors come back as the client's *odataerrors.ODataError, with the code,
// message and inner error parsed.
func TestErrors(t *testing.T) {
	ctx := testCtx(t)

	t.Run("unknown call", func(t *testing.T) {
		client, _ := botClient(t)
		const missing = "00000000-0000-4000-8000-00000000dead"
		_, err := client.Communications().Calls().ByCallId(missing).Get(ctx, nil)
		oe := graphError(t, err)
		main := oe.GetErrorEscaped()
		if oe.ResponseStatusCode != http.StatusNotFound || val(main.GetCode()) != "itemNotFound" || val(main.GetMessage()) == "" {
			t.Errorf("GET unknown call: %d %q %q", oe.ResponseStatusCode, val(main.GetCode()), val(main.GetMessage()))
		}
		if oe.Error() != val(main.GetMessage()) {
			t.Errorf("Error() %q is not the message %q", oe.Error(), val(main.GetMessage()))
		}
		inner := main.GetInnerError()
		if inner == nil || val(inner.GetRequestId()) == "" || val(inner.GetClientRequestId()) == "" || inner.GetDate() == nil {
			t.Fatalf("innerError %+v lacks request-id, client-request-id or date", inner)
		}
		if d := time.Since(*inner.GetDate()); d < -time.Minute || d > time.Minute {
			t.Errorf("innerError date %v is not now", *inner.GetDate())
		}
		// The request-id header is what the client exposes besides the body.
		if oe.ResponseHeaders == nil || len(oe.ResponseHeaders.Get("request-id")) == 0 {
			t.Error("no request-id response header")
		}
	})

	t.Run("bad token", func(t *testing.T) {
		client, _ := newClient(t, staticToken{token: "not-a-token", hosts: nodeHost(env.public)})
		_, err := client.Communications().Calls().ByCallId("00000000-0000-4000-8000-00000000dead").Get(ctx, nil)
		oe := graphError(t, err)
		if oe.ResponseStatusCode != http.StatusUnauthorized || val(oe.GetErrorEscaped().GetCode()) != "InvalidAuthenticationToken" || val(oe.GetErrorEscaped().GetMessage()) == "" {
			t.Errorf("bad token: %d %q %q", oe.ResponseStatusCode, val(oe.GetErrorEscaped().GetCode()), val(oe.GetErrorEscaped().GetMessage()))
		}
	})

	t.Run("not supported", func(t *testing.T) {
		client, _ := botClient(t)
		call := callAlice(t, client)
		body := communications.NewCallsItemUpdateRecordingStatusPostRequestBody()
		status := models.RECORDING_RECORDINGSTATUS
		body.SetStatus(&status)
		_, err := client.Communications().Calls().ByCallId(val(call.GetId())).UpdateRecordingStatus().Post(ctx, body, nil)
		oe := graphError(t, err)
		if oe.ResponseStatusCode != http.StatusBadRequest || val(oe.GetErrorEscaped().GetCode()) != "notSupported" {
			t.Errorf("updateRecordingStatus: %d %q %q", oe.ResponseStatusCode, val(oe.GetErrorEscaped().GetCode()), val(oe.GetErrorEscaped().GetMessage()))
		}
	})
}
