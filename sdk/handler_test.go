package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

func TestHandlerRefusesBadTokensAndBodies(t *testing.T) {
	p := newPlatform(t, false)
	h := p.handler(sdk.HandlerOptions{})
	good := envelope(incomingCall("c1"))
	for _, tc := range []struct {
		name  string
		token string
		body  any
		want  int
	}{
		{"valid", p.notificationToken(nil, testKey), good, 202},
		{"no token", "", good, 401},
		{"signed by another key", p.notificationToken(nil, otherKey), good, 401},
		{"another app's", p.notificationToken(func(c *claims) { c.Audience = jwt.ClaimStrings{"someone-else"} }, testKey), good, 401},
		{"another issuer", p.notificationToken(func(c *claims) { c.Issuer = "https://evil.example" }, testKey), good, 401},
		{"expired", p.notificationToken(func(c *claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour)) }, testKey), good, 401},
		{"no tenant", p.notificationToken(func(c *claims) { c.TID = "" }, testKey), good, 401},
		{"another tenant", p.notificationToken(func(c *claims) { c.TID = "99999999-9999-4999-8999-999999999999" }, testKey), good, 401},
		{"not JSON", p.notificationToken(nil, testKey), "{", 400},
		{"not an object", p.notificationToken(nil, testKey), "[]", 400},
		{"value not an array", p.notificationToken(nil, testKey), `{"value": 3}`, 400},
		{"neither envelope nor notification", p.notificationToken(nil, testKey), `{"hello": 1}`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.postWith(h, tc.token, tc.body); got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
		})
	}
	r, _ := http.NewRequest(http.MethodGet, "http://bot.test/callback", nil)
	w := &statusRecorder{header: http.Header{}}
	h.ServeHTTP(w, r)
	if w.code != 405 {
		t.Fatalf("GET: %d", w.code)
	}
	// Nothing refused reached the state.
	if n := len(h.State().Calls()); n != 1 {
		t.Fatalf("%d calls in state, want 1", n)
	}
}

type statusRecorder struct {
	header http.Header
	code   int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *statusRecorder) WriteHeader(code int)        { r.code = code }

// Partial notifications merge into what was known: omitted and null
// properties keep their values, enum casing is Graph's, ids match across
// spellings, and late setup states do not overwrite later ones.
func TestNotificationsMergeIntoState(t *testing.T) {
	p := newPlatform(t, false)
	h := p.handler(sdk.HandlerOptions{KeepAliveInterval: -1})
	const id = "57dab8b1-894c-409a-b240-bd8beae78896"
	p.notify(h, incomingCall(id))
	c, ok := h.State().Call(id)
	if !ok || c.State() != graph.StateIncoming || c.TenantID() != tenant {
		t.Fatalf("incoming call: %v %+v", ok, c)
	}

	// Graph's own drift: upper case ids without dashes, "Established",
	// the legacy resource only, a resourceUrl without its leading slash.
	upper := strings.ToUpper(strings.ReplaceAll(id, "-", ""))
	p.notify(h, map[string]any{"changeType": "Updated", "resource": "/app/calls/" + upper,
		"resourceData": map[string]any{"state": "Established", "mediaState": map[string]any{"audio": "Active"}, "source": nil}})
	p.notify(h, map[string]any{"changeType": "updated", "resourceUrl": "communications/calls/" + id,
		"resourceData": map[string]any{"toneInfo": map[string]any{"sequenceId": 1, "tone": "Tone5"}, "unknownProperty": []int{1},
			"direction": 42}}) // wrongly typed: dropped, not fatal
	// A late establishing must not undo established: they may arrive out of
	// order (https://learn.microsoft.com/graph/api/application-post-calls).
	p.notify(h, callNote("updated", id, map[string]any{"state": "establishing"}))

	if n := len(h.State().Calls()); n != 1 {
		t.Fatalf("%d calls: the id spellings were not matched", n)
	}
	s := c.Snapshot()
	if s.State != graph.StateEstablished || s.MediaState == nil || s.MediaState.Audio != graph.MediaStateActive {
		t.Fatalf("state %q mediaState %+v", s.State, s.MediaState)
	}
	if s.Source == nil || s.Source.Identity.Phone.ID != "+15550100" || s.CallChainID != "chain-"+id || s.MyParticipantID != "me-"+id ||
		s.Direction != graph.DirectionIncoming || s.TenantID != tenant {
		t.Fatalf("properties lost in the merge: %+v", s)
	}
	if s.ToneInfo == nil || s.ToneInfo.Tone != graph.Tone5 || s.ToneInfo.SequenceID != 1 {
		t.Fatalf("toneInfo %+v", s.ToneInfo)
	}
	// Snapshot is a copy.
	s.Source.Identity.Phone.ID = "changed"
	if c.Snapshot().Source.Identity.Phone.ID != "+15550100" {
		t.Fatal("Snapshot shares memory with the state")
	}

	// The end: resultInfo with string codes and subCode, as Graph's examples have them.
	p.notify(h, callNote("deleted", id, map[string]any{"state": "terminated",
		"resultInfo": map[string]any{"code": "200", "subCode": "5001", "message": "The conversation has ended."}}))
	s = c.Snapshot()
	if s.State != graph.StateTerminated || s.ResultInfo == nil || s.ResultInfo.Code != 200 || s.ResultInfo.Subcode != 5001 {
		t.Fatalf("terminated: %q %+v", s.State, s.ResultInfo)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed at terminated")
	}
	// Nothing follows terminated.
	p.notify(h, callNote("updated", id, map[string]any{"state": "established"}))
	if c.State() != graph.StateTerminated {
		t.Fatal("a notification after terminated changed the call")
	}

	// A reject's deleted notification may carry no state
	// (https://learn.microsoft.com/graph/api/call-reject).
	p.notify(h, incomingCall("c2"))
	p.notify(h, callNote("deleted", "c2", map[string]any{"@odata.type": graph.TypeCall}))
	if c2, _ := h.State().Call("c2"); c2.State() != graph.StateTerminated {
		t.Fatalf("deleted without state: %q", c2.State())
	}
}

