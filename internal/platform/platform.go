// Package platform assembles one Switchboard node from its parts: the
// state store, identity, the notification outbox, the simulated endpoint,
// the call manager and the Graph API. cmd/switchboard and the calltest
// harness both start nodes through it, so tests run what users run.
package platform

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-voice/switchboard/internal/admission"
	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/clock"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/console"
	"github.com/switchboard-voice/switchboard/internal/egress"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/graphapi"
	"github.com/switchboard-voice/switchboard/internal/identity"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/media/prompt"
	"github.com/switchboard-voice/switchboard/internal/media/record"
	"github.com/switchboard-voice/switchboard/internal/meetings"
	"github.com/switchboard-voice/switchboard/internal/simulated"
	"github.com/switchboard-voice/switchboard/internal/sipgw"
	"github.com/switchboard-voice/switchboard/internal/store"
	"github.com/switchboard-voice/switchboard/internal/webhook"
	"github.com/switchboard-voice/switchboard/internal/webphone"
	"github.com/switchboard-voice/switchboard/internal/webrtcgw"
)

// Options tune a node beyond its configuration.
type Options struct {
	Logger *slog.Logger
	// Clock drives call timers and simulated endpoints; the wall clock when
	// nil. Tokens always use the wall clock: bots validate them on theirs.
	Clock clock.Clock
	// Listener serves HTTP; one on cfg.HTTP.Listen is opened when nil.
	Listener net.Listener
	// Simulator mounts the simulated endpoint's control API.
	Simulator bool
	// OnNotification observes every finished notification delivery.
	OnNotification func(webhook.Result)
	// NodeLease is how long the node's claim on its id lasts without a
	// heartbeat (nodeclaim.go); cluster.nodeLease when 0. Tests set
	// shorter leases than the configuration allows.
	NodeLease time.Duration
}

// Node is a running Switchboard node. Its owner calls Shutdown or Kill.
type Node struct {
	ID        string
	Config    *config.Config
	Store     *store.Store
	Directory *identity.Directory
	Keys      *identity.Keyring
	Identity  *identity.Service
	Meetings  *meetings.Store
	Outbox    *webhook.Outbox
	Calls     *callctl.Manager
	Sim       *simulated.Endpoint
	Media     *media.Engine
	Prompts   *prompt.Cache
	Records   *record.Store
	SIP       *sipgw.Gateway // nil when sip.listen is empty
	API       *graphapi.Server
	// Console is the operators' /console; nil when no operator is configured.
	Console *console.Console
	// Admission refuses new calls while the node is over its limits.
	Admission *admission.Controller
	// URL is where the HTTP API listens (http://host:port, https:// with
	// http.tlsCert).
	URL string

	log      *slog.Logger
	http     *http.Server
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once

	// What a takeover of a lost node builds its outbox and calls with.
	egress   *egress.Policy
	onResult func(webhook.Result)
	dial     callctl.Dialer
	clk      clock.Clock
	lost     chan struct{} // closed when another node took this one over
	nodesKV  *store.KV     // sb_nodes: the nodes' claims on their ids
	lostOnce sync.Once
	nodes    atomic.Int32 // nodes serving the deployment (takeover.go)
	// takeovers counts the lost nodes this node took over, tookOverCalls
	// the calls it ended for them.
	takeovers, tookOverCalls prometheus.Counter
}

