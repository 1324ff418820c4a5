package calltest_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/golden/*.json from what the server emits now")

const goldenDir = "testdata/golden"

// TestGolden drives one node through an outbound call, an incoming call,
// DTMF, operations, errors and the token endpoint, and records every JSON
// document the server emitted on the way: HTTP response bodies (with their
// status and the headers a client reads) and the notification envelopes
// the bot's webhook received. Each document is normalised (ids, hosts,
// dates, tokens) and compared with its file in testdata/golden; -update
// rewrites the files. The documents are then checked against examples from
// Graph's reference pages, so a golden file cannot silently bless a shape
// Graph clients would not parse.
func TestGolden(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	s := captureShapes(t, p)

	compareGolden(t, s.docs)

	t.Run("spec/createCall", func(t *testing.T) { specCreateCall(t, p, s) })
	t.Run("spec/getCall", func(t *testing.T) { specGetCall(t, s) })
	t.Run("spec/participants", func(t *testing.T) { specParticipants(t, s) })
	t.Run("spec/operations", func(t *testing.T) { specOperations(t, p, s) })
	t.Run("spec/outboundNotifications", func(t *testing.T) { specOutboundNotifications(t, s) })
	t.Run("spec/incomingNotification", func(t *testing.T) { specIncoming(t, s) })
	t.Run("spec/toneNotification", func(t *testing.T) { specTone(t, s) })
	t.Run("spec/operationCompleted", func(t *testing.T) { specOperationCompleted(t, s) })
	t.Run("spec/errors", func(t *testing.T) { specErrors(t, s) })
	t.Run("spec/token", func(t *testing.T) { specToken(t, s) })
	t.Run("spec/everywhere", func(t *testing.T) { specEverywhere(t, s) })
}

// shapes holds what one run of the node emitted, in the order it was
// captured, with the ids the spec checks need.
type shapes struct {
	docs  []goldenDoc
	index map[string]int

	outCall      string                    // the outbound call's id
	outMe        string                    // its myParticipantId
	dtmfOp       string                    // the sendDtmfTones operation's id
	inCall       string                    // the incoming call (from a Teams user) that was answered
	phoneInCall  string                    // the incoming call from a phone number
	toneOp       string                    // the subscribeToTone operation's id
	inCreated    graph.Call                // the incoming call as its created notification had it
	inRoster     []graph.Participant       // its participants once answered
	errorHeaders map[int]map[string]string // request-id and client-request-id of each error response
}

// goldenDoc is one emitted JSON document, before normalisation.
type goldenDoc struct {
	name string // file name without .json
	raw  []byte
}

func (s *shapes) add(t *testing.T, name string, raw []byte) {
	t.Helper()
	if _, dup := s.index[name]; dup {
		t.Fatalf("golden shape %s captured twice", name)
	}
	if !json.Valid(raw) {
		t.Fatalf("%s: the server emitted invalid JSON: %s", name, raw)
	}
	s.index[name] = len(s.docs)
	s.docs = append(s.docs, goldenDoc{name, raw})
}

// get decodes a captured document with numbers kept as json.Number, so
// integer and fractional values stay apart.
func (s *shapes) get(t *testing.T, name string) map[string]any {
	t.Helper()
	i, ok := s.index[name]
	if !ok {
		t.Fatalf("shape %s was not captured", name)
	}
	return decodeJSON(t, name, s.docs[i].raw)
}

func decodeJSON(t *testing.T, what string, raw []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: decode %s: %v", what, raw, err)
	}
	return m
}

// goldenHeaders are the response headers a Graph client reads; they are
// part of a response's golden file when present.
var goldenHeaders = []string{"Content-Type", "Location", "WWW-Authenticate", "Retry-After", "Cache-Control", "Pragma"}

// httpDoc records a response as {"status", "headers", "body"}.
func httpDoc(t *testing.T, r *calltest.Response) []byte {
	t.Helper()
	h := map[string]string{}
	for _, k := range goldenHeaders {
		if v := r.Header.Get(k); v != "" {
			h[k] = v
		}
	}
	doc := struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body,omitempty"`
	}{r.StatusCode, h, r.Body}
	if len(bytes.TrimSpace(r.Body)) == 0 {
		doc.Body = nil
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("record %s: %v (body %s)", r.Status, err, r.Body)
	}
	return b
}

func expectStatus(t *testing.T, what string, r *calltest.Response, status int) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s: %s, want %d: %s", what, r.Status, status, r.Body)
	}
}

func captureShapes(t *testing.T, p *calltest.Platform) *shapes {
	t.Helper()
	s := &shapes{index: map[string]int{}, errorHeaders: map[int]map[string]string{}}
	const wait = 10 * time.Second

	// An outbound P2P call, created with the body of the first example of
	// https://learn.microsoft.com/graph/api/application-post-calls.
	r := p.Bot("POST", calls, specCreateRequest(p.Hook.URL, calltest.AliceID))
	expectStatus(t, "create call", r, 201)
	s.add(t, "create_call_201", httpDoc(t, r))
	var call graph.Call
	r.JSON(t, &call)
	s.outCall, s.outMe = call.ID, call.MyParticipantID
	p.Hook.WaitState(t, call.ID, graph.StateEstablished)

	r = p.Bot("GET", calls+"/"+call.ID, nil)
	expectStatus(t, "GET call", r, 200)
	s.add(t, "get_call_established", httpDoc(t, r))

	r = p.Bot("GET", calls+"/"+call.ID+"/participants", nil)
	expectStatus(t, "participants", r, 200)
	s.add(t, "participants_list", httpDoc(t, r))

	r = p.Bot("GET", calls+"/"+call.ID+"/participants/"+call.MyParticipantID, nil)
	expectStatus(t, "participant", r, 200)
	s.add(t, "participant_get", httpDoc(t, r))

	r = p.Bot("POST", calls+"/"+call.ID+"/mute", map[string]string{"clientContext": "mute-ctx"})
	expectStatus(t, "mute", r, 200)
	s.add(t, "operation_mute", httpDoc(t, r))

	r = p.Bot("POST", calls+"/"+call.ID+"/sendDtmfTones",
		map[string]any{"tones": []string{"tone1", "pound"}, "delayBetweenTonesMs": 10, "clientContext": "dtmf-ctx"})
	expectStatus(t, "sendDtmfTones", r, 200)
	s.add(t, "operation_sendDtmfTones", httpDoc(t, r))
	var op graph.Operation
	r.JSON(t, &op)
	s.dtmfOp = op.ID
	done := p.Hook.Wait(t, call.ID, wait, "sendDtmfTones completion", func(ns []calltest.Notification) bool {
		return slices.ContainsFunc(ns, func(n calltest.Notification) bool { return strings.HasSuffix(n.ResourceURL, "/operations/"+op.ID) })
	})
	for _, n := range done {
		if strings.HasSuffix(n.ResourceURL, "/operations/"+op.ID) {
			s.add(t, "notification_operation_completed", n.Raw)
		}
	}

	expectStatus(t, "hang up", p.Bot("DELETE", calls+"/"+call.ID, nil), 204)
	p.Hook.WaitState(t, call.ID, graph.StateTerminated)
	for _, n := range p.Hook.For(call.ID) {
		if n.ResourceURL != "/communications/calls/"+call.ID {
			continue
		}
		s.add(t, "notification_outbound_"+string(n.Call(t).State), n.Raw)
	}

	// An incoming call from a Teams user (exIncoming),
	// answered; then a key press after subscribeToTone.
	var leg struct{ ID, CallID string }
	r = p.Do(calltest.Req{Method: "POST", Path: "/simulator/v1/calls", Body: map[string]string{"from": calltest.CarolID, "to": calltest.BotNumber}})
	expectStatus(t, "simulated call from Eve", r, 201)
	r.JSON(t, &leg)
	legID, inID := leg.ID, leg.CallID
	s.inCall = inID
	created := p.Hook.WaitState(t, inID, graph.StateIncoming)
	s.add(t, "notification_incoming_created", created.Raw)
	s.inCreated = created.Call(t)
	ans := map[string]any{"callbackUri": p.Hook.URL, "acceptedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}
	expectStatus(t, "answer", p.Bot("POST", calls+"/"+inID+"/answer", ans), 202)
	p.Hook.WaitState(t, inID, graph.StateEstablished)
	r = p.Bot("GET", calls+"/"+inID+"/participants", nil)
	expectStatus(t, "participants of the incoming call", r, 200)
	var roster struct{ Value []graph.Participant }
	r.JSON(t, &roster)
	s.inRoster = roster.Value
	r = p.Bot("POST", calls+"/"+inID+"/subscribeToTone", map[string]string{"clientContext": "tone-ctx"})
	expectStatus(t, "subscribeToTone", r, 200)
	s.add(t, "operation_subscribeToTone", httpDoc(t, r))
	r.JSON(t, &op)
	s.toneOp = op.ID
	r = p.Bot("GET", calls+"/"+inID+"/operations/"+op.ID, nil)
	expectStatus(t, "GET operation", r, 200)
	s.add(t, "operation_get", httpDoc(t, r))
	expectStatus(t, "press 1", p.Do(calltest.Req{Method: "POST", Path: "/simulator/v1/calls/" + legID + "/keys",
		Body: map[string]string{"keys": "1"}}), 202)
	ns := p.Hook.Wait(t, inID, wait, "a tone notification", func(ns []calltest.Notification) bool {
		return slices.ContainsFunc(ns, func(n calltest.Notification) bool { return n.Call(t).ToneInfo != nil })
	})
	for _, n := range ns {
		if n.Call(t).ToneInfo != nil {
			s.add(t, "notification_tone", n.Raw)
			break
		}
	}
	expectStatus(t, "caller hangs up", p.Do(calltest.Req{Method: "DELETE", Path: "/simulator/v1/calls/" + legID}), 204)
	p.Hook.WaitState(t, inID, graph.StateTerminated)

	// An incoming call from a phone number to the bot's number: the caller
	// is a phone identity, the target the bot's applicationInstance.
	_, phoneID := simCall(t, p, calltest.BotNumber)
	s.phoneInCall = phoneID
	s.add(t, "notification_incoming_created_phone", p.Hook.WaitState(t, phoneID, graph.StateIncoming).Raw)
	expectStatus(t, "reject", p.Bot("POST", calls+"/"+phoneID+"/reject", map[string]string{"reason": "busy"}), 202)
	p.Hook.WaitState(t, phoneID, graph.StateTerminated)

	// Graph error bodies.
	body := calltest.CallTo(p.Hook.URL, calltest.AliceID)
	errs := map[int]*calltest.Response{
		401: p.Do(calltest.Req{Method: "POST", Path: calls, Body: body}),
		403: p.Do(calltest.Req{Method: "POST", Path: calls, Body: body, Token: p.Token(calltest.WeakBotID, calltest.TenantID)}),
		404: p.Bot("GET", calls+"/"+call.ID, nil), // the ended outbound call
		400: p.Bot("POST", calls, map[string]any{"mediaConfig": map[string]any{}}),
	}
	for _, code := range []int{400, 401, 403, 404} {
		expectStatus(t, "error", errs[code], code)
		s.add(t, fmt.Sprintf("error_%d", code), httpDoc(t, errs[code]))
		s.errorHeaders[code] = map[string]string{
			"request-id":        errs[code].Header.Get("request-id"),
			"client-request-id": errs[code].Header.Get("client-request-id"),
		}
	}

	// The token endpoint: a token, and the identity platform's error.
	token := func(secret string) *calltest.Response {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {calltest.BotID}, "client_secret": {secret},
			"scope": {"https://graph.microsoft.com/.default"}}
		return p.Do(calltest.Req{Method: "POST", Path: "/" + calltest.TenantID + "/oauth2/v2.0/token", Body: form.Encode(),
			Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
	}
	r = token(calltest.Secret)
	expectStatus(t, "token", r, 200)
	s.add(t, "token_response", httpDoc(t, r))
	r = token("wrong-secret-0123456789")
	expectStatus(t, "token with a wrong secret", r, 401)
	s.add(t, "token_error", httpDoc(t, r))
	return s
}

// specCreateRequest is the first example of
// https://learn.microsoft.com/graph/api/application-post-calls, verbatim but
// for the callback and the user.
func specCreateRequest(callback, userID string) map[string]any {
	body := calltest.CallTo(callback, userID)
	body["callOptions"] = map[string]any{"@odata.type": "#microsoft.graph.outgoingCallOptions", "isContentSharingNotificationEnabled": true}
	return body
}

// --- normalisation and golden files --------------------------------------------------------

var (
	goldenJWT  = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)
	goldenHost = regexp.MustCompile(`(https?)://(?:127\.0\.0\.1|localhost|\[::1\]):[0-9]+`)
	goldenGUID = regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	goldenDate = regexp.MustCompile(`[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?`)
)

// goldenNames are the test directory's fixed ids, written by name so a
// golden file shows which one sits where; Graph's own application id is
// a constant and stays as it is.
var goldenNames = map[string]string{
	calltest.TenantID:                      "{tenant}",
	calltest.OtherTenantID:                 "{otherTenant}",
	calltest.AliceID:                       "{alice}",
	calltest.BobID:                         "{bob}",
	calltest.CarolID:                       "{carol}",
	calltest.DaveID:                        "{dave}",
	calltest.EveID:                         "{eve}",
	calltest.BotID:                         "{bot}",
	calltest.Bot2ID:                        "{bot2}",
	calltest.WeakBotID:                     "{weakBot}",
	calltest.OtherBotID:                    "{otherBot}",
	"00000003-0000-0000-c000-000000000000": "00000003-0000-0000-c000-000000000000",
}

// normalizeGolden replaces what changes from run to run: JWTs by {jwt},
// loopback host:port by {host}, GUIDs by {guid1}, {guid2}... in order of
// first appearance (the same GUID gets the same placeholder throughout the
// document), dates by {date}; and indents the result.
func normalizeGolden(raw []byte) ([]byte, error) {
	s := goldenJWT.ReplaceAllString(string(raw), "{jwt}")
	s = goldenHost.ReplaceAllString(s, "$1://{host}")
	seen := map[string]string{}
	s = goldenGUID.ReplaceAllStringFunc(s, func(g string) string {
		g = strings.ToLower(g)
		if name, ok := goldenNames[g]; ok {
			return name
		}
		if _, ok := seen[g]; !ok {
			seen[g] = fmt.Sprintf("{guid%d}", len(seen)+1)
		}
		return seen[g]
	})
	s = goldenDate.ReplaceAllString(s, "{date}")
	var out bytes.Buffer
	if err := json.Indent(&out, []byte(s), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func compareGolden(t *testing.T, docs []goldenDoc) {
	t.Helper()
	if *updateGolden {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{}
	for _, d := range docs {
		file := filepath.Join(goldenDir, d.name+".json")
		want[file] = true
		got, err := normalizeGolden(d.raw)
		if err != nil {
			t.Errorf("%s: normalise: %v\n%s", d.name, err, d.raw)
			continue
		}
		if *updateGolden {
			if err := os.WriteFile(file, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		old, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("%s: %v; run go test ./internal/calltest -run Golden -update", d.name, err)
			continue
		}
		if !bytes.Equal(old, got) {
			t.Errorf("%s differs from what the server emits now:\n%s\nIf the change is intended, run go test ./internal/calltest -run Golden -update and review the diff.",
				file, lineDiff(string(old), string(got)))
		}
	}
	// A golden file nothing produces any more is a shape nobody checks.
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if want[f] {
			continue
		}
		if *updateGolden {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s: no longer produced by TestGolden; delete it or run -update", f)
	}
}

// lineDiff shows the lines where want and got part: what lies between
// their common first and last lines, with a little context.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	j := 0
	for j < len(w)-i && j < len(g)-i && w[len(w)-1-j] == g[len(g)-1-j] {
		j++
	}
	var b strings.Builder
	for k := max(0, i-3); k < i; k++ {
		fmt.Fprintf(&b, "   %s\n", w[k])
	}
	for _, l := range w[i : len(w)-j] {
		fmt.Fprintf(&b, " - %s\n", l)
	}
	for _, l := range g[i : len(g)-j] {
		fmt.Fprintf(&b, " + %s\n", l)
	}
	for k := len(w) - j; k < min(len(w), len(w)-j+3); k++ {
		fmt.Fprintf(&b, "   %s\n", w[k])
	}
	return fmt.Sprintf("golden (-) vs now (+), from line %d:\n%s", i+1, b.String())
}

// --- Graph's examples ------------------------------------------------------------------------

// Examples in the shapes Graph's reference pages show (the page is named
// above each), with concrete ids filled in. null marks a property the example
// shows unset: it need not be emitted.
const (
	// https://learn.microsoft.com/graph/api/application-post-calls: the 201
	// body is the request echoed, with "state", "direction", "id",
	// "myParticipantId", "callChainId", "source" filled with the app
	// identity, and "@odata.context" ...#app/calls/$entity.
	ex201 = `{
	  "@odata.type": "#microsoft.graph.call",
	  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#app/calls/$entity",
	  "id": "2e1a0b00-2db4-4022-9570-243709c565ab",
	  "state": "establishing",
	  "direction": "outgoing",
	  "callbackUri": "https://bot.example.com/callback",
	  "callChainId": "d8217646-3110-40b1-bae6-e9ac6c3a9f74",
	  "myParticipantId": "499ff390-7a72-40e8-83a0-8fac6295ae7e",
	  "source": {"@odata.type": "#microsoft.graph.participantInfo",
	    "identity": {"@odata.type": "#microsoft.graph.identitySet",
	      "application": {"@odata.type": "#microsoft.graph.identity", "id": "2891555a-92ff-42e6-80fa-6e1300c6b5c6", "displayName": "TestBot"}},
	    "endpointType": null, "region": null, "languageId": null},
	  "targets": [{"@odata.type": "#microsoft.graph.invitationParticipantInfo",
	    "identity": {"@odata.type": "#microsoft.graph.identitySet",
	      "user": {"@odata.type": "#microsoft.graph.identity", "id": "8d0a2a96-5a2c-4bd4-b9a6-7b3e8fbc4a21", "displayName": "John"}}}],
	  "requestedModalities": ["audio"],
	  "callOptions": {"@odata.type": "#microsoft.graph.outgoingCallOptions", "isContentSharingNotificationEnabled": true},
	  "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
	  "chatInfo": null, "meetingInfo": null, "toneInfo": null, "resultInfo": null, "answeredBy": null,
	  "incomingContext": null, "mediaState": null, "subject": null, "transcription": null, "terminationReason": null,
	  "activeModalities": [], "routingPolicies": []
	}`

	// https://learn.microsoft.com/graph/api/resources/commsnotifications,
	// with both resourceUrl and the legacy resource.
	exEnvelope = `{
	  "@odata.type": "#microsoft.graph.commsNotifications",
	  "value": [{
	    "@odata.type": "#microsoft.graph.commsNotification",
	    "changeType": "updated",
	    "resource": "/app/calls/57dab8b1-894c-409a-b240-bd8beae78896",
	    "resourceUrl": "/communications/calls/57dab8b1-894c-409a-b240-bd8beae78896",
	    "resourceData": {}
	  }]
	}`

	// Establishing / established:
	// https://learn.microsoft.com/graph/api/application-post-calls.
	exStateChange = `{"@odata.type": "#microsoft.graph.call", "state": "establishing", "id": "57dab8b1-894c-409a-b240-bd8beae78896"}`

	// Terminated: https://learn.microsoft.com/graph/api/call-delete.
	exTerminated = `{"@odata.type": "#microsoft.graph.call", "state": "terminated",
	  "resultInfo": {"@odata.type": "#microsoft.graph.resultInfo", "code": 200, "subcode": 5001, "message": "The conversation has ended."}}`

	// Incoming call (created):
	// https://learn.microsoft.com/graph/api/call-answer,
	// https://learn.microsoft.com/graph/api/call-redirect.
	exIncoming = `{"@odata.type": "#microsoft.graph.call", "@odata.id": "/communications/calls/57dab8b1-894c-409a-b240-bd8beae78896",
	  "state": "incoming", "direction": "incoming", "callbackUri": "https://bot.example.com/callback",
	  "source": {"@odata.type": "#microsoft.graph.participantInfo", "id": "2b9b1a4e-8b61-4a36-a6b5-1b2f33f08ed6",
	    "identity": {"@odata.type": "#microsoft.graph.identitySet",
	      "user": {"@odata.type": "#microsoft.graph.identity", "id": "8d0a2a96-5a2c-4bd4-b9a6-7b3e8fbc4a21", "displayName": "Test User",
	               "tenantId": "632899f8-2ea1-4604-8413-27bd2892079f"}},
	    "endpointType": "default", "region": "amer", "languageId": "en-US"},
	  "targets": [{"@odata.type": "#microsoft.graph.invitationParticipantInfo",
	    "identity": {"application": {"id": "2891555a-92ff-42e6-80fa-6e1300c6b5c6", "displayName": "Test BOT"}}}],
	  "requestedModalities": ["audio"], "tenantId": "632899f8-2ea1-4604-8413-27bd2892079f",
	  "myParticipantId": "499ff390-7a72-40e8-83a0-8fac6295ae7e",
	  "callChainId": "d8217646-3110-40b1-bae6-e9ac6c3a9f74", "id": "57dab8b1-894c-409a-b240-bd8beae78896"}`

	// A key press:
	// https://learn.microsoft.com/graph/api/call-subscribetotone.
	exTone = `{"@odata.type": "#microsoft.graph.call", "state": "established",
	  "toneInfo": {"@odata.type": "#microsoft.graph.toneInfo", "sequenceId": 1, "tone": "tone1"}}`

	// https://learn.microsoft.com/graph/api/call-list-participants.
	exParticipantList = `{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#communications/calls('57dab8b1-894c-409a-b240-bd8beae78896')/participants",
	  "value": [{"@odata.type": "#microsoft.graph.participant", "id": "499ff390-7a72-40e8-83a0-8fac6295ae7e",
	    "info": {"@odata.type": "#microsoft.graph.participantInfo",
	      "identity": {"@odata.type": "#microsoft.graph.identitySet",
	        "user": {"@odata.type": "#microsoft.graph.identity", "id": "8d0a2a96-5a2c-4bd4-b9a6-7b3e8fbc4a21", "displayName": "John"}},
	      "languageId": "en-US", "region": "westus"},
	    "mediaStreams": [{"@odata.type": "#microsoft.graph.mediaStream", "mediaType": "audio",
	      "sourceId": "1", "direction": "sendReceive", "serverMuted": false, "label": "main-audio"}],
	    "isMuted": true, "isInLobby": false}]}`

	// https://learn.microsoft.com/graph/api/call-mute.
	exMute = `{"@odata.type": "#microsoft.graph.muteParticipantOperation",
	  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#muteParticipantOperation",
	  "id": "17e3b46c-f61d-4f4d-9635-c626ef18e6ad", "status": "completed", "clientContext": "mute-ctx"}`

	// https://learn.microsoft.com/graph/api/call-subscribetotone.
	exSubscribeToTone = `{"@odata.type": "#microsoft.graph.subscribeToToneOperation", "clientContext": "tone-ctx",
	  "id": "17e3b46c-f61d-4f4d-9635-c626ef18e6ad", "status": "completed"}`

	// https://learn.microsoft.com/graph/api/call-senddtmftones.
	exSendDtmf = `{"@odata.type": "#microsoft.graph.sendDtmfTonesOperation", "status": "running", "clientContext": "dtmf-ctx",
	  "id": "17e3b46c-f61d-4f4d-9635-c626ef18e6ad"}`

	// Its completion, with the resultInfo of
	// https://learn.microsoft.com/graph/api/call-playprompt.
	exDtmfCompleted = `{"@odata.type": "#microsoft.graph.sendDtmfTonesOperation", "id": "17e3b46c-f61d-4f4d-9635-c626ef18e6ad",
	  "clientContext": "dtmf-ctx", "status": "completed", "completionReason": "completedSuccessfully",
	  "resultInfo": {"@odata.type": "#microsoft.graph.resultInfo", "code": 200, "subcode": 0, "message": "Action completed successfully."}}`

	// https://learn.microsoft.com/graph/errors.
	exError = `{"error": {"code": "Forbidden", "message": "<developer text>",
	  "innerError": {"request-id": "0c2f3a1b-9d5e-4c7a-8f21-6b3d4e5f6a7b", "date": "2020-07-23T04:00:37",
	                 "client-request-id": "0c2f3a1b-9d5e-4c7a-8f21-6b3d4e5f6a7b"}}}`

	// https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow.
	exTokenResponse = `{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": "eyJ0eX.eyJhdWQ.c2ln"}`
	exTokenError    = `{"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.",
	  "error_codes": [7000215], "timestamp": "2020-07-23 04:00:37Z",
	  "trace_id": "0c2f3a1b-9d5e-4c7a-8f21-6b3d4e5f6a7b", "correlation_id": "0c2f3a1b-9d5e-4c7a-8f21-6b3d4e5f6a7b"}`
)

func specDoc(t *testing.T, name, text string) map[string]any {
	t.Helper()
	return decodeJSON(t, "spec example "+name, []byte(text))
}

// checkT is the part of testing.T the checks use, so a test can run them
// on documents known to be wrong and see them complain.
type checkT interface {
	Helper()
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
}

// omitted lists properties an example shows set that Switchboard
// knowingly leaves out, each with why; conform accepts their absence. Keys
// are dotted paths without array indexes ("source.identity.user").
type omitted map[string]string

var goldenIndex = regexp.MustCompile(`\[[0-9]+\]`)

// conform checks ours against a spec example: every property the example
// sets (not null) and the Go wire type models is present in ours, with the
// same JSON kind (an integer where the example has an integer); every
// @odata.type is spelled exactly as the example spells it. Properties the
// wire type does not model are logged, not required. typ is the Go wire
// type of the value (nil when it is free-form).
func conform(t checkT, shape string, typ reflect.Type, spec, ours any, path string, skip omitted) {
	t.Helper()
	where := shape + ": " + strings.TrimPrefix(path, ".")
	if where == shape+": " {
		where = shape + ": (top level)"
	}
	switch sv := spec.(type) {
	case map[string]any:
		ov, ok := ours.(map[string]any)
		if !ok {
			t.Errorf("%s: the spec has an object, we emit %s", where, kindOf(ours))
			return
		}
		fields := jsonFields(typ)
		for _, k := range slices.Sorted(maps.Keys(sv)) {
			kv := sv[k]
			p := path + "." + k
			if kv == nil {
				continue // unset in the example
			}
			var ft reflect.Type
			if fields != nil {
				f, modelled := fields[k]
				if !modelled {
					t.Logf("%s.%s: in the spec's example, not modelled by %s", where, k, typ)
					continue
				}
				ft = f
			}
			got, present := ov[k]
			if !present || got == nil {
				if why, ok := skip[goldenIndex.ReplaceAllString(strings.TrimPrefix(p, "."), "")]; ok {
					t.Logf("%s.%s: not emitted: %s", where, k, why)
					continue
				}
				t.Errorf("%s.%s: the spec's example has it (%v); we do not emit it", where, k, kv)
				continue
			}
			if k == "@odata.type" {
				checkODataType(t, where, kv.(string), got, ov)
				continue
			}
			conform(t, shape, ft, kv, got, p, skip)
		}
	case []any:
		ov, ok := ours.([]any)
		if !ok {
			t.Errorf("%s: the spec has an array, we emit %s", where, kindOf(ours))
			return
		}
		if len(sv) > 0 && len(ov) == 0 {
			t.Errorf("%s: the spec's example has entries, we emit an empty array", where)
			return
		}
		if len(sv) > 0 {
			conform(t, shape, typ, sv[0], ov[0], path+"[0]", skip)
		}
	case json.Number:
		on, ok := ours.(json.Number)
		if !ok {
			t.Errorf("%s: the spec has a number (%s), we emit %s %v", where, sv, kindOf(ours), ours)
			return
		}
		if isInteger(sv) && !isInteger(on) {
			t.Errorf("%s: the spec has an integer (%s), we emit %s", where, sv, on)
		}
	case string:
		if _, ok := ours.(string); !ok {
			t.Errorf("%s: the spec has a string (%q), we emit %s %v", where, sv, kindOf(ours), ours)
		}
	case bool:
		if _, ok := ours.(bool); !ok {
			t.Errorf("%s: the spec has a boolean, we emit %s %v", where, kindOf(ours), ours)
		}
	}
}

// checkODataType compares an @odata.type with the example's, allowing the
// one substitution docs/decisions.md#identity-sets makes: an identity set
// carrying a phone, applicationInstance, guest or encrypted identity is
// written as #microsoft.graph.communicationsIdentitySet.
func checkODataType(t checkT, where, want string, got any, obj map[string]any) {
	t.Helper()
	g, _ := got.(string)
	if g == want {
		return
	}
	if want == "#microsoft.graph.identitySet" && g == "#microsoft.graph.communicationsIdentitySet" {
		for _, k := range []string{"phone", "applicationInstance", "guest", "encrypted", "azureCommunicationServicesUser", "assertedIdentity"} {
			if obj[k] != nil {
				return
			}
		}
		t.Errorf("%s: @odata.type %q on an identity set with none of phone, applicationInstance, guest, encrypted: Graph writes %q", where, g, want)
		return
	}
	t.Errorf("%s: @odata.type %q, the spec spells it %q", where, got, want)
}

func isInteger(n json.Number) bool { return !strings.ContainsAny(string(n), ".eE") }

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

// jsonFields maps the JSON names of a struct type's fields to their types
// (pointers and slices unwrapped); nil for types without fields.
func jsonFields(typ reflect.Type) map[string]reflect.Type {
	for typ != nil && (typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice) {
		typ = typ.Elem()
	}
	if typ == nil || typ.Kind() != reflect.Struct {
		return nil
	}
	out := map[string]reflect.Type{}
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		ft := f.Type
		if ft == reflect.TypeFor[json.RawMessage]() {
			out[name] = nil // free-form
			continue
		}
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		out[name] = ft
	}
	return out
}

// str reads a string at a dotted path ("a.b[0].c") of a decoded document.
func str(v any, path string) string {
	s, _ := at(v, path).(string)
	return s
}

// goldenPathPart splits a dotted path, keeping @odata.* keys whole.
var goldenPathPart = regexp.MustCompile(`@odata\.[A-Za-z]+(?:\[[0-9]+\])?|[^.]+`)

func at(v any, path string) any {
	for _, part := range goldenPathPart.FindAllString(path, -1) {
		name, idx, indexed := strings.Cut(part, "[")
		if name != "" {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[name]
		}
		if indexed {
			i, _ := strconv.Atoi(strings.TrimSuffix(idx, "]"))
			a, ok := v.([]any)
			if !ok || i >= len(a) {
				return nil
			}
			v = a[i]
		}
	}
	return v
}

func wantEqual(t checkT, shape, path string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: %s = %v, want %v", shape, path, got, want)
	}
}

// Graph's canonical enum spellings
// (https://learn.microsoft.com/graph/api/resources/call,
// https://learn.microsoft.com/graph/api/resources/commsoperation,
// https://learn.microsoft.com/graph/api/resources/commsnotification).
// Operation statuses are spelled as Graph's schema spells them: the
// examples' lower case is what Graph's generated clients do not parse
// (docs/msgraph-compat.md).
var (
	callStates       = []string{"incoming", "establishing", "ringing", "established", "hold", "transferring", "transferAccepted", "redirecting", "terminating", "terminated"}
	changeTypes      = []string{"created", "updated", "deleted"}
	operationStatus  = []string{"NotStarted", "Running", "Completed", "Failed"}
	toneNames        = []string{"tone0", "tone1", "tone2", "tone3", "tone4", "tone5", "tone6", "tone7", "tone8", "tone9", "star", "pound", "a", "b", "c", "d", "flash"}
	completionReason = []string{"unknown", "completedSuccessfully", "mediaOperationCanceled", "unknownFutureValue"}
)

func wantEnum(t checkT, shape, path string, v any, allowed []string) {
	t.Helper()
	s, ok := v.(string)
	if !ok || !slices.Contains(allowed, s) {
		t.Errorf("%s: %s = %v, not one of Graph's spellings %v (case matters on output)", shape, path, v, allowed)
	}
}

// wantResultInfo checks a resultInfo as
// https://learn.microsoft.com/graph/api/resources/resultinfo defines it:
// integer code and subcode, the key spelled "subcode", a message.
func wantResultInfo(t checkT, shape, path string, v any, code, subcode int) {
	t.Helper()
	ri, ok := v.(map[string]any)
	if !ok {
		t.Errorf("%s: %s is %s, want a resultInfo object", shape, path, kindOf(v))
		return
	}
	if ri["@odata.type"] != "#microsoft.graph.resultInfo" {
		t.Errorf("%s: %s.@odata.type = %v", shape, path, ri["@odata.type"])
	}
	if _, ok := ri["subCode"]; ok {
		t.Errorf("%s: %s spells subCode; Graph's output spells subcode", shape, path)
	}
	for k, want := range map[string]int{"code": code, "subcode": subcode} {
		n, ok := ri[k].(json.Number)
		if !ok || !isInteger(n) {
			t.Errorf("%s: %s.%s = %v (%s), want the integer %d", shape, path, k, ri[k], kindOf(ri[k]), want)
			continue
		}
		if got, _ := n.Int64(); got != int64(want) {
			t.Errorf("%s: %s.%s = %d, want %d", shape, path, k, got, want)
		}
	}
	if m, _ := ri["message"].(string); m == "" {
		t.Errorf("%s: %s.message is empty: a bot author needs a reason", shape, path)
	}
}

// knownDeviations are server-side differences from Graph this test found
// and reported but may not fix (callctl is not its to change). A check that
// finds one logs it; a listed deviation that no longer happens fails the
// test, so the entry goes when the server is fixed.
var knownDeviations = map[string]string{}

// deviation reports a failed check bad, or logs it when it is a known
// deviation; a known deviation that did not happen is an error.
func deviation(t checkT, key string, bad bool, format string, args ...any) {
	t.Helper()
	why, known := knownDeviations[key]
	switch {
	case bad && known:
		t.Logf("known deviation %s: %s (%s)", key, fmt.Sprintf(format, args...), why)
	case bad:
		t.Errorf(format, args...)
	case known:
		t.Errorf("known deviation %s no longer happens: remove it from knownDeviations", key)
	}
}

// --- the checks, shape by shape ------------------------------------------------------------

var (
	callType        = reflect.TypeFor[graph.Call]()
	operationType   = reflect.TypeFor[graph.Operation]()
	participantType = reflect.TypeFor[graph.Participant]()
	envelopeType    = reflect.TypeFor[graph.CommsNotifications]()
)

func specCreateCall(t *testing.T, p *calltest.Platform, s *shapes) {
	doc := s.get(t, "create_call_201")
	body := doc["body"]
	conform(t, "create_call_201", callType, specDoc(t, "201", ex201), body, "", omitted{
		"source.endpointType": "unset in the example",
	})
	wantEqual(t, "create_call_201", "headers.Location", str(doc, "headers.Location"), p.URL+"/v1.0/communications/calls/"+s.outCall)
	wantEqual(t, "create_call_201", "state", str(body, "state"), "establishing")
	wantEqual(t, "create_call_201", "direction", str(body, "direction"), "outgoing")
	wantEqual(t, "create_call_201", "source.identity.application.id", str(body, "source.identity.application.id"), calltest.BotID)
	wantEqual(t, "create_call_201", "callbackUri", str(body, "callbackUri"), p.Hook.URL)
	wantEqual(t, "create_call_201", "tenantId", str(body, "tenantId"), calltest.TenantID)
	// Graph's create example says app/calls (sic), its GET example
	// communications/calls
	// (https://learn.microsoft.com/graph/api/application-post-calls,
	// https://learn.microsoft.com/graph/api/call-get).
	wantEqual(t, "create_call_201", "@odata.context", str(body, "@odata.context"), p.URL+"/v1.0/$metadata#app/calls/$entity")
	if id := str(body, "source.id"); id != "" {
		deviation(t, "outbound-source-id", id != s.outMe,
			"create_call_201: source.id %s is not the bot's participant (myParticipantId %s)", id, s.outMe)
	}
	for _, k := range []string{"id", "myParticipantId", "callChainId"} {
		if v := str(body, k); !goldenGUID.MatchString(v) {
			t.Errorf("create_call_201: %s = %q, want a GUID", k, v)
		}
	}
	if !strings.HasPrefix(str(doc, "headers.Content-Type"), "application/json") {
		t.Errorf("create_call_201: Content-Type %q", str(doc, "headers.Content-Type"))
	}
}

func specGetCall(t *testing.T, s *shapes) {
	body := s.get(t, "get_call_established")["body"]
	// GET returns the whole call: everything the 201 had, now established.
	spec := specDoc(t, "201", ex201)
	spec["state"] = "established"
	spec["@odata.context"] = "https://graph.microsoft.com/v1.0/$metadata#communications/calls/$entity"
	spec["mediaState"] = map[string]any{"audio": "active"}
	conform(t, "get_call_established", callType, spec, body, "", nil)
	wantEqual(t, "get_call_established", "state", str(body, "state"), "established")
	wantEqual(t, "get_call_established", "mediaState.audio", str(body, "mediaState.audio"), "active")
	if c := str(body, "@odata.context"); !strings.HasSuffix(c, "/v1.0/$metadata#communications/calls/$entity") {
		t.Errorf("get_call_established: @odata.context %q", c)
	}
}

func specParticipants(t *testing.T, s *shapes) {
	const shape = "participants_list"
	body := s.get(t, shape)["body"].(map[string]any)
	specEntry := specDoc(t, "participants", exParticipantList)["value"].([]any)[0]
	noRegion := omitted{"info.region": "Switchboard has no regions"}
	entries, _ := body["value"].([]any)
	if len(entries) != 2 {
		t.Fatalf("%s: %d entries, want the bot and the callee", shape, len(entries))
	}
	// The bot itself is in the roster, its id the call's myParticipantId.
	wantEqual(t, shape, "value[0].id", str(entries[0], "id"), s.outMe)
	wantEqual(t, shape, "value[0].info.identity.application.id", str(entries[0], "info.identity.application.id"), calltest.BotID)
	conform(t, shape+" value[0] (the bot)", participantType, specEntry, entries[0], "",
		omitted{"info.region": noRegion["info.region"], "info.identity.user": "the bot's own entry: identity.application"})
	wantEqual(t, shape, "value[1].info.identity.user.id", str(entries[1], "info.identity.user.id"), calltest.AliceID)
	conform(t, shape+" value[1] (the callee)", participantType, specEntry, entries[1], "", noRegion)
	sources := map[string]bool{}
	for i, e := range entries {
		wantEnum(t, shape, fmt.Sprintf("value[%d].mediaStreams[0].direction", i), at(e, "mediaStreams[0].direction"),
			[]string{"inactive", "sendOnly", "receiveOnly", "sendReceive"})
		wantEnum(t, shape, fmt.Sprintf("value[%d].mediaStreams[0].mediaType", i), at(e, "mediaStreams[0].mediaType"),
			[]string{"unknown", "audio", "video", "videoBasedScreenSharing", "data"})
		sources[str(e, "mediaStreams[0].sourceId")] = true
	}
	deviation(t, "shared-source-id", len(sources) != len(entries),
		"%s: participants share a mediaStreams sourceId (%v): a source id names one participant's stream", shape, slices.Sorted(maps.Keys(sources)))
	if c := str(body, "@odata.context"); !strings.HasSuffix(c, "/v1.0/$metadata#communications/calls('"+s.outCall+"')/participants") {
		t.Errorf("%s: @odata.context %q", shape, c)
	}
	one := s.get(t, "participant_get")["body"]
	conform(t, "participant_get", participantType, specEntry, one, "",
		omitted{"info.region": noRegion["info.region"], "info.identity.user": "the bot's own entry: identity.application"})
	wantEqual(t, "participant_get", "id", str(one, "id"), s.outMe)
	if c := str(one, "@odata.context"); !strings.HasSuffix(c, "/v1.0/$metadata#communications/calls('"+s.outCall+"')/participants/$entity") {
		t.Errorf("participant_get: @odata.context %q", c)
	}

	// An incoming call's roster: the bot is myParticipantId, the caller
	// the source's id (source carries the caller's participant id, as in
	// exIncoming).
	ids := []string{}
	for _, p := range s.inRoster {
		ids = append(ids, p.ID)
	}
	wantEqual(t, "incoming call's participants", "ids", ids, []string{s.inCreated.MyParticipantID, s.inCreated.Source.ID})
}

func specOperations(t *testing.T, p *calltest.Platform, s *shapes) {
	for _, tc := range []struct {
		shape, spec, typ, status, callID string
	}{
		{"operation_mute", exMute, "#microsoft.graph.muteParticipantOperation", "Completed", s.outCall},
		{"operation_sendDtmfTones", exSendDtmf, "#microsoft.graph.sendDtmfTonesOperation", "Running", s.outCall},
		{"operation_subscribeToTone", exSubscribeToTone, "#microsoft.graph.subscribeToToneOperation", "Completed", s.inCall},
	} {
		doc := s.get(t, tc.shape)
		body := doc["body"]
		conform(t, tc.shape, operationType, specDoc(t, tc.shape, tc.spec), body, "", nil)
		wantEqual(t, tc.shape, "@odata.type", str(body, "@odata.type"), tc.typ)
		wantEnum(t, tc.shape, "status", at(body, "status"), operationStatus)
		wantEqual(t, tc.shape, "status", str(body, "status"), tc.status)
		// Operation actions answer with the operation's URL
		// (https://learn.microsoft.com/graph/api/call-mute).
		wantEqual(t, tc.shape, "headers.Location", str(doc, "headers.Location"),
			p.URL+"/v1.0/communications/calls/"+tc.callID+"/operations/"+str(body, "id"))
		// https://learn.microsoft.com/graph/api/call-mute shows
		// @odata.context ...$metadata#muteParticipantOperation.
		if c, want := str(body, "@odata.context"), "/v1.0/$metadata#"+strings.TrimPrefix(tc.typ, "#microsoft.graph."); !strings.HasSuffix(c, want) {
			t.Errorf("%s: @odata.context %q, want ...%s", tc.shape, c, want)
		}
		// A terminal status in the response means no notification follows;
		// the result is in the body
		// (https://learn.microsoft.com/graph/api/resources/commsoperation).
		if tc.status == "Completed" {
			wantResultInfo(t, tc.shape, "resultInfo", at(body, "resultInfo"), 200, 0)
		}
	}
	got := s.get(t, "operation_get")["body"]
	conform(t, "operation_get", operationType, specDoc(t, "subscribeToTone", exSubscribeToTone), got, "", nil)
	wantEqual(t, "operation_get", "id", str(got, "id"), s.toneOp)
}

func specEnvelopeOf(t *testing.T, shape string, env map[string]any, change, resourceURL, legacy string) map[string]any {
	t.Helper()
	conform(t, shape, envelopeType, specDoc(t, "envelope", exEnvelope), env, "", nil)
	wantEqual(t, shape, "@odata.type", env["@odata.type"], "#microsoft.graph.commsNotifications")
	values, _ := env["value"].([]any)
	if len(values) != 1 {
		t.Fatalf("%s: %d notifications in the envelope, want 1", shape, len(values))
	}
	n := values[0].(map[string]any)
	wantEqual(t, shape, "value[0].@odata.type", n["@odata.type"], "#microsoft.graph.commsNotification")
	wantEnum(t, shape, "value[0].changeType", n["changeType"], changeTypes)
	wantEqual(t, shape, "value[0].changeType", n["changeType"], change)
	// docs/decisions.md#notification-envelope: both resourceUrl and the
	// legacy resource.
	wantEqual(t, shape, "value[0].resourceUrl", n["resourceUrl"], resourceURL)
	wantEqual(t, shape, "value[0].resource", n["resource"], legacy)
	data, ok := n["resourceData"].(map[string]any)
	if !ok {
		t.Fatalf("%s: resourceData is %s; a call or operation notification carries one object", shape, kindOf(n["resourceData"]))
	}
	return data
}

func specOutboundNotifications(t *testing.T, s *shapes) {
	id := s.outCall
	for _, state := range []string{"establishing", "ringing", "established", "terminating", "terminated"} {
		shape := "notification_outbound_" + state
		change := "updated"
		if state == "terminated" {
			change = "deleted" // terminated is always deleted
		}
		data := specEnvelopeOf(t, shape, s.get(t, shape), change, "/communications/calls/"+id, "/app/calls/"+id)
		spec := specDoc(t, "state change", exStateChange)
		spec["state"] = state
		if state == "terminated" {
			spec = specDoc(t, "terminated", exTerminated)
		}
		conform(t, shape, callType, spec, data, "resourceData", nil)
		wantEnum(t, shape, "resourceData.state", data["state"], callStates)
		wantEqual(t, shape, "resourceData.state", data["state"], state)
		if v, ok := data["id"]; ok {
			wantEqual(t, shape, "resourceData.id", v, id)
		}
		if v, ok := data["@odata.id"]; ok {
			wantEqual(t, shape, "resourceData.@odata.id", v, "/communications/calls/"+id)
		}
		if state == "terminated" {
			wantResultInfo(t, shape, "resourceData.resultInfo", data["resultInfo"], 200, 5001) // exTerminated
		}
	}
	// Nothing but the five states for the call itself.
	var names []string
	for _, d := range s.docs {
		if strings.HasPrefix(d.name, "notification_outbound_") {
			names = append(names, strings.TrimPrefix(d.name, "notification_outbound_"))
		}
	}
	wantEqual(t, "outbound lifecycle", "states", names, []string{"establishing", "ringing", "established", "terminating", "terminated"})
}

func specIncoming(t *testing.T, s *shapes) {
	const shape = "notification_incoming_created"
	id := s.inCall
	data := specEnvelopeOf(t, shape, s.get(t, shape), "created", "/communications/calls/"+id, "/app/calls/"+id)
	conform(t, shape, callType, specDoc(t, "incoming", exIncoming), data, "resourceData", omitted{
		"resourceData.source.region": "Switchboard has no regions",
		// A call to one of the bot's numbers targets its applicationInstance.
		"resourceData.targets.identity.application": "the call was to the bot's number: the target is its applicationInstance",
	})
	wantEqual(t, shape, "resourceData.state", data["state"], "incoming")
	wantEqual(t, shape, "resourceData.direction", data["direction"], "incoming")
	wantEqual(t, shape, "resourceData.id", data["id"], id)
	wantEqual(t, shape, "resourceData.@odata.id", data["@odata.id"], "/communications/calls/"+id)
	wantEqual(t, shape, "resourceData.tenantId", data["tenantId"], calltest.TenantID)
	wantEqual(t, shape, "resourceData.source.identity.user.id", str(data, "source.identity.user.id"), calltest.CarolID)
	wantEqual(t, shape, "resourceData.source.identity.user.tenantId", str(data, "source.identity.user.tenantId"), calltest.TenantID)
	wantEqual(t, shape, "resourceData.targets[0].identity.@odata.type", str(data, "targets[0].identity.@odata.type"), "#microsoft.graph.communicationsIdentitySet")
	if str(data, "targets[0].identity.applicationInstance.id") == "" {
		t.Errorf("%s: targets[0].identity.applicationInstance missing: %v", shape, data["targets"])
	}

	const phone = "notification_incoming_created_phone"
	id = s.phoneInCall
	data = specEnvelopeOf(t, phone, s.get(t, phone), "created", "/communications/calls/"+id, "/app/calls/"+id)
	conform(t, phone, callType, specDoc(t, "incoming", exIncoming), data, "resourceData", omitted{
		"resourceData.source.region":                "Switchboard has no regions",
		"resourceData.source.identity.user":         "the caller is a phone number: identity.phone",
		"resourceData.targets.identity.application": "the call was to the bot's number: the target is its applicationInstance",
	})
	wantEqual(t, phone, "resourceData.source.identity.phone.id", str(data, "source.identity.phone.id"), calltest.AlicePhone)
	// docs/decisions.md#identity-sets: a set carrying a phone is a
	// communicationsIdentitySet.
	wantEqual(t, phone, "resourceData.source.identity.@odata.type", str(data, "source.identity.@odata.type"), "#microsoft.graph.communicationsIdentitySet")
}

func specTone(t *testing.T, s *shapes) {
	const shape = "notification_tone"
	id := s.inCall
	data := specEnvelopeOf(t, shape, s.get(t, shape), "updated", "/communications/calls/"+id, "/app/calls/"+id)
	conform(t, shape, callType, specDoc(t, "tone", exTone), data, "resourceData", nil)
	wantEqual(t, shape, "resourceData.state", data["state"], "established")
	wantEnum(t, shape, "resourceData.toneInfo.tone", at(data, "toneInfo.tone"), toneNames)
	wantEqual(t, shape, "resourceData.toneInfo.tone", str(data, "toneInfo.tone"), "tone1")
	// docs/decisions.md#tones: sequenceId starts at 1 per call, an integer.
	wantEqual(t, shape, "resourceData.toneInfo.sequenceId", at(data, "toneInfo.sequenceId"), json.Number("1"))
}

func specOperationCompleted(t *testing.T, s *shapes) {
	const shape = "notification_operation_completed"
	path := "/calls/" + s.outCall + "/operations/" + s.dtmfOp
	// Completion is a deleted notification on the operation's URL
	// (https://learn.microsoft.com/graph/api/call-senddtmftones).
	data := specEnvelopeOf(t, shape, s.get(t, shape), "deleted", "/communications"+path, "/app"+path)
	conform(t, shape, operationType, specDoc(t, "sendDtmfTones completed", exDtmfCompleted), data, "resourceData", nil)
	wantEqual(t, shape, "resourceData.id", data["id"], s.dtmfOp)
	wantEqual(t, shape, "resourceData.status", data["status"], "Completed")
	wantEqual(t, shape, "resourceData.clientContext", data["clientContext"], "dtmf-ctx")
	wantEnum(t, shape, "resourceData.completionReason", data["completionReason"], completionReason)
	wantResultInfo(t, shape, "resourceData.resultInfo", data["resultInfo"], 200, 0)
}

var graphErrorDate = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$`)

func specErrors(t *testing.T, s *shapes) {
	for status, code := range map[int]string{400: "BadRequest", 401: "InvalidAuthenticationToken", 403: "Forbidden", 404: "itemNotFound"} {
		shape := fmt.Sprintf("error_%d", status)
		doc := s.get(t, shape)
		body := doc["body"].(map[string]any)
		conform(t, shape, reflect.TypeFor[graph.ErrorResponse](), specDoc(t, "error", exError), body, "", nil)
		if len(body) != 1 {
			t.Errorf("%s: top-level keys %v, want only error", shape, slices.Sorted(maps.Keys(body)))
		}
		wantEqual(t, shape, "error.code", str(body, "error.code"), code)
		if str(body, "error.message") == "" {
			t.Errorf("%s: error.message is empty", shape)
		}
		h := s.errorHeaders[status]
		wantEqual(t, shape, "error.innerError.request-id", str(body, "error.innerError.request-id"), h["request-id"])
		wantEqual(t, shape, "error.innerError.client-request-id", str(body, "error.innerError.client-request-id"), h["client-request-id"])
		if d := str(body, "error.innerError.date"); !graphErrorDate.MatchString(d) {
			t.Errorf("%s: error.innerError.date %q, want the spec's 2020-07-23T04:00:37 form", shape, d)
		} else if _, err := time.Parse("2006-01-02T15:04:05", d); err != nil {
			t.Errorf("%s: error.innerError.date %q: %v", shape, d, err)
		}
		if status == 401 && !strings.HasPrefix(str(doc, "headers.WWW-Authenticate"), "Bearer ") {
			t.Errorf("%s: WWW-Authenticate %q", shape, str(doc, "headers.WWW-Authenticate"))
		}
	}
	if m := str(s.get(t, "error_403")["body"], "error.message"); !strings.Contains(m, "Calls.Initiate.All") {
		t.Errorf("error_403: message %q does not name the missing permission", m)
	}
}

func specToken(t *testing.T, s *shapes) {
	ok := s.get(t, "token_response")
	body := ok["body"]
	conform(t, "token_response", reflect.TypeFor[graph.TokenResponse](), specDoc(t, "token", exTokenResponse), body, "", nil)
	wantEqual(t, "token_response", "token_type", str(body, "token_type"), "Bearer")
	if tok := str(body, "access_token"); strings.Count(tok, ".") != 2 || !goldenJWT.MatchString(tok) {
		t.Errorf("token_response: access_token %q is not a JWS compact serialisation", tok)
	}
	wantEqual(t, "token_response", "headers.Cache-Control", str(ok, "headers.Cache-Control"), "no-store")

	bad := s.get(t, "token_error")
	body = bad["body"]
	conform(t, "token_error", reflect.TypeFor[graph.TokenError](), specDoc(t, "token error", exTokenError), body, "", nil)
	wantEnum(t, "token_error", "error", at(body, "error"), []string{"invalid_client", "invalid_request", "unauthorized_client", "invalid_scope"})
	wantEqual(t, "token_error", "error", str(body, "error"), "invalid_client")
	if d := str(body, "error_description"); !strings.HasPrefix(d, "AADSTS7000215: ") {
		t.Errorf("token_error: error_description %q, want AADSTS7000215: ...", d)
	}
	if _, graphShaped := body.(map[string]any)["error"].(map[string]any); graphShaped {
		t.Errorf("token_error: Graph's error shape; the token endpoint answers as the identity platform (docs/decisions.md#errors-and-tenant-isolation)")
	}
}

// specEverywhere checks what holds for every document: @odata.type values
// are ones the spec spells, exactly; Graph documents name no Microsoft
// host (docs/decisions.md#public-urls); states, change types
// and statuses use Graph's casing.
func specEverywhere(t *testing.T, s *shapes) {
	known := map[string]bool{}
	for _, n := range []string{"call", "participant", "participantInfo", "invitationParticipantInfo", "identitySet",
		"communicationsIdentitySet", "identity", "serviceHostedMediaConfig", "appHostedMediaConfig", "outgoingCallOptions",
		"incomingCallOptions", "resultInfo", "toneInfo", "mediaStream", "mediaPrompt", "chatInfo", "organizerMeetingInfo",
		"tokenMeetingInfo", "joinMeetingIdMeetingInfo", "commsNotifications", "commsNotification", "commsOperation",
		"playPromptOperation", "recordOperation", "cancelMediaProcessingOperation", "subscribeToToneOperation",
		"sendDtmfTonesOperation", "muteParticipantOperation", "unmuteParticipantOperation", "inviteParticipantsOperation",
		"updateRecordingStatusOperation", "addLargeGalleryViewOperation", "startHoldMusicOperation", "stopHoldMusicOperation"} {
		known["#microsoft.graph."+n] = true
	}
	for _, d := range s.docs {
		v := s.get(t, d.name)
		walkJSON(v, "", func(path, key string, val any) {
			switch key {
			case "@odata.type":
				if sv, _ := val.(string); !known[sv] {
					t.Errorf("%s: %s = %v: not an odata type Graph's reference spells", d.name, path, val)
				}
			case "changeType":
				wantEnum(t, d.name, path, val, changeTypes)
			case "state":
				if strings.Contains(path, "resourceData") || strings.HasPrefix(path, "body.") {
					wantEnum(t, d.name, path, val, callStates)
				}
			case "status":
				if path != "status" { // the recorded HTTP status
					wantEnum(t, d.name, path, val, operationStatus)
				}
			}
		})
		if !strings.HasPrefix(d.name, "token_") && bytes.Contains(d.raw, []byte("graph.microsoft.com")) {
			t.Errorf("%s names graph.microsoft.com; URLs Switchboard hands out come from http.publicUrl", d.name)
		}
	}
}

// walkJSON calls fn for every object property in v, depth first.
func walkJSON(v any, path string, fn func(path, key string, val any)) {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			p := k
			if path != "" {
				p = path + "." + k
			}
			fn(p, k, x[k])
			walkJSON(x[k], p, fn)
		}
	case []any:
		for i, e := range x {
			walkJSON(e, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

// errorRecorder is a checkT that keeps what the checks reported.
type errorRecorder struct{ errs []string }

func (r *errorRecorder) Helper()                   {}
func (r *errorRecorder) Logf(string, ...any)       {}
func (r *errorRecorder) Errorf(f string, a ...any) { r.errs = append(r.errs, fmt.Sprintf(f, a...)) }

// TestGoldenCheckersCatchMistakes feeds the spec checks documents with the
// mistakes they exist to catch, so they cannot pass by checking nothing.
func TestGoldenCheckersCatchMistakes(t *testing.T) {
	ri := func(text string) any { return decodeJSON(t, "resultInfo", []byte(text)) }
	for _, tc := range []struct {
		name  string
		check func(r checkT)
		want  string // a fragment of the complaint; "" means none
	}{
		{"ok", func(r checkT) {
			conform(r, "x", callType, specDoc(t, "tone", exTone), specDoc(t, "tone", exTone), "", nil)
		}, ""},
		{"odata type case", func(r checkT) {
			conform(r, "x", callType, specDoc(t, "tone", exTone),
				decodeJSON(t, "ours", []byte(`{"@odata.type":"#microsoft.graph.Call","state":"established","toneInfo":{"@odata.type":"#microsoft.graph.toneInfo","sequenceId":1,"tone":"tone1"}}`)), "", nil)
		}, `the spec spells it "#microsoft.graph.call"`},
		{"missing property", func(r checkT) {
			conform(r, "x", callType, specDoc(t, "tone", exTone), decodeJSON(t, "ours", []byte(`{"@odata.type":"#microsoft.graph.call","state":"established"}`)), "", nil)
		}, "toneInfo: the spec's example has it"},
		{"fractional sequenceId", func(r checkT) {
			conform(r, "x", callType, specDoc(t, "tone", exTone),
				decodeJSON(t, "ours", []byte(`{"@odata.type":"#microsoft.graph.call","state":"established","toneInfo":{"@odata.type":"#microsoft.graph.toneInfo","sequenceId":1.0,"tone":"tone1"}}`)), "", nil)
		}, "the spec has an integer"},
		{"string code", func(r checkT) {
			wantResultInfo(r, "x", "resultInfo", ri(`{"@odata.type":"#microsoft.graph.resultInfo","code":"200","subcode":5001,"message":"m"}`), 200, 5001)
		}, "want the integer 200"},
		{"subCode spelling", func(r checkT) {
			wantResultInfo(r, "x", "resultInfo", ri(`{"@odata.type":"#microsoft.graph.resultInfo","code":200,"subCode":5001,"message":"m"}`), 200, 5001)
		}, "spells subCode"},
		{"enum casing", func(r checkT) { wantEnum(r, "x", "state", "Established", callStates) }, "case matters"},
		{"communicationsIdentitySet without a reason", func(r checkT) {
			checkODataType(r, "x", "#microsoft.graph.identitySet", "#microsoft.graph.communicationsIdentitySet", map[string]any{"user": map[string]any{}})
		}, "none of phone"},
		{"communicationsIdentitySet for a phone", func(r checkT) {
			checkODataType(r, "x", "#microsoft.graph.identitySet", "#microsoft.graph.communicationsIdentitySet", map[string]any{"phone": map[string]any{}})
		}, ""},
		{"fixed known deviation", func(r checkT) {
			knownDeviations["example"] = "an example deviation"
			defer delete(knownDeviations, "example")
			deviation(r, "example", false, "x")
		}, "no longer happens"},
	} {
		var r errorRecorder
		tc.check(&r)
		got := strings.Join(r.errs, "\n")
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: the checks said %q, want a complaint containing %q", tc.name, got, tc.want)
		}
	}

	// Normalisation: placeholders by first appearance, the same GUID the
	// same placeholder, named directory ids, hosts, dates and JWTs.
	in := `{"a":"http://127.0.0.1:4242/x/9F0B3C1E-0000-4000-8000-000000000001","b":"9f0b3c1e-0000-4000-8000-000000000001",` +
		`"c":"` + calltest.TenantID + `","d":"2026-01-02T03:04:05","e":"2026-01-02 03:04:05Z","f":"eyJhbGciOiJSUzI1NiJ9.eyJ4IjoxfQ.c2ln",` +
		`"g":"0a0b3c1e-0000-4000-8000-000000000002"}`
	got, err := normalizeGolden([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "a": "http://{host}/x/{guid1}",
  "b": "{guid1}",
  "c": "{tenant}",
  "d": "{date}",
  "e": "{date}",
  "f": "{jwt}",
  "g": "{guid2}"
}
`
	if string(got) != want {
		t.Errorf("normalizeGolden:\n%s\nwant\n%s", got, want)
	}
}
