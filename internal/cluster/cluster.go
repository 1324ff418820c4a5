// Package cluster lays out and runs a Switchboard cluster on loopback, for
// trying one (`switchboard cluster`, `make cluster`) and for testing one:
// NATS servers as one JetStream cluster, Switchboard nodes on it, each with
// its own node id, data directory and addresses, and Kamailio in front of
// their SIP ports with deploy/kamailio/kamailio.cfg. docs/deploy.md is the
// same deployment on real machines.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/switchboard-voice/switchboard/internal/config"
)

// NATS is one NATS server of the cluster: its client and route addresses.
type NATS struct {
	Name    string
	Client  netip.AddrPort
	Cluster netip.AddrPort
}

// URL is the server's client URL.
func (n NATS) URL() string { return "nats://" + n.Client.String() }

// Node is one Switchboard node's addresses.
type Node struct {
	Name string
	HTTP netip.AddrPort
	SIP  netip.AddrPort
}

// Layout is where everything of a loopback cluster listens.
type Layout struct {
	NATS  []NATS
	Nodes []Node
	// Front is the address phones, trunks and bots use: Kamailio's SIP
	// port, and the HTTP balancer's port on the same IP.
	Front     netip.AddrPort
	FrontHTTP netip.AddrPort
}

// Loopback is the fixed layout `switchboard cluster` uses: the front on
// 127.0.0.10 (SIP 5060, HTTP 8080), nodes on 127.0.0.11.. (HTTP 8080, SIP
// 5060), NATS servers on 127.0.0.21.. (clients 4222, routes 6222).
func Loopback(nodes, servers int) Layout {
	ip := func(last int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, byte(last)}) }
	l := Layout{Front: netip.AddrPortFrom(ip(10), 5060), FrontHTTP: netip.AddrPortFrom(ip(10), 8080)}
	for i := range servers {
		l.NATS = append(l.NATS, NATS{Name: "nats-" + strconv.Itoa(i+1),
			Client: netip.AddrPortFrom(ip(21+i), 4222), Cluster: netip.AddrPortFrom(ip(21+i), 6222)})
	}
	for i := range nodes {
		l.Nodes = append(l.Nodes, Node{Name: "node-" + strconv.Itoa(i+1),
			HTTP: netip.AddrPortFrom(ip(11+i), 8080), SIP: netip.AddrPortFrom(ip(11+i), 5060)})
	}
	return l
}