// Start brings up a node and returns once it serves requests.
func Start(ctx context.Context, cfg *config.Config, o Options) (n *Node, err error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clk := o.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	nodeID, err := loadNodeID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	log = log.With("node", nodeID)
	runCtx, cancel := context.WithCancel(context.Background())
	n = &Node{ID: nodeID, Config: cfg, log: log, cancel: cancel, clk: clk, lost: make(chan struct{})}
	started := n // "return nil, err" clears n before the deferred Kill runs
	defer func() {
		if err != nil {
			started.Kill()
		}
	}()

	n.Store, err = store.Open(ctx, store.Options{DataDir: cfg.DataDir, URL: cfg.NATS.URL, Listen: cfg.NATS.Listen,
		Replicas: cfg.NATS.Replicas, Name: nodeID, Logger: log.With("component", "store")})
	if err != nil {
		return nil, err
	}
	lease := o.NodeLease
	if lease <= 0 {
		lease = cfg.Cluster.NodeLease.D()
	}
	claim, err := claimNodeID(ctx, n.Store, nodeID, lease, log.With("component", "node"))
	if err != nil {
		return nil, err
	}
	n.nodesKV = claim.kv
	claim.lost = n.fence
	n.wg.Add(1)
	go func() { defer n.wg.Done(); claim.run(runCtx) }()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.takeovers = prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_node_takeovers_total",
		Help: "Lost nodes (their claim unrenewed for their lease) this node took over: it ended their calls and delivered their notifications."})
	n.tookOverCalls = prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_node_takeover_calls_ended_total",
		Help: "Calls of lost nodes this node ended (410/9020) when it took them over."})
	reg.MustRegister(n.takeovers, n.tookOverCalls)

	n.Directory = identity.NewDirectory(cfg)
	keysKV, err := n.Store.Bucket(ctx, "sb_keys", 0)
	if err != nil {
		return nil, err
	}
	retain := max(cfg.Identity.TokenLifetime.D(), cfg.Identity.NotificationTokenLifetime.D()) + 5*time.Minute
	n.Keys, err = identity.OpenKeyring(ctx, keysKV, identity.KeyringOptions{
		Rotation: cfg.Identity.KeyRotation.D(), Retain: retain, Logger: log.With("component", "keys")})
	if err != nil {
		return nil, err
	}
	n.Identity = identity.New(cfg, n.Directory, n.Keys, time.Now)
	n.Identity.SetLogger(log.With("component", "identity"))
	n.Meetings, err = meetings.Open(ctx, meetings.Options{Store: n.Store, Config: cfg, Directory: n.Directory,
		Logger: log.With("component", "meetings")})
	if err != nil {
		return nil, err
	}

	// The console watches calls (callctl's Observer) and deliveries.
	n.Console = console.New(cfg)
	onResult := o.OnNotification
	var observer callctl.Observer
	if n.Console != nil {
		observer = n.Console
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchboard_console_readers_dropped_total",
			Help: "Console event streams cut off for reading too slowly (the browser reconnects)."},
			func() float64 { return float64(n.Console.Dropped()) }))
		onResult = func(r webhook.Result) {
			n.Console.OnResult(r)
			if o.OnNotification != nil {
				o.OnNotification(r)
			}
		}
	}

	policy, err := egress.NewPolicy(cfg.Outbound.Allow)
	if err != nil {
		return nil, err
	}
	n.egress, n.onResult = policy, onResult
	n.Outbox, err = webhook.Open(ctx, n.Store, n.Identity, webhook.Options{
		Node: nodeID, Timeout: cfg.Notifications.Timeout.D(), MaxAge: cfg.Notifications.MaxAge.D(),
		Workers: cfg.Notifications.Workers, Client: policy.Client(cfg.Notifications.Timeout.D()),
		Logger: log.With("component", "webhook"), Registerer: reg, OnResult: onResult,
	})
	if err != nil {
		return nil, err
	}

	bindIP, err := netip.ParseAddr(cfg.Media.BindIP)
	if err != nil {
		return nil, fmt.Errorf("media.bindIp: %w", err)
	}
	n.Media, err = media.NewEngine(media.EngineOptions{BindIP: bindIP, PortMin: cfg.Media.RTPPortMin, PortMax: cfg.Media.RTPPortMax,
		InactivityTimeout: cfg.Media.InactivityTimeout.D(), Logger: log.With("component", "media"), Registerer: reg})
	if err != nil {
		return nil, err
	}
	n.Prompts = prompt.NewCache(policy.Client(prompt.FetchTimeout), cfg.Media.PromptCacheBytes, log.With("component", "prompts"))
	n.Records, err = record.NewStore(ctx, n.Store, cfg.HTTP.PublicURL, cfg.Media.RecordingRetention.D(), cfg.Media.RecordingsMaxBytes, log.With("component", "recordings"))
	if err != nil {
		return nil, err
	}

	// Admission weighs the load of the node's calls, media clock and
	// outbox; the calls are read through n.Calls once it exists (the SIP
	// edge is built first).
	ov := cfg.Calls.Overload
	n.Admission, err = admission.New(admission.Limits{MaxCalls: cfg.Calls.MaxConcurrent,
		MaxLateTickPercent: ov.MaxLateTickPercent, MaxNotificationBacklog: ov.MaxNotificationBacklog, RetryAfter: ov.RetryAfter.D()},
		admission.Sources{
			Calls: func() int {
				if n.Calls == nil {
					return 0
				}
				return n.Calls.Live()
			},
			Media:               func() (uint64, uint64) { return n.Media.Recent() },
			NotificationBacklog: n.Outbox.Queued,
		}, reg)
	if err != nil {
		return nil, err
	}

	n.Sim = simulated.New(n.Directory, clk, log.With("component", "simulated"))
	if cfg.Simulator.Audio {
		n.Sim.UseMedia(n.Media)
	}
	calls := &lateCalls{}
	dial := dialers{dir: n.Directory, sim: n.Sim}
	if cfg.SIP.Listen != "" {
		var rtc *webrtcgw.Gateway
		if cfg.WebRTC.Enabled {
			bind, _ := netip.ParseAddr(cfg.Media.BindIP)
			rtc, err = webrtcgw.New(webrtcgw.Options{PublicIP: cfg.WebRTC.PublicIP, BindIP: cfg.Media.BindIP,
				PortMin: uint16(cfg.WebRTC.UDPPortMin), PortMax: uint16(cfg.WebRTC.UDPPortMax),
				Loopback: !bind.IsValid() || bind.IsLoopback() || bind.IsUnspecified(), Logger: log.With("component", "webrtc"),
				Registerer: reg})
			if err != nil {
				return nil, err
			}
		}
		n.SIP, err = sipgw.New(ctx, sipgw.Options{Config: cfg, Directory: n.Directory, Store: n.Store, Media: n.Media,
			Calls: calls, Logger: log.With("component", "sip"), Registerer: reg, Admission: n.Admission, WebRTC: rtc})
		if err != nil {
			return nil, err
		}
		dial.sip = n.SIP
	}
	n.Calls, err = callctl.New(ctx, callctl.Options{
		Node: nodeID, Config: cfg, Directory: n.Directory, Store: n.Store, Notifier: n.Outbox,
		Dialer: dial, Prompts: n.Prompts, Recordings: recordings{n.Records}, Clock: clk, Logger: log.With("component", "calls"), Registerer: reg,
		Conferences: func(_ string, onDominant func(string)) (callctl.Conference, error) {
			return n.Media.NewConference(media.ConferenceOptions{OnDominant: onDominant})
		},
		Meetings: meetingDirectory{n.Meetings}, Observer: observer, SIPAddr: n.sipAddr,
		Rooms: func(_ string, onDominant func(string)) (callctl.RoomMedia, error) {
			c, err := n.Media.NewConference(media.ConferenceOptions{OnDominant: onDominant})
			if err != nil {
				return nil, err
			}
			return roomMedia{c}, nil
		},
	})
	if err != nil {
		return nil, err
	}
	n.Sim.Attach(n.Calls)
	calls.m = n.Calls
	n.dial = dial

	n.API = graphapi.New(graphapi.Options{Config: cfg, Identity: n.Identity, Calls: n.Calls, Meetings: n.Meetings,
		Logger: log.With("component", "graphapi"), Registerer: reg, Admission: n.Admission,
		Nodes: n.Nodes, NodeURL: n.NodeURL, Node: nodeID})
	mux := n.API.Mux()
	n.Identity.Routes(mux)
	n.Meetings.Routes(mux)
	n.Records.Routes(mux)
	console.Routes(mux, n.Console) // 403 when no operator is configured
	n.Console.ServeRecordings(n.Records)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if o.Simulator {
		n.Sim.Routes(mux)
	}
	if n.SIP != nil && cfg.WebRTC.Enabled {
		// SIP over WebSocket for browser softphones (RFC 7118).
		mux.HandleFunc("GET "+sipgw.WSPath, n.SIP.ServeWebSocket)
		webphone.Routes(mux, cfg.SIP.Domain) // the /phone softphone on it
		// Meetings' join pages join from the browser through it, with
		// guest passes the SIP edge checks.
		n.Meetings.EnableBrowserJoin(meetings.BrowserJoin{Passes: n.SIP.GuestPasses(), Rosters: n.Calls, WSPath: sipgw.WSPath})
	}

	n.wg.Add(3)
	go func() { defer n.wg.Done(); n.Keys.Run(runCtx) }()
	go func() {
		defer n.wg.Done()
		if err := n.Media.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("media clock stopped", "err", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		if err := n.Outbox.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("notification outbox stopped", "err", err)
		}
	}()
	if err := n.Calls.Start(ctx); err != nil {
		return nil, err
	}
	if n.SIP != nil {
		if err := n.SIP.Start(ctx); err != nil {
			return nil, err
		}
	}
	// From here this node takes over the calls of nodes that are lost
	// (takeover.go): it can send their phones a BYE.
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.watchNodes(runCtx, claim.kv, claim.lease) }()

	ln := o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.HTTP.Listen); err != nil {
			return nil, fmt.Errorf("http listen: %w", err)
		}
	}
	n.URL = "http://" + ln.Addr().String()
	if n.SIP != nil {
		if a, ok := ln.Addr().(*net.TCPAddr); ok {
			n.SIP.SetWebSocketAddr(a.AddrPort())
		}
	}
	if cfg.HTTP.TLSCert != "" {
		// HTTPS only, HTTP/1.1 only: the media socket's WebSocket upgrade
		// takes over the connection, which HTTP/2 has no way to do.
		cert, err := tls.LoadX509KeyPair(cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("http.tlsCert: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
			NextProtos: []string{"http/1.1"}})
		n.URL = "https://" + ln.Addr().String()
	}
	// Other nodes hand this one the media sockets of its calls there.
	claim.advertise(advertisedURL(cfg, ln.Addr()))
	n.http = &http.Server{Handler: n.API, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "err", err)
		}
	}()
	n.API.SetReady(true)
	sipAddr := "off"
	if n.SIP != nil {
		sipAddr = n.SIP.Addr().String()
	}
	log.Info("switchboard node ready", "sip", sipAddr, "http", n.URL, "public", cfg.HTTP.PublicURL, "data", cfg.DataDir, "nats", natsMode(cfg))
	return n, nil
}

