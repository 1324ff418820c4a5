package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchboard-voice/switchboard/internal/config"
)

const (
	contoso   = "8f6e4b1a-0c2d-4e5f-9a1b-2c3d4e5f6a70"
	fabrikam  = "0b6d1c2e-3f40-4a5b-8c6d-7e8f9a0b1c2d"
	alice     = "a11ce000-0000-4000-8000-000000000001"
	bob       = "b0b00000-0000-4000-8000-000000000002"
	frank     = "f2a2c000-0000-4000-8000-000000000003"
	ivrBot    = "b07ab07a-0000-4000-8000-00000000b07a"
	reception = "2ece9710-0000-4000-8000-0000000002ec"
	instance  = "1a57a2ce-0000-4000-8000-000000000001"
)

// fullYAML is a configuration in the shape the calls-API issue gives:
// listeners, a data directory, tenants with users (SIP credentials, phone
// numbers), and applications with tenants, permissions, a callback, a
// media mode and numbers written both as plain strings and as
// {number, tenant}.
const fullYAML = `
http:
  listen: 0.0.0.0:8443
  publicUrl: https://switchboard.example.com/
  maxBodyBytes: 2097152
  requestsPerSecond: 20
  burst: 40
sip:
  listen: 0.0.0.0:5060
  domain: sip.example.com
dataDir: /var/lib/switchboard
calls:
  answerTimeout: 10s
  keepAliveTimeout: 30m
log:
  level: debug
  format: json
tenants:
  - id: ` + contoso + `
    displayName: Contoso
    users:
      - id: ` + alice + `
        displayName: Alice
        sip: {username: alice, password: alice-secret}
        phone: +15550100
      - id: ` + bob + `
        displayName: Bob
        phone: "+15550101"
        simulated: true
        simulation:
          answer: busy
          ringAfter: 1500ms
  - id: ` + fabrikam + `
    displayName: Fabrikam
    users:
      - id: ` + frank + `
        displayName: Frank
        sip:
          username: frank
          password: frank-secret
applications:
  - id: ` + ivrBot + `
    displayName: IVR bot
    secret: ivr-secret-123
    tenants: [` + contoso + `]
    permissions: [Calls.Initiate.All, Calls.AccessMedia.All]
    callbackUri: https://bot.example.com/callback
    mediaMode: service
    numbers: [+15550199, "ivr"]
  - id: ` + reception + `
    displayName: Reception
    secret: reception-secret
    tenants:
      - ` + contoso + `
      - ` + fabrikam + `
    permissions:
      - Calls.Initiate.All
      - Calls.JoinGroupCall.All
    callbackUri: http://127.0.0.1:9000/callback
    mediaMode: app
    numbers:
      - {number: "+15550198", tenant: ` + contoso + `}
      - number: "+4930123456"
        tenant: ` + fabrikam + `
        instanceId: ` + instance + `
`