func TestRosterNotifications(t *testing.T) {
	p := newPlatform(t, false)
	h := p.handler(sdk.HandlerOptions{KeepAliveInterval: -1})
	changes := make(chan sdk.ParticipantsChange, 10)
	h.OnParticipants(func(ctx context.Context, c *sdk.Call, ch sdk.ParticipantsChange) { changes <- ch })
	ids := func(ps []graph.Participant) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}
	next := func() sdk.ParticipantsChange {
		select {
		case ch := <-changes:
			return ch
		case <-time.After(10 * time.Second):
			t.Fatal("no roster event")
		}
		panic("unreachable")
	}
	part := func(id string, muted bool) map[string]any {
		return map[string]any{"@odata.type": graph.TypeParticipant, "id": id, "isMuted": muted,
			"info": map[string]any{"identity": map[string]any{"user": map[string]any{"id": "u-" + id}}}}
	}
	p.notify(h, incomingCall("c1"))
	c, _ := h.State().Call("c1")

	// Full rosters: whoever is missing has left.
	p.notify(h, rosterNote("updated", "c1", []any{part("bot", false), part("alice", false)}))
	if ch := next(); !slices.Equal(ids(ch.Added), []string{"bot", "alice"}) || len(ch.Updated)+len(ch.Removed) != 0 {
		t.Fatalf("first roster %+v", ch)
	}
	p.notify(h, rosterNote("updated", "c1", []any{part("bot", true), part("bob", false)}))
	ch := next()
	if !slices.Equal(ids(ch.Added), []string{"bob"}) || !slices.Equal(ids(ch.Updated), []string{"bot"}) || !slices.Equal(ids(ch.Removed), []string{"alice"}) {
		t.Fatalf("second roster %+v", ch)
	}
	if !ch.Updated[0].IsMuted || ch.Updated[0].Info == nil {
		t.Fatalf("updated participant %+v", ch.Updated[0])
	}
	// Delta entries (rosterSequenceNumber) merge; removedState removes.
	p.notify(h, rosterNote("updated", "c1", []any{
		map[string]any{"id": "bob", "rosterSequenceNumber": 3, "isInLobby": true},
		map[string]any{"id": "bot", "rosterSequenceNumber": 3, "removedState": map[string]any{"reason": "left"}},
	}))
	ch = next()
	if !slices.Equal(ids(ch.Updated), []string{"bob"}) || !slices.Equal(ids(ch.Removed), []string{"bot"}) || len(ch.Added) != 0 {
		t.Fatalf("delta roster %+v", ch)
	}
	if b := ch.Updated[0]; !b.IsInLobby || b.Info == nil || b.Info.Identity.User.ID != "u-bob" {
		t.Fatalf("delta merge lost properties: %+v", b)
	}
	// A deltaParticipants object, then a deleted roster notification.
	p.notify(h, rosterNote("updated", "c1", map[string]any{"@odata.type": "#microsoft.graph.deltaParticipants", "sequenceNumber": 4,
		"participants": []any{part("carol", false)}}))
	if ch := next(); !slices.Equal(ids(ch.Added), []string{"carol"}) || len(ch.Removed) != 0 {
		t.Fatalf("deltaParticipants %+v", ch)
	}
	p.notify(h, rosterNote("deleted", "c1", []any{map[string]any{"id": "carol"}}))
	if ch := next(); !slices.Equal(ids(ch.Removed), []string{"carol"}) {
		t.Fatalf("deleted %+v", ch)
	}
	if got := ids(c.Participants()); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("roster %v", got)
	}
}