func natsMode(cfg *config.Config) string {
	if cfg.NATS.URL != "" {
		return cfg.NATS.URL
	}
	return "embedded"
}

// Shutdown stops accepting work (HTTP 503; SIP 503 to new INVITEs and to
// a proxy's OPTIONS probes, so Kamailio sends new calls to other nodes),
// lets live calls finish until drainBy, ends the rest with a terminated
// notification, gives the outbox until ctx is done to deliver what is left
// (anything undelivered stays in the store for the next start), then stops
// everything.
func (n *Node) Shutdown(ctx context.Context, drainBy time.Time) error {
	n.API.Drain()
	if n.SIP != nil {
		n.SIP.Drain()
	}
	var err error
	if n.Calls != nil {
		err = n.Calls.Shutdown(ctx, drainBy)
	}
	if n.SIP != nil {
		_ = n.SIP.Close()
	}
	if n.Outbox != nil {
		for delay := 10 * time.Millisecond; ; delay = min(2*delay, 250*time.Millisecond) {
			left, berr := n.Outbox.Backlog(ctx)
			if berr != nil || left == 0 {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(delay):
				continue
			}
			n.log.Warn("notifications left for the next start", "count", left)
			break
		}
	}
	if n.http != nil {
		hctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = n.http.Shutdown(hctx)
		cancel()
	}
	n.stop()
	return err
}

