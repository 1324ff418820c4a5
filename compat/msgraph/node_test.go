package msgraph

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/sdk"
)

// The directory the test node serves. Ids are fixed so failures are easy to
// read; none of them is the demo configuration's, so a `serve --dev` left
// running on the machine cannot be mistaken for the test node.
const (
	tenantID   = "c0a1c0a1-0000-4000-8000-0000000000c1"
	appID      = "c0a1b07a-0000-4000-8000-0000000000c2"
	appSecret  = "compat-secret-0123"
	botNumber  = "+15550199"
	aliceID    = "a11ce000-0000-4000-8000-0000000000c3"
	alicePhone = "+15550100"
	bobID      = "b0b00000-0000-4000-8000-0000000000c4" // the redirect target
	carolID    = "ca201000-0000-4000-8000-0000000000c5" // invited into group calls
)

// env is the node every test of the package talks to; TestMain starts it.
var env *node

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "switchboard-msgraph-compat-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	n, err := startNode(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "msgraph compat: start switchboard:", err)
		return 1
	}
	defer n.prompts.Close()
	defer n.stop()
	env = n
	code := m.Run()
	if code != 0 {
		n.dumpLog()
	}
	return code
}

// node is a `switchboard serve` child process with the bot's webhook and a
// prompt server, all on loopback.
type node struct {
	public  string // http://127.0.0.1:port, the node's http.publicUrl
	bot     *bot
	hook    *httptest.Server
	prompts *httptest.Server
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

// goTool is the go command that runs these tests: the one on PATH (the
// Makefile puts its own first), else the toolchain's own.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func startNode(dir string) (*node, error) {
	bin := filepath.Join(dir, "switchboard")
	build := exec.Command(goTool(), "build", "-o", bin, "./cmd/switchboard")
	build.Dir = filepath.Join("..", "..") // the main module
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/switchboard: %w\n%s", err, out)
	}

	n := &node{logPath: filepath.Join(dir, "switchboard.log")}
	n.prompts = httptest.NewServer(promptHandler())
	// A node's port is part of its publicUrl, which must be in its
	// configuration, so it cannot listen on port 0: take a free port and
	// retry with another if someone else grabbed it first.
	var err error
	for attempt := range 3 {
		if err = n.start(dir, bin, attempt); err == nil {
			return n, nil
		}
		n.stop()
	}
	n.prompts.Close()
	return nil, err
}

func (n *node) start(dir, bin string, attempt int) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	n.public = "http://" + addr
	n.bot = newBot(n.public)
	n.hook = httptest.NewServer(n.bot)

	cfgPath := filepath.Join(dir, fmt.Sprintf("switchboard-%d.yaml", attempt))
	cfg := fmt.Sprintf(configTemplate, addr, n.public, filepath.Join(dir, fmt.Sprintf("data-%d", attempt)),
		tenantID, aliceID, alicePhone, bobID, carolID, appID, appSecret, tenantID, n.hook.URL+"/callback", botNumber)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	if out, err := exec.Command(bin, "check", "--config", cfgPath).CombinedOutput(); err != nil {
		return fmt.Errorf("switchboard check: %w\n%s", err, out)
	}

	logf, err := os.Create(n.logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	n.cmd = exec.Command(bin, "serve", "--config", cfgPath)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		return err
	}
	n.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(n.cmd, n.exited)

	// Another process's readiness can only be observed by asking it.
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	for delay := 10 * time.Millisecond; ; delay = min(delay*2, 250*time.Millisecond) {
		resp, err := http.Get(n.public + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-n.exited:
			n.dumpLog()
			return fmt.Errorf("switchboard serve exited before it was healthy (see its log above)")
		case <-deadline.C:
			n.dumpLog()
			return fmt.Errorf("switchboard serve not healthy after 60s: %v", err)
		case <-time.After(delay):
		}
	}
}

// stop kills the node and closes the bot's webhook; it is safe to call twice.
func (n *node) stop() {
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Kill()
		<-n.exited
		n.cmd = nil
	}
	if n.hook != nil {
		n.hook.Close()
		n.hook = nil
	}
}