func TestParseFullFile(t *testing.T) {
	c, err := config.Parse([]byte(fullYAML))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := config.Default()
	want.HTTP = config.HTTP{Listen: "0.0.0.0:8443", PublicURL: "https://switchboard.example.com",
		MaxBodyBytes: 2 << 20, RequestsPerSecond: 20, Burst: 40}
	want.SIP.Listen, want.SIP.Domain = "0.0.0.0:5060", "sip.example.com"
	want.DataDir = "/var/lib/switchboard"
	want.Calls.AnswerTimeout = config.Duration(10 * time.Second)
	want.Calls.KeepAliveTimeout = config.Duration(30 * time.Minute)
	want.Log = config.Log{Level: "debug", Format: "json"}
	want.Tenants = []config.Tenant{
		{ID: contoso, DisplayName: "Contoso", Users: []config.User{
			{ID: alice, DisplayName: "Alice", SIP: config.SIPCredentials{Username: "alice", Password: "alice-secret"}, Phone: "+15550100"},
			{ID: bob, DisplayName: "Bob", Phone: "+15550101", Simulated: true,
				Simulation: config.Simulation{Answer: "busy", RingAfter: config.Duration(1500 * time.Millisecond)}},
		}},
		{ID: fabrikam, DisplayName: "Fabrikam", Users: []config.User{
			{ID: frank, DisplayName: "Frank", SIP: config.SIPCredentials{Username: "frank", Password: "frank-secret"}},
		}},
	}
	want.Applications = []config.Application{
		{ID: ivrBot, DisplayName: "IVR bot", Secret: "ivr-secret-123", Tenants: []string{contoso},
			Permissions: []string{"Calls.Initiate.All", "Calls.AccessMedia.All"},
			CallbackURI: "https://bot.example.com/callback", MediaMode: "service",
			Numbers: []config.Number{{Number: "+15550199"}, {Number: "ivr"}}},
		{ID: reception, DisplayName: "Reception", Secret: "reception-secret", Tenants: []string{contoso, fabrikam},
			Permissions: []string{"Calls.Initiate.All", "Calls.JoinGroupCall.All"},
			CallbackURI: "http://127.0.0.1:9000/callback", MediaMode: "app",
			Numbers: []config.Number{{Number: "+15550198", Tenant: contoso}, {Number: "+4930123456", Tenant: fabrikam, InstanceID: instance}}},
	}
	// Section by section, so a failure says where.
	for _, f := range reflect.VisibleFields(reflect.TypeFor[config.Config]()) {
		got, exp := reflect.ValueOf(c).FieldByIndex(f.Index).Interface(), reflect.ValueOf(want).FieldByIndex(f.Index).Interface()
		if !reflect.DeepEqual(got, exp) {
			t.Errorf("%s:\n got %+v\nwant %+v", f.Name, got, exp)
		}
	}
}

// problems returns the errors errors.Join put together, one per problem.
func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	var out []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

// badYAML has five problems Validate finds, one per line marked.
const badYAML = `
tenants:
  - id: not-a-guid
    displayName: Contoso
    users:
      - id: ` + alice + `
        displayName: Alice
        phone: "+15550100"
      - id: ` + bob + `
        displayName: Bob
        phone: "+15550100"
applications:
  - id: ` + ivrBot + `
    displayName: Bot
    secret: long-enough-secret
    tenants: [33333333-3333-4333-8333-333333333333]
    permissions: [Calls.Initiate.All, Calls.MakeCoffee.All]
    callbackUri: http://bot.example.com/callback
`

// badYAMLProblems are badYAML's problems: the key path each error must
// start with, and a word of what is wrong.
var badYAMLProblems = []struct{ path, says string }{
	{"tenants[0].id", "not a GUID"},
	{"tenants[0].users[1].phone", "tenants[0].users[0]"},
	{"applications[0].tenants[0]", "not a configured tenant"},
	{"applications[0].permissions[1]", "Calls.MakeCoffee.All"},
	{"applications[0].callbackUri", "https"},
}

func TestParseReportsEveryProblemWithItsKeyPath(t *testing.T) {
	_, err := config.Parse([]byte(badYAML))
	got := problems(t, err)
	checkProblems(t, got, badYAMLProblems)
}

func checkProblems(t *testing.T, got []string, want []struct{ path, says string }) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d errors, want one per problem (%d):\n  %s", len(got), len(want), strings.Join(got, "\n  "))
	}
	for _, w := range want {
		n := 0
		for _, g := range got {
			if strings.HasPrefix(g, w.path+": ") {
				n++
				if !strings.Contains(g, w.says) {
					t.Errorf("%s: %q does not say %q", w.path, g, w.says)
				}
			}
		}
		if n != 1 {
			t.Errorf("%d errors name %s, want 1:\n  %s", n, w.path, strings.Join(got, "\n  "))
		}
	}
}

