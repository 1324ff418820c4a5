package calltest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/media/prompt"
)

// NeedPeer skips the test when the Debian package providing bin is not
// installed, except in CI (CI=true), where a missing peer is a failure:
// `make test` installs them (scripts/test-deps.sh).
func NeedPeer(t testing.TB, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (Debian package %s): make test installs it", bin, pkg)
	}
	t.Skipf("%s is not installed (Debian package %s); run make deps", bin, pkg)
	return ""
}

// FreeUDPPort returns a UDP port on host that nobody uses right now.
func FreeUDPPort(t testing.TB, host string) int {
	t.Helper()
	for range 50 {
		c, err := net.ListenPacket("udp", host+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		// baresip also listens on TCP at the same port, and for SIP over
		// TLS on the next one.
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l2, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port+1)))
		l.Close()
		if err == nil {
			l2.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// Baresip is a real softphone (baresip) run headless for a test: it
// registers as a configured user, auto-answers, sends a WAV file as its
// microphone and records what it hears to RecDir (sndfile module).
type Baresip struct {
	Dir    string
	RecDir string
	SIP    string // its own SIP address host:port
	ctrl   string

	cmd  *exec.Cmd
	mu   sync.Mutex
	log  strings.Builder
	seen chan struct{}
}

// BaresipOptions configure StartBaresip.
type BaresipOptions struct {
	User, Password string
	Registrar      string // host:port of Switchboard's SIP listener
	Source         string // WAV played as the microphone (8 kHz mono); pad it: the call ends when it ends
	Codec          string // PCMU (default) or PCMA
	NoRegister     bool
	// TLS registers (and takes calls) over SIP over TLS: Registrar is the
	// node's TLS port, and CAFile the PEM certificate baresip trusts.
	TLS    bool
	CAFile string
}

// StartBaresip starts baresip and waits until it has registered.
func StartBaresip(t testing.TB, o BaresipOptions) *Baresip {
	t.Helper()
	bin := NeedPeer(t, "baresip", "baresip")
	dir := t.TempDir()
	b := &Baresip{Dir: dir, RecDir: filepath.Join(dir, "rec"), seen: make(chan struct{}, 1)}
	if err := os.MkdirAll(b.RecDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sipPort := FreeUDPPort(t, "127.0.0.1")
	ctrlPort := FreeUDPPort(t, "127.0.0.1")
	for ctrlPort == sipPort+1 { // baresip's SIP over TLS takes sipPort+1
		ctrlPort = FreeUDPPort(t, "127.0.0.1")
	}
	rtpLo := 30000 + (sipPort % 20000)
	b.SIP = fmt.Sprintf("127.0.0.1:%d", sipPort)
	b.ctrl = fmt.Sprintf("127.0.0.1:%d", ctrlPort)
	codec := o.Codec
	if codec == "" {
		codec = "PCMU"
	}
	conf := fmt.Sprintf(`sip_listen %s
net_interface 127.0.0.1
audio_player alsa,null
audio_source aufile,%s
audio_alert alsa,null
ausrc_srate 8000
ausrc_channels 1
rtp_ports %d-%d
module_path /usr/lib/baresip/modules
module g711.so
module alsa.so
module aufile.so
module sndfile.so
snd_path %s
module_tmp account.so
module_app menu.so
module_app ctrl_tcp.so
ctrl_tcp_listen %s
`, b.SIP, o.Source, rtpLo, rtpLo+20, b.RecDir, b.ctrl)
	registrar := o.Registrar
	if o.TLS {
		conf += "sip_cafile " + o.CAFile + "\n"
		registrar += ";transport=tls"
	}
	regint := 600
	if o.NoRegister {
		regint = 0
	}
	acct := fmt.Sprintf("<sip:%s@%s>;auth_pass=%s;regint=%d;answermode=auto;audio_codecs=%s\n", o.User, registrar, o.Password, regint, codec)
	for name, data := range map[string]string{"config": conf, "accounts": acct} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	// baresip itself, not under timeout(1): killing a wrapper would orphan
	// it. Cleanup asks it to stop (SIGTERM) and kills it 5 s later if it
	// ignores that, as it can while a call is stuck.
	b.cmd = exec.CommandContext(ctx, bin, "-f", dir)
	b.cmd.Cancel = func() error { return b.cmd.Process.Signal(syscall.SIGTERM) }
	b.cmd.WaitDelay = 5 * time.Second
	out, _ := b.cmd.StdoutPipe()
	b.cmd.Stderr = b.cmd.Stdout
	if err := b.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			b.mu.Lock()
			b.log.WriteString(sc.Text() + "\n")
			b.mu.Unlock()
			select {
			case b.seen <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = b.cmd.Wait()
		if t.Failed() {
			t.Logf("baresip output:\n%s", b.Output())
		}
	})
	if !o.NoRegister {
		b.WaitOutput(t, "200 OK", 15*time.Second)
	} else {
		b.WaitOutput(t, "baresip is ready", 15*time.Second)
	}
	return b
}

// Output is what baresip printed so far.
func (b *Baresip) Output() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

// WaitOutput waits until baresip printed s.
func (b *Baresip) WaitOutput(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !strings.Contains(b.Output(), s) {
		select {
		case <-b.seen:
		case <-deadline.C:
			t.Fatalf("baresip did not print %q in %s:\n%s", s, timeout, b.Output())
		}
	}
}

// Command sends a ctrl_tcp command (netstring-framed JSON).
func (b *Baresip) Command(t testing.TB, cmd, params string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", b.ctrl, 5*time.Second)
	if err != nil {
		t.Fatalf("baresip ctrl: %v", err)
	}
	defer c.Close()
	msg, _ := json.Marshal(map[string]string{"command": cmd, "params": params, "token": "t"})
	if _, err := fmt.Fprintf(c, "%d:%s,", len(msg), msg); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.ReadAll(io.LimitReader(c, 1)) // wait for the response to start
}

// Recordings lists the WAV files sndfile wrote (…-dec.wav is what it heard).
func (b *Baresip) Recordings(t testing.TB) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(b.RecDir, "*.wav"))
	return m
}

// Heard is what baresip heard in its last call, as 8 kHz PCM: the
// …-dec.wav sndfile writes when the call closes (wait for "terminated"
// first). It fails the test when there is none.
func (b *Baresip) Heard(t testing.TB) []int16 {
	t.Helper()
	var heard []int16
	for _, f := range b.Recordings(t) {
		if !strings.HasSuffix(f, "-dec.wav") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if heard, err = prompt.DecodeWAV(bytes.NewReader(data)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if len(heard) == 0 {
		t.Fatalf("baresip recorded nothing it heard: %v", b.Recordings(t))
	}
	return heard
}