// NATSURL is the nodes' nats.url: every server, comma-separated.
func (l Layout) NATSURL() string {
	urls := make([]string, len(l.NATS))
	for i, n := range l.NATS {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// PublicURL is the URL bots use: the HTTP balancer in front of the nodes.
// Every node has it as http.publicUrl, so tokens any node issues carry one
// issuer and are valid on all.
func (l Layout) PublicURL() string { return "http://" + l.FrontHTTP.String() }

// NodeConfig is node i's configuration on base (the demo's, or a test's):
// its own data directory and addresses, the cluster's NATS with every
// stream and bucket on three replicas (or as many as there are servers),
// SIP behind the front (sip.proxies, sip.domain), media on its own IP.
func (l Layout) NodeConfig(base config.Config, i int, dataDir string) config.Config {
	c := base
	n := l.Nodes[i]
	c.DataDir = dataDir
	c.HTTP.Listen = n.HTTP.String()
	c.HTTP.PublicURL = l.PublicURL()
	c.SIP.Listen = n.SIP.String()
	c.SIP.TLSListen, c.SIP.TLSCert, c.SIP.TLSKey = "", "", ""
	c.SIP.Domain = l.Front.Addr().String()
	c.SIP.Proxies = []string{l.Front.Addr().String()}
	c.Media.BindIP = n.SIP.Addr().String()
	c.NATS.URL = l.NATSURL()
	c.NATS.Listen = ""
	c.NATS.Replicas = min(3, len(l.NATS))
	return c
}

// DispatcherList is Kamailio's dispatcher.list: the nodes' SIP addresses in
// set 1.
func (l Layout) DispatcherList() string {
	var b strings.Builder
	b.WriteString("# setid destination flags priority: the Switchboard nodes\n")
	for _, n := range l.Nodes {
		fmt.Fprintf(&b, "1 sip:%s 0 0\n", n.SIP)
	}
	return b.String()
}

// NATSConfig is nats-server's configuration file for server i, its
// JetStream files under storeDir.
func (l Layout) NATSConfig(i int, storeDir string) string {
	n := l.NATS[i]
	var routes []string
	for j, o := range l.NATS {
		if j != i {
			routes = append(routes, "nats-route://"+o.Cluster.String())
		}
	}
	return fmt.Sprintf(`# %s of the Switchboard cluster (switchboard cluster)
server_name: %s
listen: %s
jetstream {
  store_dir: %q
}
cluster {
  name: switchboard
  listen: %s
  routes: [%s]
}
`, n.Name, n.Name, n.Client, storeDir, n.Cluster, strings.Join(routes, ", "))
}

// NATSOptions is server i's configuration for an in-process server (tests).
func (l Layout) NATSOptions(i int, storeDir string) *server.Options {
	n := l.NATS[i]
	var routes []string
	for j, o := range l.NATS {
		if j != i {
			routes = append(routes, "nats-route://"+o.Cluster.String())
		}
	}
	return &server.Options{
		ServerName: n.Name, Host: n.Client.Addr().String(), Port: int(n.Client.Port()),
		JetStream: true, StoreDir: storeDir, NoSigs: true, NoLog: true,
		Cluster: server.ClusterOpts{Name: "switchboard", Host: n.Cluster.Addr().String(), Port: int(n.Cluster.Port())},
		Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
	}
}

// Process is a child process of the cluster, started in its own process
// group (a Ctrl-C at the terminal reaches only the parent, which stops the
// children in order) and killed if the parent dies. Signals go to the whole
// group: Kamailio forks workers that share its output, and one left behind
// after its parent was killed would hold the pipe open for ever.
type Process struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start starts a process whose output goes to out.
func Start(name string, out io.Writer, bin string, args ...string) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Once the process has exited, its output is read for at most this
	// long: a grandchild still holding the pipe cannot make Wait hang.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the process ended; valid once Done is closed.
func (p *Process) Err() error { return p.err }

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Stop asks the process to end (SIGTERM), kills it after grace, and waits
// for it. It is idempotent.
func (p *Process) Stop(grace time.Duration) {
	select {
	case <-p.done:
		p.signal(syscall.SIGKILL)
		return
	default:
	}
	p.signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.signal(syscall.SIGKILL)
		<-p.done
	}
	// Whatever the process left in its group goes with it.
	p.signal(syscall.SIGKILL)
}

// Kill ends the process and its group at once (SIGKILL) and waits for it.
func (p *Process) Kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

// signal sends sig to the process's group, and to the process itself
// should the group be gone.
func (p *Process) signal(sig syscall.Signal) {
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

// KamailioOptions configure StartKamailio.
type KamailioOptions struct {
	// Binary is kamailio's path; "kamailio" from PATH when empty.
	Binary string
	// Config is deploy/kamailio/kamailio.cfg.
	Config string
	// Dir holds the generated dispatcher list, the pid file and the
	// control socket.
	Dir string
	// Listen is the UDP address Kamailio listens on.
	Listen netip.AddrPort
	// Dispatcher is the dispatcher.list's content (Layout.DispatcherList).
	Dispatcher string
	// PingInterval is how often each node is probed; 5 s when 0.
	PingInterval time.Duration
	// Output receives Kamailio's log.
	Output io.Writer
}

// StartKamailio runs Kamailio in the foreground with the given
// configuration and returns once it answers an OPTIONS.
func StartKamailio(ctx context.Context, o KamailioOptions) (*Process, error) {
	bin := o.Binary
	if bin == "" {
		bin = "kamailio"
	}
	if o.Output == nil {
		o.Output = io.Discard
	}
	ping := int(o.PingInterval / time.Second)
	if ping < 1 {
		ping = 5
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, err
	}
	list := filepath.Join(o.Dir, "dispatcher.list")
	if err := os.WriteFile(list, []byte(o.Dispatcher), 0o640); err != nil {
		return nil, err
	}
	cfg, err := filepath.Abs(o.Config)
	if err != nil {
		return nil, err
	}
	p, err := Start("kamailio", o.Output, bin, "-DD", "-E", "-f", cfg, "-w", o.Dir, "-Y", o.Dir,
		"-P", filepath.Join(o.Dir, "kamailio.pid"), "-m", "64", "-M", "8",
		"-A", "LISTEN=udp:"+o.Listen.String(),
		"-A", `DISPATCHER_LIST="`+list+`"`,
		"-A", `CTL_SOCKET="unix:`+filepath.Join(o.Dir, "kamailio_ctl")+`"`,
		"-A", "PING_INTERVAL="+strconv.Itoa(ping))
	if err != nil {
		return nil, err
	}
	if err := WaitSIP(ctx, o.Listen, p.Done()); err != nil {
		p.Stop(2 * time.Second)
		return nil, fmt.Errorf("kamailio on %s: %w", o.Listen, err)
	}
	return p, nil
}

// WaitSIP polls a SIP address with OPTIONS over UDP until it answers 200,
// ctx ends, or exited is closed.
func WaitSIP(ctx context.Context, addr netip.AddrPort, exited <-chan struct{}) error {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IP(addr.Addr().AsSlice())})
	if err != nil {
		c, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return err
		}
	}
	defer c.Close()
	local := c.LocalAddr().(*net.UDPAddr)
	buf := make([]byte, 4096)
	for i := 0; ; i++ {
		msg := fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-wait-%d;rport\r\n"+
			"Max-Forwards: 70\r\nFrom: <sip:wait@%s>;tag=w%d\r\nTo: <sip:%s>\r\nCall-ID: wait-%d@%s\r\n"+
			"CSeq: %d OPTIONS\r\nContent-Length: 0\r\n\r\n",
			addr, local, i, local.IP, i, addr, i, local.IP, i+1)
		if _, err := c.WriteToUDPAddrPort([]byte(msg), addr); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := c.ReadFromUDP(buf)
		if err == nil && bytes.HasPrefix(buf[:n], []byte("SIP/2.0 200")) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no answer to OPTIONS: %w", ctx.Err())
		case <-exited:
			return errors.New("it exited")
		default:
		}
	}
}