// Kill stops the node abruptly, leaving calls and undelivered notifications
// in the store for the next start, as a crash would; unlike a crash, closing
// the SIP gateway hangs up its dialogs (503/9007), so a test of what a
// SIP phone sees after a real crash kills a process (calltest's restart
// tests).
func (n *Node) Kill() {
	if n.http != nil {
		_ = n.http.Close()
	}
	if n.SIP != nil {
		_ = n.SIP.Close()
	}
	if n.Calls != nil {
		n.Calls.Stop()
	}
	n.stop()
}

func (n *Node) stop() {
	n.stopOnce.Do(func() {
		n.cancel()
		n.wg.Wait()
		if n.Prompts != nil {
			n.Prompts.Close()
		}
		if n.Records != nil {
			n.Records.Close()
		}
		if n.Store != nil {
			n.Store.Close()
		}
	})
}

// advertisedURL is the base URL other nodes reach this node's HTTP
// listener at: cluster.httpUrl, else the listener's address, whose
// unspecified host (0.0.0.0, ::) is replaced by media.bindIp, else by
// the host name.
func advertisedURL(cfg *config.Config, addr net.Addr) string {
	if cfg.Cluster.HTTPURL != "" {
		return strings.TrimRight(cfg.Cluster.HTTPURL, "/")
	}
	scheme := "http://"
	if cfg.HTTP.TLSCert != "" {
		scheme = "https://"
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + addr.String()
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		host = ""
		if b, err := netip.ParseAddr(cfg.Media.BindIP); err == nil && !b.IsUnspecified() {
			host = b.String()
		} else if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return scheme + net.JoinHostPort(host, port)
}

// NodeURL returns the base URL node id's HTTP listener is reached at, as
// its claim in sb_nodes advertises it; errs.Unavailable when the node
// has no live claim advertising one (it stopped, or is being taken over).
func (n *Node) NodeURL(ctx context.Context, id string) (string, error) {
	data, _, err := n.nodesKV.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", errs.E(errs.Unavailable, "node %s is not running", id)
	}
	if err != nil {
		return "", errs.Wrap(errs.Unavailable, err, "read node %s's claim", id)
	}
	var c nodeClaim
	if err := json.Unmarshal(data, &c); err != nil {
		return "", errs.Wrap(errs.Internal, err, "node %s's claim", id)
	}
	if c.HTTP == "" || c.TakenOverBy != "" {
		return "", errs.E(errs.Unavailable, "node %s advertises no HTTP listener", id)
	}
	return c.HTTP, nil
}

