package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/platform"
)

// Identities of the benchmark's tenant and bot.
const (
	benchTenant = "5b0b5b0b-0000-4000-8000-00000000be70"
	benchApp    = "5b0b5b0b-0000-4000-8000-0000000000b0"
	benchSecret = "sbbench-secret"
	benchNumber = "+15550199"
	// benchInstance is the applicationInstance id of benchNumber: the
	// source of the group calls the bot places to phone numbers.
	benchInstance = "5b0b5b0b-0000-4000-8000-0000000001a5"
	// Callers come from these loopback addresses: SIPp, and the probes.
	sippIP  = "127.0.0.2"
	probeIP = "127.0.0.3"
)

// node is the switchboard process under test.
type node struct {
	bin     string
	dir     string // its data folder
	cfgPath string
	logPath string
	httpURL string
	sipAddr string // host:port of its SIP listener (UDP)
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error

	inproc    *platform.Node // -inprocess: the node runs in this process
	inprocLog *os.File
}

// findRepo walks up from the working directory to the module's go.mod.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/switchboard-voice/switchboard\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the switchboard module: run from the repository or pass -repo")
		}
		dir = parent
	}
}

// buildServer builds cmd/switchboard into dir.
func buildServer(ctx context.Context, repo, dir string) (string, error) {
	bin := filepath.Join(dir, "switchboard")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/switchboard")
	cmd.Dir = repo
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/switchboard: %w\n%s", err, out)
	}
	return bin, nil
}