// Events for one call run in order on their own goroutine; many calls run
// at once; a blocked callback holds up neither the HTTP reply nor other calls.
func TestEventsInOrderPerCall(t *testing.T) {
	p := newPlatform(t, false)
	h := p.handler(sdk.HandlerOptions{KeepAliveInterval: -1})
	const calls, tones = 40, 25
	var mu sync.Mutex
	seen := map[string][]int64{}
	terminated := make(chan string, calls)
	release := make(chan struct{})
	h.OnIncomingCall(func(ctx context.Context, c *sdk.Call) {
		if c.ID() == "call-0" {
			<-release // call-0's callbacks wait for every other call to finish
		}
	})
	h.OnCallUpdated(func(ctx context.Context, c *sdk.Call, ch graph.Call) {
		if ch.ToneInfo != nil {
			mu.Lock()
			seen[c.ID()] = append(seen[c.ID()], ch.ToneInfo.SequenceID)
			mu.Unlock()
		}
	})
	h.OnTerminated(func(ctx context.Context, c *sdk.Call) { terminated <- c.ID() })

	send := func(n map[string]any) {
		if code := p.post(h, envelope(n)); code != http.StatusAccepted {
			t.Errorf("notification answered %d", code)
		}
	}
	var wg sync.WaitGroup
	for i := range calls {
		id := fmt.Sprintf("call-%d", i)
		wg.Go(func() {
			send(incomingCall(id))
			send(callNote("updated", id, map[string]any{"state": "established"}))
			for seq := 1; seq <= tones; seq++ {
				send(callNote("updated", id, map[string]any{"toneInfo": map[string]any{"sequenceId": seq, "tone": "tone1"}}))
			}
			send(callNote("deleted", id, map[string]any{"state": "terminated"}))
		})
	}
	wg.Wait() // every POST answered, call-0's callback still blocked
	for range calls - 1 {
		if id := <-terminated; id == "call-0" {
			t.Fatal("call-0 terminated while its incoming callback was blocked")
		}
	}
	close(release)
	if id := <-terminated; id != "call-0" {
		t.Fatalf("last terminated %s", id)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range calls {
		id := fmt.Sprintf("call-%d", i)
		got := seen[id]
		if len(got) != tones {
			t.Fatalf("%s saw %d tones", id, len(got))
		}
		for j, s := range got {
			if s != int64(j+1) {
				t.Fatalf("%s saw tones out of order: %v", id, got)
			}
		}
	}
	if h.Dropped() != 0 {
		t.Fatalf("%d events dropped", h.Dropped())
	}
}

// A call's queue is bounded: past it events are dropped and counted, but
// the terminated event always arrives, and the state stays complete.
func TestEventQueueBound(t *testing.T) {
	p := newPlatform(t, false)
	h := p.handler(sdk.HandlerOptions{KeepAliveInterval: -1, EventQueue: 4})
	entered, release := make(chan struct{}), make(chan struct{})
	terminated := make(chan struct{})
	var updates int
	h.OnIncomingCall(func(ctx context.Context, c *sdk.Call) {
		close(entered)
		<-release
	})
	h.OnCallUpdated(func(ctx context.Context, c *sdk.Call, ch graph.Call) { updates++ })
	h.OnTerminated(func(ctx context.Context, c *sdk.Call) { close(terminated) })
	p.notify(h, incomingCall("c1"))
	<-entered // the incoming event is off the queue, its callback blocked
	for seq := 1; seq <= 10; seq++ {
		p.notify(h, callNote("updated", "c1", map[string]any{"toneInfo": map[string]any{"sequenceId": seq, "tone": "tone2"}}))
	}
	p.notify(h, callNote("deleted", "c1", map[string]any{"state": "terminated"}))
	c, _ := h.State().Call("c1")
	if s := c.Snapshot(); s.ToneInfo == nil || s.ToneInfo.SequenceID != 10 || s.State != graph.StateTerminated {
		t.Fatalf("state behind a blocked callback: %+v", s)
	}
	close(release)
	<-terminated
	// 4 updates queued; 6 updates and the terminated update dropped.
	if updates != 4 || h.Dropped() != 7 {
		t.Fatalf("%d updates delivered, %d dropped; want 4 and 7", updates, h.Dropped())
	}
}

func TestTones(t *testing.T) {
	p := newPlatform(t, false)
	h := p.handler(sdk.HandlerOptions{KeepAliveInterval: -1, ToneBuffer: 3})
	p.notify(h, incomingCall("c1"))
	c, _ := h.State().Call("c1")
	tone := func(seq int, tone string) map[string]any {
		return callNote("updated", "c1", map[string]any{"state": "established", "toneInfo": map[string]any{"sequenceId": seq, "tone": tone}})
	}
	p.notify(h, tone(1, "tone1"), tone(2, "star"))
	p.notify(h, tone(2, "star")) // a redelivery
	p.notify(h, tone(3, "pound"))
	var got []graph.Tone
	for range 3 {
		got = append(got, (<-c.Tones()).Tone)
	}
	if !slices.Equal(got, []graph.Tone{graph.Tone1, graph.ToneStar, graph.TonePound}) {
		t.Fatalf("tones %v", got)
	}
	// Nobody reads: the oldest are dropped, never blocking.
	for seq := 4; seq <= 8; seq++ {
		p.notify(h, tone(seq, "tone"+fmt.Sprint(seq)))
	}
	p.notify(h, callNote("deleted", "c1", nil))
	var seqs []int64
	for ti := range c.Tones() { // closed at terminated
		seqs = append(seqs, ti.SequenceID)
	}
	if !slices.Equal(seqs, []int64{6, 7, 8}) {
		t.Fatalf("buffered tones %v, want the newest 3", seqs)
	}
}

// Await: a terminal response needs no notification; otherwise the deleted
// notification, whether it comes before or after Await.
func TestAwait(t *testing.T) {
	p := newPlatform(t, false)
	h := p.handler(sdk.HandlerOptions{KeepAliveInterval: -1})
	next := 0
	p.setGraph(func(w http.ResponseWriter, r *http.Request) {
		next++
		switch {
		case strings.HasSuffix(r.URL.Path, "/subscribeToTone"):
			writeJSON(w, 200, graph.Operation{ODataType: graph.TypeSubscribeToToneOperation, ID: "op-sub", Status: graph.OperationCompleted})
		default:
			writeJSON(w, 200, opBody(fmt.Sprintf("op-%d", next), graph.OperationRunning))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.notify(h, incomingCall("c1"), callNote("updated", "c1", map[string]any{"state": "established"}))
	c, _ := h.State().Call("c1")

	// Completed in the response.
	op, err := c.SubscribeToTone(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if done, err := c.Await(ctx, op); err != nil || done.Status != graph.OperationCompleted {
		t.Fatalf("terminal response: %+v %v", done, err)
	}

	// Await first, then the notification.
	op, _ = c.PlayPrompt(ctx, "https://x/a.wav")
	got := make(chan error, 1)
	go func() {
		done, err := c.Await(ctx, op)
		if err == nil && (done.Status != graph.OperationCompleted || done.ResultInfo == nil || done.ResultInfo.Code != 200 || done.ClientContext != "cc") {
			err = fmt.Errorf("completion %+v", done)
		}
		got <- err
	}()
	p.notify(h, opNote("c1", op.ID, map[string]any{"@odata.type": graph.TypePlayPromptOperation, "status": "Completed", "clientContext": "cc",
		"resultInfo": map[string]any{"code": 200, "subcode": 0, "message": "Action completed successfully."}}))
	if err := <-got; err != nil {
		t.Fatal(err)
	}

	// The notification first (it can beat the action's response), then Await.
	op, _ = c.PlayPrompt(ctx, "https://x/a.wav")
	p.notify(h, opNote("c1", op.ID, map[string]any{"status": "failed", "resultInfo": map[string]any{"code": 400, "subcode": 8508, "message": "cancelled"}}))
	done, err := c.Await(ctx, op)
	var oe *sdk.OperationError
	if !errors.As(err, &oe) || done == nil || done.Status != graph.OperationFailed || oe.Operation.ResultInfo.Subcode != 8508 || oe.CallID != "c1" {
		t.Fatalf("failed operation: %+v %v", done, err)
	}
	// Handler.Await finds the call by the operation id; a completion without
	// a status is read from its resultInfo.
	op, _ = h.Client().PlayPrompt(ctx, "c1", &graph.PlayPromptRequest{})
	go func() { _, err := h.Await(ctx, op); got <- err }()
	p.notify(h, opNote("c1", op.ID, map[string]any{"resultInfo": map[string]any{"code": 200}}))
	if err := <-got; err != nil {
		t.Fatalf("Handler.Await: %v", err)
	}
	if o, ok := h.State().Operation(op.ID); !ok || o.Status != graph.OperationCompleted {
		t.Fatalf("state operation %+v", o)
	}

	// The call ends without the operation's completion.
	op, _ = c.PlayPrompt(ctx, "https://x/a.wav")
	go func() { _, err := c.Await(ctx, op); got <- err }()
	p.notify(h, callNote("deleted", "c1", map[string]any{"state": "terminated"}))
	if err := <-got; !errors.Is(err, sdk.ErrCallEnded) {
		t.Fatalf("call ended: %v", err)
	}
	// The context ends the wait.
	short, cancelShort := context.WithCancel(ctx)
	cancelShort()
	if _, err := h.Await(short, &graph.Operation{ID: "never", Status: graph.OperationRunning}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// An IVR flow runs inside OnIncomingCall: answer, wait established, then end.
func TestWaitStateInsideCallback(t *testing.T) {
	p := newPlatform(t, false)
	h := p.handler(sdk.HandlerOptions{KeepAliveInterval: -1, CallbackURL: "https://bot.test/callback"})
	answered := make(chan struct{}, 1)
	p.setGraph(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(202)
		answered <- struct{}{}
	})
	result := make(chan error, 1)
	h.OnIncomingCall(func(ctx context.Context, c *sdk.Call) {
		if err := c.Answer(ctx, nil); err != nil {
			result <- err
			return
		}
		if err := c.WaitState(ctx, graph.StateEstablished); err != nil {
			result <- err
			return
		}
		result <- c.WaitState(ctx, graph.StateEstablished, graph.StateHold) // already true
	})
	p.notify(h, incomingCall("c1"))
	<-answered
	p.notify(h, callNote("updated", "c1", map[string]any{"state": "establishing"}))
	p.notify(h, callNote("updated", "c1", map[string]any{"state": "established"}))
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	body := string(p.requests()[0].Body)
	if !strings.Contains(body, `"callbackUri":"https://bot.test/callback"`) || !strings.Contains(body, `"acceptedModalities":["audio"]`) ||
		!strings.Contains(body, graph.TypeServiceHostedMediaConfig) {
		t.Fatalf("answer body %s", body)
	}

	// Waiting for a state the call never reaches ends with the call.
	c, _ := h.State().Call("c1")
	go func() { result <- c.WaitState(context.Background(), graph.StateTransferAccepted) }()
	p.notify(h, callNote("deleted", "c1", map[string]any{"state": "terminated"}))
	if err := <-result; !errors.Is(err, sdk.ErrCallEnded) {
		t.Fatalf("WaitState after the end: %v", err)
	}
	if err := c.WaitState(context.Background(), graph.StateTerminated); err != nil {
		t.Fatal(err)
	}
}

// CreateCall's Call follows notifications that beat the 201 response, and
// the 201 body fills in what they did not say.
func TestCreateCallRacesNotifications(t *testing.T) {
	p := newPlatform(t, false)
	h := p.handler(sdk.HandlerOptions{KeepAliveInterval: -1, CallbackURL: "https://bot.test/callback"})
	p.setGraph(func(w http.ResponseWriter, r *http.Request) {
		if code := p.post(h, envelope(callNote("updated", "c1", map[string]any{"state": "established"}))); code != http.StatusAccepted {
			t.Errorf("notification answered %d", code)
		}
		writeJSON(w, 201, graph.Call{ODataType: graph.TypeCall, ID: "c1", State: graph.StateEstablishing, MyParticipantID: "me", CallbackURI: "https://bot.test/callback"})
	})
	c, err := h.CreateCall(context.Background(), sdk.NewCall(sdk.UserTarget("u1", "Alice")))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Snapshot(); s.State != graph.StateEstablished || s.MyParticipantID != "me" {
		t.Fatalf("after create: %q %q", s.State, s.MyParticipantID)
	}
	body := string(p.requests()[0].Body)
	if !strings.Contains(body, `"callbackUri":"https://bot.test/callback"`) || !strings.Contains(body, `"user":{"@odata.type":"#microsoft.graph.identity","id":"u1"`) {
		t.Fatalf("create body %s", body)
	}
}

// keepAlive goes every interval while the call is up and stops at its end.
func TestKeepAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPlatform(t, true)
		var mu sync.Mutex
		keepAlives := map[string]int{}
		p.setGraph(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/calls"):
				writeJSON(w, 201, graph.Call{ID: "out", State: graph.StateEstablishing})
			case strings.HasSuffix(r.URL.Path, "/keepAlive"):
				id := strings.Split(r.URL.Path, "/")[4]
				mu.Lock()
				keepAlives[id]++
				mu.Unlock()
				if id == "gone" {
					writeJSON(w, 404, graph.ErrorResponse{Error: graph.ODataError{Code: "itemNotFound"}})
					return
				}
				w.WriteHeader(200)
			default:
				w.WriteHeader(202)
			}
		})
		count := func(id string) int {
			mu.Lock()
			defer mu.Unlock()
			return keepAlives[id]
		}
		h := p.handler(sdk.HandlerOptions{})
		c, err := h.CreateCall(context.Background(), sdk.NewCall(sdk.UserTarget("u1", "")))
		if err != nil {
			t.Fatal(err)
		}
		// An incoming call gets none until it is answered.
		p.notify(h, incomingCall("in"))
		time.Sleep(20 * time.Minute)
		synctest.Wait()
		if count("out") != 1 || count("in") != 0 {
			t.Fatalf("after 20m: %v", keepAlives)
		}
		p.notify(h, callNote("updated", "in", map[string]any{"state": "established"}))
		time.Sleep(25*time.Minute + time.Second)
		synctest.Wait()
		if count("out") != 3 || count("in") != 1 {
			t.Fatalf("after 45m: %v", keepAlives)
		}
		p.notify(h, callNote("deleted", c.ID(), map[string]any{"state": "terminated"}))
		time.Sleep(time.Hour)
		synctest.Wait()
		if count("out") != 3 || count("in") != 5 {
			t.Fatalf("after the end: %v", keepAlives)
		}
		// A 404 says the call is gone: the loop stops.
		p.notify(h, callNote("updated", "gone", map[string]any{"state": "established"}))
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if count("gone") != 1 {
			t.Fatalf("keepAlives after 404: %d", count("gone"))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestShutdown(t *testing.T) {
	p := newPlatform(t, false)
	h := p.handler(sdk.HandlerOptions{KeepAliveInterval: -1})
	entered := make(chan struct{})
	h.OnIncomingCall(func(ctx context.Context, c *sdk.Call) {
		close(entered)
		<-ctx.Done() // Shutdown cancels callbacks' context
	})
	p.notify(h, incomingCall("c1"))
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code := p.post(h, envelope(incomingCall("c2"))); code != http.StatusServiceUnavailable {
		t.Fatalf("after shutdown: %d", code)
	}
	if _, err := h.CreateCall(ctx, sdk.NewCall()); !errors.Is(err, sdk.ErrClosed) {
		t.Fatalf("CreateCall after Shutdown: %v", err)
	}
}

func TestNewHandlerOptions(t *testing.T) {
	if _, err := sdk.NewHandler(sdk.HandlerOptions{CallbackURL: "not a url"}); err == nil ||
		!strings.Contains(err.Error(), "AppID") || !strings.Contains(err.Error(), "OpenIDConfigURL") || !strings.Contains(err.Error(), "CallbackURL") {
		t.Fatalf("error %v", err)
	}
}
