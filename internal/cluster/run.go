package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchboard-voice/switchboard/internal/config"
)

// RunOptions configure Run.
type RunOptions struct {
	// Nodes is how many Switchboard nodes run (3); NATS servers are three.
	Nodes int
	// Dir holds every process's files and logs (./data-cluster).
	Dir string
	// Switchboard is the switchboard binary the nodes run.
	Switchboard string
	// NATSServer is the nats-server binary (make bin/nats-server).
	NATSServer string
	// Kamailio is kamailio's path; from PATH when empty.
	Kamailio string
	// KamailioConfig is deploy/kamailio/kamailio.cfg.
	KamailioConfig string
	// Out receives what the operator reads: progress, where to point a
	// bot and a phone, and processes that exit.
	Out io.Writer
}

// Run starts a cluster on the Loopback layout: three NATS servers as one
// JetStream cluster, the nodes on it (the demo configuration of serve
// --dev, behind the front), Kamailio in front of their SIP ports and a
// round-robin HTTP balancer in front of their HTTP ports. It prints where
// to point a bot and a phone, runs until ctx ends, then stops everything
// (front, nodes, NATS, in that order) and returns. Each process's log is in
// Dir/<name>.log.
func Run(ctx context.Context, o RunOptions) (err error) {
	if o.Nodes < 1 {
		o.Nodes = 3
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	for _, b := range []struct{ what, path, hint string }{
		{"switchboard", o.Switchboard, "make build"},
		{"nats-server", o.NATSServer, "make bin/nats-server"},
		{"kamailio configuration", o.KamailioConfig, "run from the repository's root"},
	} {
		if _, err := os.Stat(b.path); err != nil {
			return fmt.Errorf("%s: %w (%s)", b.what, err, b.hint)
		}
	}
	kam := o.Kamailio
	if kam == "" {
		if kam, err = exec.LookPath("kamailio"); err != nil {
			return errors.New("kamailio is not installed (Debian package kamailio: make deps)")
		}
	}
	l := Loopback(o.Nodes, 3)
	if err := checkFree(l); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return err
	}
	var procs []*Process // in start order; stopped in reverse
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].Stop(20 * time.Second)
		}
		fmt.Fprintln(o.Out, "cluster: everything stopped")
	}()
	logFile := func(name string) (io.Writer, error) {
		return os.OpenFile(filepath.Join(o.Dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	}

	// NATS first: the nodes need its JetStream to start.
	for i, n := range l.NATS {
		dir := filepath.Join(o.Dir, n.Name)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return err
		}
		conf := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(conf, []byte(l.NATSConfig(i, filepath.Join(dir, "jetstream"))), 0o640); err != nil {
			return err
		}
		out, err := logFile(n.Name)
		if err != nil {
			return err
		}
		p, err := Start(n.Name, out, o.NATSServer, "-c", conf)
		if err != nil {
			return err
		}
		procs = append(procs, p)
		fmt.Fprintf(o.Out, "cluster: %s on %s (routes %s), pid %d\n", n.Name, n.Client, n.Cluster, p.PID())
	}
	for _, n := range l.NATS {
		if err := waitTCP(ctx, n.Client.String(), 10*time.Second); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	}

	// The nodes, one after the other: the first creates the streams and
	// buckets (three replicas each), which a cluster that has just formed
	// is slow to do for several nodes asking at once.
	for i, n := range l.Nodes {
		dir := filepath.Join(o.Dir, n.Name)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return err
		}
		cfg := l.NodeConfig(config.Dev(), i, dir)
		cfg.Calls.DrainTimeout = config.Duration(5 * time.Second)
		data, err := yaml.Marshal(cfg)
		if err != nil {
			return err
		}
		file := filepath.Join(dir, "switchboard.yaml")
		if err := os.WriteFile(file, data, 0o640); err != nil {
			return err
		}
		out, err := logFile(n.Name)
		if err != nil {
			return err
		}
		p, err := Start(n.Name, out, o.Switchboard, "serve", "--config", file)
		if err != nil {
			return err
		}
		procs = append(procs, p)
		if err := waitHTTP(ctx, "http://"+n.HTTP.String()+"/healthz", 90*time.Second, p.Done()); err != nil {
			return fmt.Errorf("%s did not start (see %s): %w", n.Name, filepath.Join(o.Dir, n.Name+".log"), err)
		}
		fmt.Fprintf(o.Out, "cluster: %s on http://%s and sip:%s, pid %d\n", n.Name, n.HTTP, n.SIP, p.PID())
	}

	// The front: Kamailio for SIP, a balancer for HTTP.
	out, err := logFile("kamailio")
	if err != nil {
		return err
	}
	kctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	k, err := StartKamailio(kctx, KamailioOptions{Binary: kam, Config: o.KamailioConfig, Dir: filepath.Join(o.Dir, "kamailio"),
		Listen: l.Front, Dispatcher: l.DispatcherList(), PingInterval: 2 * time.Second, Output: out})
	cancel()
	if err != nil {
		return fmt.Errorf("%w (see %s)", err, filepath.Join(o.Dir, "kamailio.log"))
	}
	procs = append(procs, k)
	fmt.Fprintf(o.Out, "cluster: kamailio on sip:%s, pid %d\n", l.Front, k.PID())
	srv, err := serveBalancer(l)
	if err != nil {
		return err
	}
	defer srv.Close()

	printWelcome(o.Out, l, o.Dir)
	for _, p := range procs {
		go func() {
			select {
			case <-p.Done():
				if ctx.Err() == nil {
					fmt.Fprintf(o.Out, "cluster: %s exited: %v (the rest goes on; Ctrl-C stops it)\n", p.Name, p.Err())
				}
			case <-ctx.Done():
			}
		}()
	}
	<-ctx.Done()
	fmt.Fprintln(o.Out, "\ncluster: stopping (the front, the nodes letting their calls finish for up to 5 s, then NATS)")
	return nil
}