// freeTCP returns a TCP port free on host now.
func freeTCP(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freeUDP returns a UDP port free on host now; with tcpToo, free for TCP
// as well (the SIP listener binds both).
func freeUDP(host string, tcpToo bool) (int, error) {
	for range 50 {
		c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, err
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if !tcpToo {
			return port, nil
		}
		if l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port))); err == nil {
			l.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

// nodeConfig is the node's configuration for a run.
type nodeConfig struct {
	httpPort, sipPort int
	sippPort          int // where the trunk's calls would go (SIPp's SIP port)
	callback          string
	dataDir           string
	logLevel          string
	rtpMin, rtpMax    int
	inactivity        time.Duration
	// mediaMode is the bot's applications[].mediaMode: "service" (the
	// default) or "app", for app-hosted media (sbbench echo).
	mediaMode string
	// natsListen exposes the embedded NATS on loopback (sbbench soak
	// reads its streams' sizes); empty: in-process only.
	natsListen string
	// recordingRetention and recordingsMaxBytes, when set, replace
	// media.recordingRetention and media.recordingsMaxBytes.
	recordingRetention time.Duration
	recordingsMaxBytes int64
}

// yaml renders the configuration, checked with config.Parse before it is
// written.
func (nc nodeConfig) yaml() ([]byte, error) {
	c := nc.config()
	b, err := yaml.Marshal(&c)
	if err != nil {
		return nil, err
	}
	if _, err := config.Parse(b); err != nil {
		return nil, fmt.Errorf("generated configuration: %w", err)
	}
	return b, nil
}

// config is the node's configuration. It starts from config.Default() so
// that every limit not raised here is the shipped default.
func (nc nodeConfig) config() config.Config {
	c := config.Default()
	c.DataDir = nc.dataDir
	c.HTTP.Listen = fmt.Sprintf("127.0.0.1:%d", nc.httpPort)
	c.HTTP.PublicURL = fmt.Sprintf("http://127.0.0.1:%d", nc.httpPort)
	c.HTTP.RequestsPerSecond = 1e6 // a bot makes 4 requests per call; 500 calls/s is 2000/s
	c.HTTP.Burst = 1e6
	c.SIP.Listen = fmt.Sprintf("127.0.0.1:%d", nc.sipPort)
	c.SIP.TLSListen = ""
	c.SIP.InvitesPerSecond = 1e5
	c.SIP.Trunks = []config.Trunk{{Name: "sipp", Address: fmt.Sprintf("%s:%d", sippIP, nc.sippPort),
		AllowFrom: []string{sippIP, probeIP}}}
	c.Media.BindIP = "127.0.0.1"
	c.Media.RTPPortMin, c.Media.RTPPortMax = nc.rtpMin, nc.rtpMax
	c.Media.InactivityTimeout = config.Duration(nc.inactivity)
	c.Calls.MaxConcurrentPerApp = 1 << 20
	c.Outbound.Allow = []string{"127.0.0.0/8"}
	c.Log.Level = nc.logLevel
	c.NATS.Listen = nc.natsListen
	if nc.recordingRetention > 0 {
		c.Media.RecordingRetention = config.Duration(nc.recordingRetention)
	}
	if nc.recordingsMaxBytes > 0 {
		c.Media.RecordingsMaxBytes = nc.recordingsMaxBytes
	}
	c.Tenants = []config.Tenant{{ID: benchTenant, DisplayName: "sbbench"}}
	mediaMode := nc.mediaMode
	if mediaMode == "" {
		mediaMode = "service"
	}
	c.Applications = []config.Application{{
		ID: benchApp, DisplayName: "sbbench IVR bot", Secret: benchSecret, Tenants: []string{benchTenant},
		Permissions: []string{"Calls.Initiate.All", "Calls.InitiateGroupCall.All", "Calls.AccessMedia.All"},
		CallbackURI: nc.callback, MediaMode: mediaMode, Numbers: []config.Number{{Number: benchNumber, InstanceID: benchInstance}},
	}}
	return c
}

// startNode writes the configuration and starts the node in its own
// process group, then waits for /healthz.
func startNode(ctx context.Context, bin, out string, nc nodeConfig) (*node, error) {
	n := &node{bin: bin, dir: nc.dataDir, cfgPath: filepath.Join(out, "switchboard.yaml"),
		logPath: filepath.Join(out, "switchboard.log"), exited: make(chan struct{}),
		httpURL: fmt.Sprintf("http://127.0.0.1:%d", nc.httpPort), sipAddr: fmt.Sprintf("127.0.0.1:%d", nc.sipPort)}
	b, err := nc.yaml()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(n.cfgPath, b, 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(n.logPath)
	if err != nil {
		return nil, err
	}
	n.cmd = exec.Command(bin, "serve", "--config", n.cfgPath)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start switchboard: %w", err)
	}
	go func() {
		n.waitErr = n.cmd.Wait()
		logf.Close()
		close(n.exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-n.exited:
			return nil, fmt.Errorf("switchboard exited at start (%v); see %s:\n%s", n.waitErr, n.logPath, tail(n.logPath, 20))
		case <-ctx.Done():
			n.stop()
			return nil, context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
		if r, err := http.Get(n.httpURL + "/healthz"); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			n.stop()
			return nil, fmt.Errorf("switchboard not healthy after 60 s; see %s", n.logPath)
		}
	}
}

func (n *node) pid() int {
	if n.inproc != nil {
		return os.Getpid()
	}
	return n.cmd.Process.Pid
}

// stop ends the node politely (SIGTERM: it drains, and there is nothing
// left to drain), then its whole process group with SIGKILL.
func (n *node) stop() {
	if n != nil && n.inproc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = n.inproc.Shutdown(ctx, time.Now())
		n.inprocLog.Close()
		n.inproc = nil
		close(n.exited)
		return
	}
	if n == nil || n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.exited:
		return
	default:
	}
	// The first SIGTERM lets live calls drain (calls.drainTimeout); the
	// second ends them at once; SIGKILL if it still runs.
	_ = syscall.Kill(n.pid(), syscall.SIGTERM)
	select {
	case <-n.exited:
		return
	case <-time.After(2 * time.Second):
	}
	_ = syscall.Kill(n.pid(), syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-n.pid(), syscall.SIGKILL)
		<-n.exited
	}
}

// alive reports whether the node process still runs.
func (n *node) alive() bool {
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// metrics scrapes the node's /metrics and sums each series by name and
// label set ("name" or `name{a="b"}`).
func (n *node) metrics() (map[string]float64, error) {
	r, err := http.Get(n.httpURL + "/metrics")
	if err != nil {
		return nil, err
	}
	defer r.Body.Close()
	if r.StatusCode != 200 {
		return nil, fmt.Errorf("GET /metrics: %s", r.Status)
	}
	return parseMetrics(r.Body)
}

func parseMetrics(r io.Reader) (map[string]float64, error) {
	m := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] += v
	}
	return m, sc.Err()
}

// sumPrefix adds up every series whose key starts with prefix.
func sumPrefix(m map[string]float64, prefix string) float64 {
	var s float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			s += v
		}
	}
	return s
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
