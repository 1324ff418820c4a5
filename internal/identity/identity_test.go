package identity

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/store"
)

// Fixed ids of the test directory.
const (
	tenantA = "11111111-aaaa-4aaa-8aaa-111111111111"
	tenantB = "22222222-bbbb-4bbb-8bbb-222222222222"
	tenantC = "33333333-cccc-4ccc-8ccc-333333333333" // no app is provisioned here
	appOne  = "0a0a0a0a-1111-4111-8111-0a0a0a0a0a0a" // tenant A only
	appTwo  = "0b0b0b0b-2222-4222-8222-0b0b0b0b0b0b" // tenants A and B
	secret1 = "app-one-secret"
	secret2 = "app-two-secret"
	aliceID = "a11ce000-0000-4000-8000-000000000001"
	bobID   = "b0b00000-0000-4000-8000-000000000002"
	inst2   = "99999999-0000-4000-8000-000000000009"
)

// testConfig is a valid configuration with three tenants and two apps.
func testConfig(t testing.TB) *config.Config {
	t.Helper()
	c := config.Default()
	c.Identity.TokenLifetime = config.Duration(time.Hour)
	c.Identity.NotificationTokenLifetime = config.Duration(time.Hour)
	c.Tenants = []config.Tenant{
		{ID: tenantA, DisplayName: "A", Users: []config.User{
			{ID: aliceID, DisplayName: "Alice", Phone: "+15550100", SIP: config.SIPCredentials{Username: "alice", Password: "pw-alice"}},
		}},
		{ID: tenantB, DisplayName: "B", Users: []config.User{
			{ID: bobID, DisplayName: "Bob", Phone: "+15550101"},
		}},
		{ID: tenantC, DisplayName: "C"},
	}
	c.Applications = []config.Application{
		{ID: appOne, DisplayName: "One", Secret: secret1, Tenants: []string{tenantA},
			Permissions: []string{"Calls.Initiate.All", "Calls.AccessMedia.All"},
			CallbackURI: "https://bot.example/one", Numbers: []config.Number{{Number: "+15550199"}, {Number: "ivr"}}},
		{ID: appTwo, DisplayName: "Two", Secret: secret2, Tenants: []string{tenantA, tenantB},
			Permissions: []string{"Calls.JoinGroupCall.All"}, MediaMode: "app",
			CallbackURI: "https://bot.example/two",
			Numbers:     []config.Number{{Number: "+15550198", Tenant: tenantB, InstanceID: inst2}}},
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	return &c
}

// clock is an injected clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// openBucket opens an embedded store and a fresh bucket in it.
func openBucket(t testing.TB) *store.KV {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{DataDir: t.TempDir(), Name: "identity-test"})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(st.Close)
	kv, err := st.Bucket(ctx, "signing_keys", 0)
	if err != nil {
		t.Fatalf("bucket: %v", err)
	}
	return kv
}

func openKeyring(t testing.TB, kv *store.KV, clk *clock, o KeyringOptions) *Keyring {
	t.Helper()
	o.Now = clk.Now
	k, err := OpenKeyring(context.Background(), kv, o)
	if err != nil {
		t.Fatalf("open keyring: %v", err)
	}
	return k
}

// env is a running identity service on a loopback HTTP server.
type env struct {
	cfg  *config.Config
	clk  *clock
	kv   *store.KV
	keys *Keyring
	dir  *Directory
	svc  *Service
	srv  *httptest.Server
	url  string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{cfg: testConfig(t), clk: newClock(), kv: openBucket(t)}
	e.keys = openKeyring(t, e.kv, e.clk, KeyringOptions{Rotation: 24 * time.Hour, Retain: 2 * time.Hour})
	mux := http.NewServeMux()
	e.srv = httptest.NewUnstartedServer(mux)
	e.url = "http://" + e.srv.Listener.Addr().String()
	e.cfg.HTTP.PublicURL = e.url
	e.dir = NewDirectory(e.cfg)
	e.svc = New(e.cfg, e.dir, e.keys, e.clk.Now)
	e.svc.Routes(mux)
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}