// What the YAML decoder rejects, a bad duration or a key that is no
// configuration field, is reported with the line, and with the key or value.
func TestParseDecodeProblems(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		says       []string
	}{
		{"bad duration", "calls:\n  answerTimeout: soon\n", []string{"line 2", `"soon"`, "not a duration"}},
		{"unknown key", "http:\n  listen: 127.0.0.1:8080\n  colour: red\n", []string{"line 3", "colour"}},
		{"unknown keys", "http:\n  colour: red\ntenants:\n  - id: " + contoso + "\n    flavour: mint\n", []string{"line 2", "colour", "line 5", "flavour"}},
		{"not YAML", "http: [\n", []string{"line"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not say %q", err, s)
				}
			}
		})
	}
}

// The issue asks for one error per problem, each naming its key path, for
// every problem in the file at once. Parse stops at the first YAML decode
// error (a bad duration, or unknown keys) before Validate runs, and the
// decoder's messages carry a line, not a key path; this test states the
// behaviour wanted and is skipped until Parse gives it.
func TestParseReportsDecodeAndValidationProblemsTogether(t *testing.T) {
	yml := badYAML + "calls:\n  answerTimeout: soon\nhttp:\n  colour: red\n"
	_, err := config.Parse([]byte(yml))
	want := append(append([]struct{ path, says string }(nil), badYAMLProblems...),
		struct{ path, says string }{"calls.answerTimeout", "soon"},
		struct{ path, says string }{"http.colour", "unknown"})
	checkProblems(t, problems(t, err), want)
}

func TestParseEmptyIsDefaults(t *testing.T) {
	for name, text := range map[string]string{"empty": "", "blank": "\n  \n", "comments only": "# nothing yet\n", "empty document": "---\n"} {
		c, err := config.Parse([]byte(text))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if want := config.Default(); !reflect.DeepEqual(c, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, c, want)
		}
	}
}

