package msgraph

import (
	"net/http"
	"testing"

	"github.com/microsoftgraph/msgraph-sdk-go/communications"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
)

// Redirecting an incoming call to a user: 202 through the client, the call
// goes redirecting, then (once the target answers) terminated with 200/9004,
// a forwarded callRoute and answeredBy; the caller stays connected to the
// target through Switchboard, and its hang-up releases the target.
func TestRedirectIncomingCall(t *testing.T) {
	client, _ := botClient(t)
	ctx := testCtx(t)
	var l leg
	simulator(t, http.MethodPost, "/calls", map[string]string{"from": alicePhone, "to": botNumber}, &l)
	if l.CallID == "" {
		t.Fatalf("simulator gave no call id: %+v", l)
	}
	t.Cleanup(func() { hangUpLeg(l.ID) })
	waitCall(t, l.CallID, "incoming", func(changeType string, _ models.Callable) bool { return changeType == "created" })

	user := models.NewIdentity()
	user.SetId(ptr(bobID))
	user.SetDisplayName(ptr("Bob"))
	set := models.NewIdentitySet()
	set.SetUser(user)
	target := models.NewInvitationParticipantInfo()
	target.SetIdentity(set)
	body := communications.NewCallsItemRedirectPostRequestBody()
	body.SetTargets([]models.InvitationParticipantInfoable{target})
	body.SetTimeout(ptr(int32(20)))
	body.SetCallbackUri(ptr(env.hook.URL + "/callback"))
	item := client.Communications().Calls().ByCallId(l.CallID)
	if err := item.Redirect().Post(ctx, body, nil); err != nil {
		t.Fatal(describe(err))
	}

	waitState(t, l.CallID, models.REDIRECTING_CALLSTATE)
	end := waitCall(t, l.CallID, "terminated", func(changeType string, c models.Callable) bool {
		return changeType == "deleted" && val(c.GetState()) == models.TERMINATED_CALLSTATE
	})
	checkResult(t, "redirect", end.GetResultInfo(), 200, 9004)
	if d := val(end.GetDirection()); d != models.INCOMING_CALLDIRECTION {
		t.Errorf("direction %v, want incoming", d)
	}
	routes := end.GetCallRoutes()
	if len(routes) != 1 {
		t.Fatalf("%d callRoutes, want the forwarding to Bob", len(routes))
	}
	r := routes[0]
	if val(r.GetRoutingType()) != models.FORWARDED_ROUTINGTYPE {
		t.Errorf("routingType %v, want forwarded", val(r.GetRoutingType()))
	}
	if f := r.GetFinal(); f == nil || f.GetUser() == nil || val(f.GetUser().GetId()) != bobID {
		t.Errorf("callRoute final %+v does not name Bob", f)
	}
	// The original target is the number the caller dialled: the bot's
	// applicationInstance, only in a communicationsIdentitySet.
	if o, ok := r.GetOriginal().(models.CommunicationsIdentitySetable); !ok || o.GetApplicationInstance() == nil {
		t.Errorf("callRoute original %T does not name the bot's applicationInstance", r.GetOriginal())
	}
	// msgraph-sdk-go's v1.0 call has no answeredBy: the client keeps it in
	// the additional data, as raw JSON values.
	if got := rawString(end.GetAdditionalData()["answeredBy"], "identity", "user", "id"); got != bobID {
		t.Errorf("answeredBy.identity.user.id %q, want Bob (%s); additional data %v", got, bobID, end.GetAdditionalData())
	}

	// Both ends are up: the caller, and Bob on a leg Switchboard dialled.
	var caller leg
	simulator(t, http.MethodGet, "/calls/"+l.ID+"?waitFor=connected&timeout=10s", nil, &caller)
	if caller.State != "connected" {
		t.Errorf("the caller's leg is %s after the redirect, want connected", caller.State)
	}
	bob := pollLegs(t, l.CallID, "Bob connected", func(ls []leg) (leg, bool) {
		for _, x := range ls {
			if x.UserID == bobID && x.State == "connected" {
				return x, true
			}
		}
		return leg{}, false
	})

	// The caller hangs up: Bob's leg is released too.
	simulator(t, http.MethodDelete, "/calls/"+l.ID, nil, nil)
	var after leg
	simulator(t, http.MethodGet, "/calls/"+bob.ID+"?waitFor=ended&timeout=10s", nil, &after)
	if after.State != "ended" {
		t.Errorf("Bob's leg is %s after the caller hung up, want ended", after.State)
	}
}

// rawString walks the raw values kiota keeps for unknown properties
// (map[string]any of *string, …) down keys and returns the string there.
func rawString(v any, keys ...string) string {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	switch s := v.(type) {
	case *string:
		return val(s)
	case string:
		return s
	}
	return ""
}