func (n *node) dumpLog() {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return
	}
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	fmt.Fprintf(os.Stderr, "--- switchboard serve log (last %d bytes)\n%s\n", len(b), b)
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// configTemplate is the node's configuration: SIP off, the simulator on,
// two simulated users who answer quickly (Alice, and Bob the redirect
// target), and the bot whose webhook the
// test plays. outbound.allow lets the node reach the test's loopback
// servers (webhook and prompts) and nothing else.
const configTemplate = `
http:
  listen: %q
  publicUrl: %q
sip:
  listen: ""
dataDir: %q
log:
  level: info
simulator:
  enabled: true
calls:
  overload:
    maxLateTickPercent: 0 # a busy test machine is not an overloaded node
outbound:
  allow: ["127.0.0.0/8"]
tenants:
  - id: %s
    displayName: msgraph compat
    conferencing:
      tollNumber: "+15550150"
    users:
      - id: %s
        displayName: Alice
        phone: %q
        simulated: true
        simulation:
          ringAfter: 50ms
          answerAfter: 200ms
      - id: %s
        displayName: Bob
        simulated: true
        simulation:
          ringAfter: 50ms
          answerAfter: 200ms
      - id: %s
        displayName: Carol
        simulated: true
        simulation:
          ringAfter: 50ms
          answerAfter: 200ms
applications:
  - id: %s
    displayName: msgraph compat bot
    secret: %q
    tenants: [%s]
    permissions: [Calls.Initiate.All, Calls.InitiateGroupCall.All, Calls.JoinGroupCall.All, Calls.AccessMedia.All, OnlineMeetings.ReadWrite.All]
    callbackUri: %q
    mediaMode: app
    numbers: [%q]
`

// promptHandler serves the WAV prompts the tests ask the node to play:
// /short.wav (300 ms) and /long.wav (20 s, to be cancelled).
func promptHandler() http.Handler {
	short, long := toneWAV(300*time.Millisecond), toneWAV(20*time.Second)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /short.wav", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/wav")
		_, _ = w.Write(short)
	})
	mux.HandleFunc("GET /long.wav", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/wav")
		_, _ = w.Write(long)
	})
	return mux
}

// toneWAV is a 440 Hz tone as Graph wants prompts: WAV, mono, 16-bit, 16 kHz.
func toneWAV(d time.Duration) []byte {
	const rate = 16000
	samples := int(d.Seconds() * rate)
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("RIFF")
	_ = binary.Write(&b, le, uint32(36+2*samples))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(rate), uint32(2 * rate), uint16(2), uint16(16)} {
		_ = binary.Write(&b, le, v) // chunk size, PCM, mono, rate, byte rate, block align, bits
	}
	b.WriteString("data")
	_ = binary.Write(&b, le, uint32(2*samples))
	for i := range samples {
		_ = binary.Write(&b, le, int16(8000*math.Sin(2*math.Pi*440*float64(i)/rate)))
	}
	return b.Bytes()
}

// bot is the test's bot webhook: it validates each notification's token
// with the Switchboard bot SDK's validator (signature by the node's JWKS,
// issuer, audience, expiry, tid) and keeps every notification.
type bot struct {
	validator *sdk.Validator

	mu       sync.Mutex
	got      []notification
	changed  chan struct{} // closed and replaced on every change
	rejected []string      // why tokens were refused
}

// notification is one commsNotification as received. Graph's Go client has
// no model for the envelope (commsNotifications is not in its v1.0
// models), so the envelope is read with encoding/json and ResourceData is
// parsed by the client's own JSON parse node (see parseCall).
type notification struct {
	ODataType    string          `json:"@odata.type"`
	ChangeType   string          `json:"changeType"`
	Resource     string          `json:"resource"`
	ResourceURL  string          `json:"resourceUrl"`
	ResourceData json.RawMessage `json:"resourceData"`
}

func newBot(public string) *bot {
	return &bot{
		validator: &sdk.Validator{OpenIDConfigURL: public + "/v1/.well-known/openidconfiguration", AppID: appID},
		changed:   make(chan struct{}),
	}
}

