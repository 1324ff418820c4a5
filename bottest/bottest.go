// Package bottest tests bots against a real Switchboard inside a Go test,
// with simulated callers instead of phones.
//
// Start runs a whole node in-process (the Graph API on a loopback port, an
// embedded NATS JetStream in a temporary directory, the media engine) with
// one tenant, a bot application whose webhook the test serves, and
// simulated users. A simulated user has a real RTP handset: it hears what
// the bot plays as audio, says WAV files and presses keys as RFC 4733
// events, through the same media engine a SIP phone's call goes through.
//
//	sb := bottest.Start(t)
//	bot := mybot.New(sb.ClientOptions(), sb.CallbackURL)
//	sb.Serve(bot.Handler())
//	caller := sb.Call(t, "Alice")
//	caller.WaitHeard(menuWAV)
//	caller.Press("1")
//
// A bot's group call (several targets, or invited participants) is a real
// conference: each simulated user the bot calls is a Caller from
// WaitCalled, hears the others and the bot's prompts mixed as a phone
// would, and is heard by them; a muted one is not heard, a removed one's
// call ends.
//
//	call, _ := h.CreateCall(ctx, sdk.NewCall(sdk.UserTarget(bottest.AliceID, ""), sdk.UserTarget(bottest.BobID, "")))
//	alice, bob := sb.WaitCalled(t, "Alice"), sb.WaitCalled(t, "Bob")
//	alice.WaitConnected()
//	bob.WaitConnected()
//	alice.Say(helloWAV)
//	bob.WaitHeard(helloWAV) // through the conference
//
// A bot's online meeting (sdk.Client.CreateMeeting) is dialed in to as
// people do: JoinMeeting calls the tenant's dial-in number (TollNumber),
// keys the conference id (and passcode), and the caller waits in the lobby
// until the bot admits them.
//
//	m, _ := client.CreateMeeting(ctx, bottest.AliceID, nil)
//	call, _ := h.JoinMeetingByURL(ctx, m.JoinWebURL, nil)
//	bob := sb.JoinMeeting(t, "Bob", m) // in the bot's roster, IsInLobby
//	call.Admit(ctx, bobsParticipantID)
//	bob.WaitInMeeting()
//	bob.WaitHeard(welcomeWAV)
//
// Nothing is mocked: the bot gets real tokens, signed notifications, and
// its Graph requests go to the real API.
package bottest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/platform"
	"github.com/switchboard-voice/switchboard/internal/simulated"
	"github.com/switchboard-voice/switchboard/sdk"
)

// The tenant, bot and users every Start provides.
const (
	TenantID  = config.DevTenantID
	AppID     = config.DevAppID
	AppSecret = config.DevAppSecret
	// BotNumber is the bot's phone number: simulated callers dial it.
	BotNumber = config.DevAppNumber

	AliceID = config.DevAliceID // +15550100, answers
	BobID   = config.DevBobID   // +15550101, answers
	CarolID = config.DevCarolID // +15550102, busy
)

// User is an extra simulated user.
type User struct {
	ID          string // a GUID; generated when empty
	DisplayName string // how callers and Graph name the user; also what Call and WaitCalled take
	Phone       string // +E.164, optional
	// Answer is what the user does when called: "" (answer), "busy",
	// "decline", "noAnswer" or "unreachable".
	Answer string
	// AnswerAfter is how long the user's phone rings first (100 ms when zero).
	AnswerAfter time.Duration
}

// Options tune Start.
type Options struct {
	// Users are added to Alice, Bob and Carol.
	Users []User
	// Verbose shows the node's debug logs in the test output (SWITCHBOARD_TEST_LOG=1 does too).
	Verbose bool
	// Timeout bounds every wait of a Caller (15 s when zero).
	Timeout time.Duration
}

// Switchboard is a running node for one test.
type Switchboard struct {
	// URL is the node's base URL; GraphURL the Graph root bots use (URL + "/v1.0").
	URL, GraphURL string
	// CallbackURL is the bot's webhook as Switchboard calls it: Serve sets
	// what answers there.
	CallbackURL string

	node    *platform.Node
	hook    atomic.Pointer[http.Handler]
	taken   sync.Map // leg ids WaitCalled returned: a second call to a user is a new leg
	timeout time.Duration
}

// Start runs a node for t and stops it when t ends.
func Start(t testing.TB, opts ...Options) *Switchboard {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	sb := &Switchboard{timeout: o.Timeout}
	if sb.timeout <= 0 {
		sb.timeout = 15 * time.Second
	}

	hookLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("bottest: webhook listener: %v", err)
	}
	hookSrv := &http.Server{Handler: http.HandlerFunc(sb.serveHook), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hookSrv.Serve(hookLn) }()
	t.Cleanup(func() { _ = hookSrv.Close() })
	sb.CallbackURL = "http://" + hookLn.Addr().String() + "/callback"

	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("bottest: API listener: %v", err)
	}
	sb.URL = "http://" + apiLn.Addr().String()
	sb.GraphURL = sb.URL + "/v1.0"

	cfg, err := configFor(t.TempDir(), sb.URL, sb.CallbackURL, o.Users)
	if err != nil {
		_ = apiLn.Close()
		t.Fatalf("bottest: %v", err)
	}
	log := Logger(t, o.Verbose)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := platform.Start(ctx, cfg, platform.Options{Logger: log, Listener: apiLn, Simulator: true})
	if err != nil {
		t.Fatalf("bottest: start Switchboard: %v", err)
	}
	sb.node = n
	t.Cleanup(n.Kill)
	return sb
}

