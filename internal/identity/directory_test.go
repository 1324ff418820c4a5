package identity

import (
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/config"
)

func TestDirectory(t *testing.T) {
	c := testConfig(t)
	d := NewDirectory(c)

	a, ok := d.App(strings.ToUpper(appOne))
	if !ok || a.ID != appOne || a.DisplayName != "One" || a.MediaMode != "service" || a.CallbackURI != "https://bot.example/one" {
		t.Fatalf("App(upper) = %+v, %v", a, ok)
	}
	if !a.InTenant(strings.ToUpper(tenantA)) || a.InTenant(tenantB) {
		t.Errorf("InTenant: A %v, B %v", a.InTenant(tenantA), a.InTenant(tenantB))
	}
	if !a.Has("calls.initiate.all") || a.Has("Calls.JoinGroupCall.All") {
		t.Errorf("Has: wrong permissions %v", a.Permissions)
	}
	if _, ok := d.App("00000000-0000-4000-8000-000000000000"); ok {
		t.Error("App(unknown) found")
	}

	if tn, ok := d.Tenant(strings.ToUpper(tenantB)); !ok || tn.ID != tenantB {
		t.Errorf("Tenant(B) = %+v, %v", tn, ok)
	}
	if u, ok := d.User(tenantA, strings.ToUpper(aliceID)); !ok || u.DisplayName != "Alice" {
		t.Errorf("User(A, alice) = %+v, %v", u, ok)
	}
	if _, ok := d.User(tenantB, aliceID); ok {
		t.Error("User(B, alice): found in the wrong tenant")
	}
	if tid, u, ok := d.UserByID(strings.ToUpper(bobID)); !ok || tid != tenantB || u.DisplayName != "Bob" {
		t.Errorf("UserByID(bob) = %s %+v %v", tid, u, ok)
	}
	if _, _, ok := d.UserByID(appOne); ok {
		t.Error("UserByID(app id) found a user")
	}
	if tid, u, ok := d.UserByPhone("+15550101"); !ok || tid != tenantB || u.ID != bobID {
		t.Errorf("UserByPhone = %s %+v %v", tid, u, ok)
	}
	if tid, u, ok := d.UserBySIP("alice"); !ok || tid != tenantA || u.ID != aliceID {
		t.Errorf("UserBySIP = %s %+v %v", tid, u, ok)
	}
	if _, _, ok := d.UserBySIP("Alice"); ok {
		t.Error("UserBySIP is case-sensitive (RFC 3261 §19.1.4), found Alice")
	}

	// A number without tenant or instance id: the app's only tenant, a derived id.
	app, tid, inst, ok := d.Number("+15550199")
	if !ok || app.ID != appOne || tid != tenantA || !config.IsGUID(inst) || inst[14] != '5' {
		t.Fatalf("Number(+15550199) = %v %s %s %v", app, tid, inst, ok)
	}
	if _, _, again, _ := NewDirectory(testConfig(t)).Number("+15550199"); again != inst {
		t.Errorf("derived instance id not stable: %s then %s", inst, again)
	}
	if _, _, other, _ := d.Number("ivr"); other == inst {
		t.Error("two numbers derived the same instance id")
	}
	if num, tid, ok := d.AppInstance(strings.ToUpper(appOne), strings.ToUpper(inst)); !ok || num != "+15550199" || tid != tenantA {
		t.Errorf("AppInstance(derived) = %s %s %v", num, tid, ok)
	}
	// A number with tenant and instance id configured.
	app, tid, inst, ok = d.Number("+15550198")
	if !ok || app.ID != appTwo || tid != tenantB || inst != inst2 {
		t.Errorf("Number(+15550198) = %v %s %s %v", app, tid, inst, ok)
	}
	if _, _, ok := d.AppInstance(appOne, inst2); ok {
		t.Error("AppInstance found another app's instance")
	}
	if _, _, _, ok := d.Number("+15550000"); ok {
		t.Error("Number(unknown) found")
	}

	// The directory is a copy: later config changes do not show.
	c.Applications[0].Permissions[0] = "Changed"
	c.Tenants[0].Users[0].DisplayName = "Changed"
	if a.Permissions[0] != "Calls.Initiate.All" {
		t.Error("directory shares Permissions with the config")
	}
	if u, _ := d.User(tenantA, aliceID); u.DisplayName != "Alice" {
		t.Error("directory shares users with the config")
	}
}

func TestUUIDv5(t *testing.T) {
	// RFC 9562 Appendix A.4: the DNS namespace and "www.example.com".
	dns := [16]byte{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	if got, want := uuidV5(dns, "www.example.com"), "2ed6657d-e927-568b-95e1-2665a8aea6a2"; got != want {
		t.Errorf("uuidV5 = %s, want %s", got, want)
	}
}