func TestDefaultAndDevValidate(t *testing.T) {
	d := config.Default()
	if err := d.Validate(); err != nil {
		t.Errorf("Default(): %v", err)
	}
	dev := config.Dev()
	if err := dev.Validate(); err != nil {
		t.Fatalf("Dev(): %v", err)
	}
	if len(dev.Tenants) == 0 || len(dev.Applications) == 0 || !dev.Simulator.Enabled {
		t.Errorf("Dev() is not a usable demo: %+v", dev)
	}
	// Dev() written out as YAML reads back as itself: every field has a
	// YAML key Parse accepts. (Compared as YAML: a nil list comes back empty.)
	out, err := yaml.Marshal(dev)
	if err != nil {
		t.Fatal(err)
	}
	back, err := config.Parse(out)
	if err != nil {
		t.Fatalf("Parse(Marshal(Dev())): %v\n%s", err, out)
	}
	again, err := yaml.Marshal(back)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(out) {
		t.Errorf("Dev() does not survive YAML:\n%s\nread back as\n%s", out, again)
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(fullYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(good); err != nil {
		t.Errorf("Load(good): %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(badYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(bad)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "tenants[0].id") {
		t.Errorf("Load(bad): %v, want the file's name and the problems", err)
	}
	if _, err := config.Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing): %v, want os.ErrNotExist", err)
	}
}

func TestCheckCallbackURI(t *testing.T) {
	c := config.Default()
	for uri, ok := range map[string]bool{
		"https://bot.example.com/cb":   true,
		"http://127.0.0.1:9000/cb":     true,
		"http://127.0.0.2:9000/cb":     true,
		"http://localhost:9000/cb":     true,
		"http://[::1]:9000/cb":         true,
		"http://bot.example.com/cb":    false,
		"http://10.0.0.1/cb":           false,
		"ftp://bot.example.com/cb":     false,
		"/relative/callback":           false,
		"https://":                     false,
		"http://localhost.evil.com/cb": false,
	} {
		if err := c.CheckCallbackURI(uri); (err == nil) != ok {
			t.Errorf("CheckCallbackURI(%q) = %v, want ok=%v", uri, err, ok)
		}
	}
	c.Outbound.AllowInsecureCallbacks = true
	if err := c.CheckCallbackURI("http://bot.example.com/cb"); err != nil {
		t.Errorf("with outbound.allowInsecureCallbacks: %v", err)
	}
	if err := c.CheckCallbackURI("ftp://bot.example.com/cb"); err == nil {
		t.Error("allowInsecureCallbacks lets ftp through")
	}
}

// media.holdMusic is fetched like a prompt: an absolute http(s) URL.
func TestHoldMusicIsAnHTTPURL(t *testing.T) {
	c := config.Default()
	for _, u := range []string{"file:///srv/hold.wav", "hold.wav", "http://", "ftp://music.test/hold.wav"} {
		c.Media.HoldMusic = u
		got := problems(t, c.Validate())
		checkProblems(t, got, []struct{ path, says string }{{"media.holdMusic", "http(s) URL"}})
	}
	c.Media.HoldMusic = "https://music.test/hold.wav"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// The meetings keys: a tenant's dial-in number is E.164 and rings nobody
// else; an application's meetingUsers are users of its own tenants.
func TestMeetingsKeys(t *testing.T) {
	parse := func(t *testing.T, edit func(*config.Config)) []string {
		t.Helper()
		c, err := config.Parse([]byte(fullYAML))
		if err != nil {
			t.Fatal(err)
		}
		edit(&c)
		return problems(t, c.Validate())
	}
	c, err := config.Parse([]byte(fullYAML))
	if err != nil {
		t.Fatal(err)
	}
	c.Tenants[0].Conferencing.TollNumber = "+15550150"
	c.Applications[0].MeetingUsers = []string{alice, strings.ToUpper(bob)}
	c.Applications[1].MeetingUsers = []string{frank}
	if err := c.Validate(); err != nil {
		t.Fatalf("valid meetings keys: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*config.Config)
		want []struct{ path, says string }
	}{
		{"toll number not E.164", func(c *config.Config) { c.Tenants[0].Conferencing.TollNumber = "555-0150" },
			[]struct{ path, says string }{{"tenants[0].conferencing.tollNumber", "E.164"}}},
		{"toll number is a user's phone", func(c *config.Config) { c.Tenants[1].Conferencing.TollNumber = "+15550100" },
			[]struct{ path, says string }{{"tenants[1].conferencing.tollNumber", "tenants[0].users[0]"}}},
		{"toll number is a bot's number", func(c *config.Config) { c.Tenants[0].Conferencing.TollNumber = "+15550199" },
			[]struct{ path, says string }{{"applications[0].numbers[0]", "tenants[0].conferencing.tollNumber"}}},
		{"meeting user of another tenant", func(c *config.Config) { c.Applications[0].MeetingUsers = []string{alice, frank} },
			[]struct{ path, says string }{{"applications[0].meetingUsers[1]", "not a user of the application's tenants"}}},
		{"meeting user unknown", func(c *config.Config) { c.Applications[1].MeetingUsers = []string{"nobody"} },
			[]struct{ path, says string }{{"applications[1].meetingUsers[0]", `"nobody"`}}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkProblems(t, parse(t, tc.edit), tc.want) })
	}
}

func TestOverloadLimits(t *testing.T) {
	c, err := config.Parse([]byte("calls:\n  maxConcurrent: 500\n  overload:\n    maxLateTickPercent: 30\n    retryAfter: 2s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Calls.MaxConcurrent != 500 || c.Calls.Overload.MaxLateTickPercent != 30 ||
		c.Calls.Overload.MaxNotificationBacklog != 5000 || c.Calls.Overload.RetryAfter.D() != 2*time.Second {
		t.Errorf("calls: %+v, want the file's limits over the defaults", c.Calls)
	}
	_, err = config.Parse([]byte("calls:\n  maxConcurrent: -1\n  overload:\n    maxLateTickPercent: 101\n    maxNotificationBacklog: -5\n    retryAfter: 0s\n"))
	got := strings.Join(problems(t, err), "\n")
	for _, key := range []string{"calls.maxConcurrent", "calls.overload.maxLateTickPercent", "calls.overload.maxNotificationBacklog", "calls.overload.retryAfter"} {
		if !strings.Contains(got, key) {
			t.Errorf("no problem named %s in:\n%s", key, got)
		}
	}
}

func TestAbuseAndTLSKeys(t *testing.T) {
	c, err := config.Parse([]byte("http:\n  tlsCert: /c.pem\n  tlsKey: /k.pem\nsip:\n  abuse:\n    maxAuthFailures: 5\n    banTime: 1h\nidentity:\n  tokenThrottle:\n    maxFailures: 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.SIP.Abuse; a.MaxAuthFailures != 5 || a.BanTime.D() != time.Hour || a.RequestsPerSecond != 50 || a.Burst != 100 || a.AuthFailureWindow.D() != time.Minute {
		t.Errorf("sip.abuse: %+v, want the file's limits over the defaults", a)
	}
	if tt := c.Identity.TokenThrottle; tt.MaxFailures != 3 || tt.MaxClientFailures != 100 || tt.Lockout.D() != 5*time.Minute || tt.RequestsPerSecond != 20 {
		t.Errorf("identity.tokenThrottle: %+v, want the file's limits over the defaults", tt)
	}
	if c.HTTP.TLSCert != "/c.pem" || c.HTTP.TLSKey != "/k.pem" {
		t.Errorf("http: %+v", c.HTTP)
	}
	if _, err := config.Parse([]byte("sip:\n  abuse:\n    maxAuthFailures: 0\n    requestsPerSecond: 0\n    banTime: 0s\nidentity:\n  tokenThrottle:\n    requestsPerSecond: 0\n    maxFailures: 0\n    maxClientFailures: 0\n")); err != nil {
		t.Errorf("everything off: %v", err)
	}
	_, err = config.Parse([]byte("http:\n  tlsCert: /c.pem\nsip:\n  abuse:\n    requestsPerSecond: -1\n    maxAuthFailures: -1\n" +
		"identity:\n  tokenThrottle:\n    requestsPerSecond: 5\n    burst: 0\n    lockout: 0s\n"))
	got := strings.Join(problems(t, err), "\n")
	for _, key := range []string{"http.tlsCert", "sip.abuse.requestsPerSecond", "sip.abuse.maxAuthFailures",
		"identity.tokenThrottle.requestsPerSecond", "identity.tokenThrottle.lockout"} {
		if !strings.Contains(got, key) {
			t.Errorf("no problem named %s in:\n%s", key, got)
		}
	}
	_, err = config.Parse([]byte("sip:\n  abuse:\n    banTime: 0s\n"))
	if got := strings.Join(problems(t, err), "\n"); !strings.Contains(got, "sip.abuse.banTime") {
		t.Errorf("no problem named sip.abuse.banTime in:\n%s", got)
	}
}

func TestConsoleUsers(t *testing.T) {
	c, err := config.Parse([]byte("console:\n  users:\n    - name: ops\n      password: long-enough\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []config.ConsoleUser{{Name: "ops", Password: "long-enough"}}; !reflect.DeepEqual(c.Console.Users, want) {
		t.Errorf("console.users: %+v", c.Console.Users)
	}
	if len(config.Default().Console.Users) != 0 {
		t.Error("the console is on by default")
	}
	if d := config.Dev(); len(d.Console.Users) != 1 || d.Console.Users[0].Name != config.DevOperator {
		t.Errorf("dev console.users: %+v", d.Console.Users)
	}
	_, err = config.Parse([]byte("console:\n  users:\n    - name: ''\n      password: long-enough\n    - name: ops\n      password: short\n" +
		"    - name: ops\n      password: long-enough\n    - name: 'a:b'\n      password: long-enough\n"))
	got := strings.Join(problems(t, err), "\n")
	for _, key := range []string{"console.users[0].name", "console.users[1].password", "console.users[2].name: \"ops\" is listed twice", "console.users[3].name"} {
		if !strings.Contains(got, key) {
			t.Errorf("no problem %s in:\n%s", key, got)
		}
	}
}

func TestNATSClusterAndProxies(t *testing.T) {
	c, err := config.Parse([]byte("nats:\n  url: nats://127.0.0.1:4222, nats://127.0.0.2:4222,nats://127.0.0.3:4222\n  replicas: 3\nsip:\n  proxies: [127.0.0.10, 10.0.0.0/8]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.NATS.Replicas != 3 || len(c.SIP.Proxies) != 2 {
		t.Errorf("nats %+v, sip.proxies %v", c.NATS, c.SIP.Proxies)
	}
	_, err = config.Parse([]byte("nats:\n  url: \"nats://127.0.0.1:4222,nats//\"\n  replicas: 3\nsip:\n  proxies: [kamailio]\n"))
	got := strings.Join(problems(t, err), "\n")
	for _, key := range []string{"nats.url", "sip.proxies[0]"} {
		if !strings.Contains(got, key) {
			t.Errorf("no problem named %s in:\n%s", key, got)
		}
	}
	// Three replicas on the one embedded server cannot be placed.
	_, err = config.Parse([]byte("nats:\n  replicas: 3\n"))
	if got := strings.Join(problems(t, err), "\n"); !strings.Contains(got, "nats.replicas") {
		t.Errorf("no problem named nats.replicas in:\n%s", got)
	}
}

func TestSIPWebSocketKeys(t *testing.T) {
	c, err := config.Parse([]byte("sip:\n  ws:\n    maxConnsPerSource: 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.SIP.WS; w.MaxConnsPerSource != 3 || w.ConnsPerSecond != 5 || w.ConnBurst != 20 {
		t.Errorf("sip.ws: %+v, want the file's limit over the defaults", w)
	}
	if _, err := config.Parse([]byte("sip:\n  ws:\n    maxConnsPerSource: 0\n    connsPerSecond: 0\n    connBurst: 0\n")); err != nil {
		t.Errorf("limits off: %v", err)
	}
	_, err = config.Parse([]byte("sip:\n  ws:\n    maxConnsPerSource: -1\n    connsPerSecond: 2\n    connBurst: 0\n"))
	got := strings.Join(problems(t, err), "\n")
	for _, key := range []string{"sip.ws.maxConnsPerSource", "sip.ws.connsPerSecond"} {
		if !strings.Contains(got, key) {
			t.Errorf("no problem named %s in:\n%s", key, got)
		}
	}
}

func TestClusterKeys(t *testing.T) {
	if d := config.Default().Cluster.NodeLease.D(); d != 15*time.Second {
		t.Errorf("default cluster.nodeLease %v, want 15s", d)
	}
	c, err := config.Parse([]byte("cluster:\n  nodeLease: 5s\n  httpUrl: http://10.0.0.11:8080\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.NodeLease.D() != 5*time.Second || c.Cluster.HTTPURL != "http://10.0.0.11:8080" {
		t.Errorf("cluster: %+v", c.Cluster)
	}
	// What a node writes is what it reads back.
	out, err := yaml.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := config.Parse(out)
	if err != nil {
		t.Fatalf("the marshalled configuration: %v", err)
	}
	if back.Cluster != c.Cluster {
		t.Errorf("round trip: %+v, want %+v", back.Cluster, c.Cluster)
	}
	_, err = config.Parse([]byte("cluster:\n  nodeLease: 2s\n  httpUrl: 10.0.0.11:8080/x\n"))
	got := strings.Join(problems(t, err), "\n")
	for _, key := range []string{"cluster.nodeLease", "cluster.httpUrl"} {
		if !strings.Contains(got, key) {
			t.Errorf("no problem named %s in:\n%s", key, got)
		}
	}
	if _, err := config.Parse([]byte("cluster:\n  nodeLease: 11m\n")); err == nil {
		t.Error("a lease of 11m accepted")
	}
}