func printWelcome(w io.Writer, l Layout, dir string) {
	var nodes, sips []string
	for _, n := range l.Nodes {
		nodes = append(nodes, "http://"+n.HTTP.String())
		sips = append(sips, n.SIP.String())
	}
	u := l.PublicURL()
	fmt.Fprintf(w, `
Switchboard cluster: %d nodes on a 3-server NATS JetStream cluster, Kamailio in front.

Point a bot at (any of these; tokens of one node are valid on all):
  Graph API       %[2]s/v1.0/communications/calls   (the HTTP front, round robin)
                  %[3]s   (each node directly)
  Token endpoint  %[2]s/%[4]s/oauth2/v2.0/token
  Tenant id       %[4]s
  Bot app id      %[5]s
  Bot secret      %[6]s
  Bot webhook     %[7]s   (run: switchboard webhook --openid %[2]s/v1/.well-known/openidconfiguration)
  Bot number      %[8]s

Point a phone at Kamailio:
  SIP             %[9]s (UDP); register as eve / eve-secret, domain %[10]s
                  call the bot: sip:%[8]s@%[9]s
  Nodes' SIP      %[11]s (behind Kamailio; dispatcher probes them with OPTIONS)

NATS              %[12]s (JetStream, 3 replicas)
Console           %[2]s/console   (operator / operator-secret)
Logs and data     %[13]s/<name>.log, %[13]s/<name>/

Try it: kill one node's or one NATS server's pid and keep calling. Ctrl-C stops everything.

`, len(l.Nodes), u, strings.Join(nodes, ", "), config.DevTenantID, config.DevAppID, config.DevAppSecret,
		config.Dev().Applications[0].CallbackURI, config.DevAppNumber, l.Front, l.Front.Addr(), strings.Join(sips, ", "),
		l.NATSURL(), dir)
}

// checkFree fails, naming the address, when something already listens
// where the cluster would.
func checkFree(l Layout) error {
	try := func(network, addr string) error {
		if network == "udp" {
			c, err := net.ListenPacket("udp", addr)
			if err != nil {
				return err
			}
			return c.Close()
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		return ln.Close()
	}
	checks := [][2]string{{"udp", l.Front.String()}, {"tcp", l.FrontHTTP.String()}}
	for _, n := range l.NATS {
		checks = append(checks, [2]string{"tcp", n.Client.String()}, [2]string{"tcp", n.Cluster.String()})
	}
	for _, n := range l.Nodes {
		checks = append(checks, [2]string{"tcp", n.HTTP.String()}, [2]string{"udp", n.SIP.String()}, [2]string{"tcp", n.SIP.String()})
	}
	for _, c := range checks {
		if err := try(c[0], c[1]); err != nil {
			return fmt.Errorf("cluster: %s %s is not free (another cluster running?): %w", c[0], c[1], err)
		}
	}
	return nil
}

func waitTCP(ctx context.Context, addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after %s: %w", addr, within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func waitHTTP(ctx context.Context, u string, within time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(within)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		res, err := c.Get(u)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", u, res.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("it exited")
		case <-time.After(100 * time.Millisecond):
		}
	}
}