// loadNodeID returns the node's stable id, kept in the data directory so a
// restarted node finds the calls it owned.
func loadNodeID(dir string) (string, error) {
	p := filepath.Join(dir, "node-id")
	if b, err := os.ReadFile(p); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := "n" + hex.EncodeToString(b[:])
	if err := os.WriteFile(p, []byte(id+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	return id, nil
}

// recordings adapts record.Store to callctl.RecordingStore.
type recordings struct{ s *record.Store }

func (r recordings) Begin(ctx context.Context, callID, opID string) (callctl.Recording, error) {
	rec, err := r.s.Begin(ctx, callID, opID)
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// lateCalls lets the SIP gateway, built before the call manager (which
// dials through it), hand incoming calls to the manager once it exists.
type lateCalls struct{ m *callctl.Manager }

func (l *lateCalls) DialIn(ctx context.Context, in callctl.DialIn) error {
	if l.m == nil {
		return errs.E(errs.Unavailable, "the node is starting")
	}
	return l.m.DialIn(ctx, in)
}

func (l *lateCalls) Incoming(ctx context.Context, in callctl.IncomingCall) (string, error) {
	if l.m == nil {
		return "", errs.E(errs.Unavailable, "the node is starting")
	}
	return l.m.Incoming(ctx, in)
}

// meetingDirectory adapts meetings.Store to callctl.Meetings.
type meetingDirectory struct{ s *meetings.Store }

func (d meetingDirectory) ByThreadID(ctx context.Context, tenantID, threadID string) (*callctl.Meeting, error) {
	m, err := d.s.ByThreadID(ctx, tenantID, threadID)
	return callMeeting(m), err
}

func (d meetingDirectory) ByJoinMeetingID(ctx context.Context, tenantID, id string) (*callctl.Meeting, error) {
	m, err := d.s.ByJoinMeetingID(ctx, tenantID, id)
	return callMeeting(m), err
}

func (d meetingDirectory) ByConferenceID(ctx context.Context, id string) (*callctl.Meeting, error) {
	m, err := d.s.ByConferenceID(ctx, id)
	return callMeeting(m), err
}

func callMeeting(m *meetings.Meeting) *callctl.Meeting {
	if m == nil {
		return nil
	}
	return &callctl.Meeting{ID: m.ID, TenantID: m.TenantID, ThreadID: m.ThreadID, JoinMeetingID: m.JoinMeetingID,
		Passcode: m.Passcode, PasscodeRequired: m.PasscodeRequired, Subject: m.Subject, Organizer: m.Organizer(),
		ConferenceID: m.ConferenceID, DialInBypassesLobby: m.LobbyBypass.IsDialInBypassEnabled,
		EveryoneBypassesLobby: strings.EqualFold(m.LobbyBypass.Scope, "everyone")}
}

// roomMedia gives call control's meeting rooms media.Conference, whose
// ports are the bots' sides.
type roomMedia struct{ *media.Conference }

func (r roomMedia) NewPort(name string) (callctl.BotPort, error) {
	p, err := r.Conference.NewPort(name)
	if err != nil {
		return nil, err
	}
	return p, nil
}