func (b *bot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	claims, err := b.validator.Validate(r.Context(), r)
	if err == nil && claims.TenantID != tenantID {
		err = fmt.Errorf("tid %q, want %q", claims.TenantID, tenantID)
	}
	if err != nil {
		b.mu.Lock()
		b.rejected = append(b.rejected, err.Error())
		b.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var env struct {
		ODataType string         `json:"@odata.type"`
		Value     []notification `json:"value"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&env); err != nil || env.ODataType != "#microsoft.graph.commsNotifications" {
		b.mu.Lock()
		b.rejected = append(b.rejected, fmt.Sprintf("envelope %q: %v", env.ODataType, err))
		b.mu.Unlock()
		http.Error(w, "bad envelope", http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	b.got = append(b.got, env.Value...)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// wait returns the first notification (in arrival order) that match
// accepts, waiting up to 15 s for it.
func (b *bot) wait(t *testing.T, what string, match func(notification) bool) notification {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		got, changed, rejected := b.got, b.changed, b.rejected
		b.mu.Unlock()
		for _, n := range got {
			if match(n) {
				return n
			}
		}
		if len(rejected) > 0 {
			t.Fatalf("the bot refused notifications: %s", strings.Join(rejected, "; "))
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no notification %s within 15s; got %d: %s", what, len(got), summary(got))
		}
	}
}

func summary(ns []notification) string {
	var s []string
	for _, n := range ns {
		s = append(s, n.ChangeType+" "+n.ResourceURL)
	}
	return strings.Join(s, ", ")
}

// simulator calls the node's unauthenticated /simulator/v1 control API.
func simulator(t *testing.T, method, path string, body any, out any) {
	t.Helper()
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, env.public+"/simulator/v1"+path, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("simulator %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e bytes.Buffer
		_, _ = e.ReadFrom(resp.Body)
		t.Fatalf("simulator %s %s: %s %s", method, path, resp.Status, e.String())
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("simulator %s %s: decode: %v", method, path, err)
		}
	}
}

// leg is a simulated user's side of a call, as the simulator reports it.
type leg struct {
	ID            string  `json:"id"`
	CallID        string  `json:"callId"`
	State         string  `json:"state"`
	TonesReceived string  `json:"tonesReceived"`
	UserID        string  `json:"userId"`
	PromptsHeard  int     `json:"promptsHeard"`
	PromptSeconds float64 `json:"promptSeconds"`
	Audio         bool    `json:"audio"`        // the user has an RTP handset
	SoundSeconds  float64 `json:"soundSeconds"` // how much sound (not silence) it heard
}

// pollLeg polls the simulator until the one leg of call callID satisfies
// ok, for up to 10 s. (Its waitFor only knows connected and ended.)
func pollLeg(t *testing.T, callID, what string, ok func(leg) bool) leg {
	t.Helper()
	return pollLegs(t, callID, what, func(ls []leg) (leg, bool) {
		return ls[0], len(ls) == 1 && ok(ls[0])
	})
}

// pollLegs polls the simulator until pick finds the leg it wants among the
// legs of call callID, for up to 10 s.
func pollLegs(t *testing.T, callID, what string, pick func([]leg) (leg, bool)) leg {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for delay := 10 * time.Millisecond; ; delay = min(delay*2, 200*time.Millisecond) {
		var legs struct{ Value []leg }
		simulator(t, http.MethodGet, "/calls?callId="+callID, nil, &legs)
		if len(legs.Value) > 0 {
			if l, ok := pick(legs.Value); ok {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("call %s: the simulated legs are not %s after 10s: %+v", callID, what, legs.Value)
		}
		time.Sleep(delay) // polling another process: the pause is the poll interval, bounded by deadline
	}
}

// hangUpLeg hangs up a simulated leg, for a test's cleanup: a leg that has
// already ended is fine.
func hangUpLeg(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, env.public+"/simulator/v1/calls/"+id, nil)
	if err != nil {
		return
	}
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}