func configFor(dataDir, url, callback string, extra []User) (*config.Config, error) {
	c := config.Dev()
	c.DataDir = dataDir
	c.HTTP.PublicURL = url
	c.HTTP.RequestsPerSecond, c.HTTP.Burst = 10000, 10000
	// A test machine is busy (-race, tests in parallel): a lagging media
	// clock there must not refuse the test's calls.
	c.Calls.Overload.MaxLateTickPercent = 0
	c.SIP.Listen, c.SIP.TLSListen = "", ""
	c.Notifications.Timeout = config.Duration(5 * time.Second)
	c.Simulator.Enabled, c.Simulator.Audio = true, true
	ring := config.Simulation{RingAfter: config.Duration(20 * time.Millisecond), AnswerAfter: config.Duration(100 * time.Millisecond)}
	busy := ring
	busy.Answer = "busy"
	users := []config.User{
		{ID: AliceID, DisplayName: "Alice", Phone: "+15550100", Simulated: true, Simulation: ring},
		{ID: BobID, DisplayName: "Bob", Phone: "+15550101", Simulated: true, Simulation: ring},
		{ID: CarolID, DisplayName: "Carol", Phone: "+15550102", Simulated: true, Simulation: busy},
	}
	for i, u := range extra {
		if u.DisplayName == "" {
			return nil, fmt.Errorf("Options.Users[%d]: DisplayName is empty", i)
		}
		id := u.ID
		if id == "" {
			id = fmt.Sprintf("5e000000-0000-4000-8000-%012d", i+1)
		}
		sim := ring
		sim.Answer = u.Answer
		if u.AnswerAfter > 0 {
			sim.AnswerAfter = config.Duration(u.AnswerAfter)
			sim.RingAfter = config.Duration(min(u.AnswerAfter, 20*time.Millisecond))
		}
		users = append(users, config.User{ID: id, DisplayName: u.DisplayName, Phone: u.Phone, Simulated: true, Simulation: sim})
	}
	c.Tenants[0].Users = users
	c.Applications[0].CallbackURI = callback
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// ClientOptions are what a bot's sdk.Client needs to reach this node.
func (sb *Switchboard) ClientOptions() sdk.ClientOptions {
	return sdk.ClientOptions{BaseURL: sb.GraphURL, TenantID: TenantID, ClientID: AppID, ClientSecret: AppSecret}
}

// Serve makes h answer the bot's webhook (CallbackURL). Until it is called,
// notifications are refused with 503 and Switchboard retries them.
func (sb *Switchboard) Serve(h http.Handler) { sb.hook.Store(&h) }

func (sb *Switchboard) serveHook(w http.ResponseWriter, r *http.Request) {
	h := sb.hook.Load()
	if h == nil {
		http.Error(w, "bottest: no bot is serving yet", http.StatusServiceUnavailable)
		return
	}
	(*h).ServeHTTP(w, r)
}

// Call makes a simulated user (by display name, id or phone number) dial
// the bot's number, and returns the caller once the call is placed.
func (sb *Switchboard) Call(t testing.TB, from string) *Caller {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sb.timeout)
	defer cancel()
	id, err := sb.userKey(from)
	if err != nil {
		t.Fatalf("bottest: Call: %v", err)
	}
	l, err := sb.node.Sim.Call(ctx, simulated.CallOptions{From: id, To: BotNumber})
	if err != nil {
		t.Fatalf("bottest: %s cannot call the bot: %v", from, err)
	}
	return &Caller{t: t, leg: l, timeout: sb.timeout}
}

// WaitCalled waits until the bot calls the simulated user (by display
// name, id or phone) and returns that user's end of the call: a call the
// bot placed to the user, or the user's leg in a group call the bot
// created with the user among its targets or invited the user into. Each
// call returns a leg not returned before, so a user called twice is waited
// for twice. A user who is busy, declines or is unreachable is returned
// too, its call already ending (WaitEnded says how).
func (sb *Switchboard) WaitCalled(t testing.TB, user string) *Caller {
	t.Helper()
	id, err := sb.userKey(user)
	if err != nil {
		t.Fatalf("bottest: WaitCalled: %v", err)
	}
	timer := time.NewTimer(sb.timeout)
	defer timer.Stop()
	for {
		added := sb.node.Sim.LegAdded()
		for _, l := range sb.node.Sim.Legs("") {
			st := l.State()
			if st.UserID == id && st.Direction == "outgoing" {
				if _, seen := sb.taken.LoadOrStore(st.ID, true); !seen {
					return &Caller{t: t, leg: l, timeout: sb.timeout}
				}
			}
		}
		select {
		case <-added:
		case <-timer.C:
			t.Fatalf("bottest: the bot did not call %s within %s", user, sb.timeout)
		}
	}
}

// userKey resolves a display name, phone or id to a user id.
func (sb *Switchboard) userKey(key string) (string, error) {
	t, _ := sb.node.Directory.Tenant(TenantID)
	for _, u := range t.Users {
		if strings.EqualFold(u.DisplayName, key) || u.ID == key || (u.Phone != "" && u.Phone == key) {
			return u.ID, nil
		}
	}
	return "", fmt.Errorf("no simulated user %q", key)
}

// Logger is a logger writing to t.Log: warnings and errors, or everything
// with debug or SWITCHBOARD_TEST_LOG set. Give it to your bot's
// sdk.HandlerOptions to see its logs beside Switchboard's.
func Logger(t testing.TB, debug bool) *slog.Logger {
	level := slog.LevelWarn
	if debug || os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(b, "\n")))
	return len(b), nil
}
