// Package config defines Switchboard's configuration: its YAML shape, the
// defaults, the demo configuration of `serve --dev`, and validation that
// reports every problem at once with its key path.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration of one Switchboard node.
type Config struct {
	// HTTP is the Graph API listener.
	HTTP HTTP `yaml:"http"`
	// SIP is the SIP edge (used once the SIP gateway is enabled).
	SIP SIP `yaml:"sip"`
	// Media configures RTP and the media engine.
	Media Media `yaml:"media"`
	// WebRTC configures browser calling: SIP over WebSocket at {http}/sip/ws and WebRTC media.
	WebRTC WebRTC `yaml:"webrtc"`
	// DataDir holds the embedded NATS JetStream store and the node's identity.
	DataDir string `yaml:"dataDir"`
	// NATS selects the embedded server (default) or an external cluster.
	NATS NATS `yaml:"nats"`
	// Cluster configures how the nodes sharing one NATS see one another (docs/deploy.md).
	Cluster Cluster `yaml:"cluster"`
	// Identity configures token lifetimes and signing keys.
	Identity Identity `yaml:"identity"`
	// Calls holds call timers and limits.
	Calls Calls `yaml:"calls"`
	// Notifications configures delivery to bots.
	Notifications Notifications `yaml:"notifications"`
	// Outbound restricts where the server may send HTTP requests.
	Outbound Outbound `yaml:"outbound"`
	// Log configures logging.
	Log Log `yaml:"log"`
	// Simulator configures the simulated endpoint's control API.
	Simulator Simulator `yaml:"simulator"`
	// Tenants are the directories of users.
	Tenants []Tenant `yaml:"tenants"`
	// Applications are the bots.
	Applications []Application `yaml:"applications"`
	// Console configures the operators' page at /console.
	Console Console `yaml:"console"`
	// Runtime tunes the Go runtime of the serving process.
	Runtime Runtime `yaml:"runtime"`
}

// Runtime tunes the Go runtime of `switchboard serve`. The GOGC and
// GOMEMLIMIT environment variables, when set, win over it.
type Runtime struct {
	// GCPercent is the garbage collector's target (GOGC): the heap may grow
	// this many percent over what is live before a collection. A node's
	// live heap is small (calls' state, buffers) and its garbage is made
	// fast (requests, notifications), so Go's 100 doubles the memory per
	// call; a lower value trades a little CPU for much less memory
	// (docs/benchmarks.md). -1 turns the collector off (then set memoryLimit).
	GCPercent int `yaml:"gcPercent"`
	// MemoryLimit is a soft limit on the process's memory in bytes
	// (GOMEMLIMIT); 0: none.
	MemoryLimit int64 `yaml:"memoryLimit"`
	// AdaptiveProcs runs the node on one P (GOMAXPROCS 1) while it needs
	// less than 70 % of a core, and on all of them above: at light load
	// Go's waking of idle Ps for every hand-off between goroutines costs
	// more than the second P gives (docs/benchmarks.md). The GOMAXPROCS
	// environment variable, when set, wins.
	AdaptiveProcs bool `yaml:"adaptiveProcs"`
}

// Console configures /console, the operators' live view of calls. With no
// user it is off (403).
type Console struct {
	// Users are the operators, signing in with HTTP Basic (use HTTPS outside a laptop).
	Users []ConsoleUser `yaml:"users"`
}

// ConsoleUser is one operator of the console.
type ConsoleUser struct {
	// Name is the operator's sign-in name.
	Name string `yaml:"name"`
	// Password is the operator's password, at least 8 characters.
	Password string `yaml:"password"`
}

// HTTP configures the Graph API listener.
type HTTP struct {
	// Listen is the host:port to listen on.
	Listen string `yaml:"listen"`
	// PublicURL is the base of every URL Switchboard hands out.
	PublicURL string `yaml:"publicUrl"`
	// MaxBodyBytes limits request bodies after gzip decoding.
	MaxBodyBytes int64 `yaml:"maxBodyBytes"`
	// RequestsPerSecond is the per-application request rate; beyond it 429.
	RequestsPerSecond float64 `yaml:"requestsPerSecond"`
	// Burst is the per-application burst above RequestsPerSecond.
	Burst int `yaml:"burst"`
	// TLSCert is a PEM certificate file (chain first) for HTTPS; with TLSKey the Graph API, the token endpoint and every other route are served over TLS only, on Listen.
	TLSCert string `yaml:"tlsCert"`
	// TLSKey is the PEM private key file of TLSCert.
	TLSKey string `yaml:"tlsKey"`
}

// SIP configures the SIP edge.
type SIP struct {
	// Listen is the host:port for SIP over UDP and TCP; empty disables SIP.
	Listen string `yaml:"listen"`
	// Domain is the SIP domain users register in.
	Domain string `yaml:"domain"`
	// TLSListen is the host:port for SIP over TLS; used when TLSCert and TLSKey are set.
	TLSListen string `yaml:"tlsListen"`
	// TLSCert is a PEM certificate file for SIP over TLS.
	TLSCert string `yaml:"tlsCert"`
	// TLSKey is the PEM private key file of TLSCert.
	TLSKey string `yaml:"tlsKey"`
	// RegisterExpiry is the longest registration accepted.
	RegisterExpiry Duration `yaml:"registerExpiry"`
	// InvitesPerSecond limits new INVITEs per second; beyond it 503 with Retry-After.
	InvitesPerSecond float64 `yaml:"invitesPerSecond"`
	// Abuse limits what one source address may send: requests outside a dialog per second, and failed digest answers before it is banned. Trunks' allowFrom addresses are exempt.
	Abuse SIPAbuse `yaml:"abuse"`
	// WS limits SIP over WebSocket (/sip/ws) per source address: open connections and new connections per second; over either, the upgrade is refused with 429 before it happens.
	WS SIPWebSocket `yaml:"ws"`
	// Trunks are SIP peers for phone numbers (PSTN gateways).
	Trunks []Trunk `yaml:"trunks"`
	// Proxies lists the SIP proxies in front of the nodes (Kamailio, docs/deploy.md), as IPs or CIDRs. A request from one is taken as relayed: trunks' allowFrom and sip.abuse apply to the address the proxy received it from (the Via it added to), and the proxy's own requests (OPTIONS probes) are never limited.
	Proxies []string `yaml:"proxies"`
}

// SIPAbuse limits one source address of SIP requests (scanners, floods,
// password guessing). Requests from a source over its rate, or banned, are
// dropped unanswered: a scanner learns nothing and a flood costs one
// lookup per packet. Requests inside a dialog (with a To tag), ACK and
// CANCEL are never limited, nor are the addresses in a trunk's allowFrom.
type SIPAbuse struct {
	// RequestsPerSecond is the sustained rate of requests outside a dialog (REGISTER, INVITE, OPTIONS, ...) one source address may send; 0 turns the limit off. Default 50.
	RequestsPerSecond float64 `yaml:"requestsPerSecond"`
	// Burst is how many such requests a source may send at once above RequestsPerSecond. Default 100.
	Burst int `yaml:"burst"`
	// MaxAuthFailures is how many wrong digest answers (403) a source may send within AuthFailureWindow before it is banned for BanTime; 0 turns bans off. Default 10.
	MaxAuthFailures int `yaml:"maxAuthFailures"`
	// AuthFailureWindow is the window MaxAuthFailures counts in. Default 1m.
	AuthFailureWindow Duration `yaml:"authFailureWindow"`
	// BanTime is how long a banned source is ignored. Default 15m.
	BanTime Duration `yaml:"banTime"`
}

// SIPWebSocket limits one source address of SIP over WebSocket (browser
// softphones at /sip/ws). The source is the HTTP connection's address: a
// reverse proxy in front of the node makes every browser one source, so
// raise the limits there (or turn them off).
type SIPWebSocket struct {
	// MaxConnsPerSource is how many SIP-over-WebSocket connections one source address may hold open at once; 0 turns the limit off. Default 20.
	MaxConnsPerSource int `yaml:"maxConnsPerSource"`
	// ConnsPerSecond is the sustained rate of new connections one source address may open; 0 turns the limit off. Default 5.
	ConnsPerSecond float64 `yaml:"connsPerSecond"`
	// ConnBurst is how many new connections a source may open at once above ConnsPerSecond. Default 20.
	ConnBurst int `yaml:"connBurst"`
}

// Trunk is a SIP peer that carries calls to and from phone numbers.
type Trunk struct {
	// Name identifies the trunk in logs.
	Name string `yaml:"name"`
	// Address is host:port where calls to phone numbers are sent.
	Address string `yaml:"address"`
	// AllowFrom lists source IPs whose INVITEs are accepted without digest, as PSTN callers.
	AllowFrom []string `yaml:"allowFrom"`
	// Transport is udp (default) or tcp.
	Transport string `yaml:"transport"`
	// RedirectWith302 answers a bot's redirect with a 302 to the caller instead of a new leg.
	RedirectWith302 bool `yaml:"redirectWith302"`
}

// Media configures the media engine.
type Media struct {
	// BindIP is the address RTP sockets bind to and SDP advertises.
	BindIP string `yaml:"bindIp"`
	// RTPPortMin is the lowest RTP port.
	RTPPortMin int `yaml:"rtpPortMin"`
	// RTPPortMax is the highest RTP port.
	RTPPortMax int `yaml:"rtpPortMax"`
	// InactivityTimeout ends a call whose far end sent no RTP for this long.
	InactivityTimeout Duration `yaml:"inactivityTimeout"`
	// RecordingRetention is how long recordings stay downloadable.
	RecordingRetention Duration `yaml:"recordingRetention"`
	// RecordingsMaxBytes bounds the store of recordings: once it holds this
	// much, new recordings fail (resultInfo 500/9013) and the calls go on.
	// Keep it below the data directory's free space: a disk that fills
	// leaves JetStream's file store refusing every write until restart.
	// 0: no bound.
	RecordingsMaxBytes int64 `yaml:"recordingsMaxBytes"`
	// PromptCacheBytes bounds the decoded prompts kept in memory.
	PromptCacheBytes int64 `yaml:"promptCacheBytes"`
	// HoldMusic is a WAV URI (http or https) played, looped, to participants on hold when the bot names no customPrompt; a built-in chime when empty or unreachable.
	HoldMusic string `yaml:"holdMusic"`
	// Socket configures the media socket of app-hosted calls (docs/media-socket.md).
	Socket MediaSocket `yaml:"socket"`
}

// WebRTC configures browser legs: SIP over WebSocket (RFC 7118) served on
// the HTTP listener at /sip/ws with the SIP edge's users and routing, and
// their WebRTC media (ICE, DTLS-SRTP, G.711) relayed into the media engine.
type WebRTC struct {
	// Enabled serves SIP over WebSocket at /sip/ws and answers WebRTC offers; needs sip.listen. Default true.
	Enabled bool `yaml:"enabled"`
	// PublicIP is advertised as an extra ICE host candidate: the address browsers reach this node at through a 1:1 NAT. Empty: local addresses only.
	PublicIP string `yaml:"publicIp"`
	// UDPPortMin is the lowest ICE UDP port; 0 with UDPPortMax 0 lets the system pick.
	UDPPortMin int `yaml:"udpPortMin"`
	// UDPPortMax is the highest ICE UDP port.
	UDPPortMax int `yaml:"udpPortMax"`
}

// MediaSocket configures the media socket of app-hosted calls.
type MediaSocket struct {
	// SendBuffer is how much audio from the bot is held ahead of playing it (20ms to 2s); beyond it the oldest frames are dropped.
	SendBuffer Duration `yaml:"sendBuffer"`
	// ReconnectWindow is how long an app-hosted call's media may be without a socket (the bot never opened one, or went away) before the call ends with 500/1005.
	ReconnectWindow Duration `yaml:"reconnectWindow"`
}

// NATS selects the state store's NATS.
type NATS struct {
	// URL of an external NATS cluster with JetStream, several servers separated by commas (nats://a:4222,nats://b:4222); empty runs one embedded. A node that reaches none of its servers (each tried once, for 3s), or finds no JetStream there within 30s, exits with an error: it never falls back to an embedded server.
	URL string `yaml:"url"`
	// Listen exposes the embedded server on host:port (for tools such as the nats CLI); empty: in-process only.
	Listen string `yaml:"listen"`
	// Replicas of every stream, key-value and object bucket on an external cluster (3 on a three-server cluster; 1 embedded).
	Replicas int `yaml:"replicas"`
}

// Cluster configures how the nodes sharing one NATS see one another:
// their claims on their ids in KV sb_nodes (internal/platform).
type Cluster struct {
	// NodeLease is how long a node's claim on its id lasts without a heartbeat (it renews it every fifth of the lease). Another node takes a node silent for longer for lost and ends its calls (410/9020) within 0.8 to 1.4 leases of its death. Shorter fails over sooner, but a node stalled for a lease (a NATS failover, a frozen VM) is taken for lost and stops. Each node is judged by its own lease, which its claim records. Default 15s, at least 3s.
	NodeLease Duration `yaml:"nodeLease"`
	// HTTPURL is the base URL other nodes reach this node's HTTP listener at (http://10.0.0.11:8080), published in its claim: a media socket opened on another node is proxied here. Empty: http.listen's address, with media.bindIp (else the host name) in place of an unspecified host, https:// with http.tlsCert.
	HTTPURL string `yaml:"httpUrl"`
}

// Identity configures tokens.
type Identity struct {
	// TokenLifetime is the lifetime of access tokens issued to bots.
	TokenLifetime Duration `yaml:"tokenLifetime"`
	// KeyRotation is how often the signing key is replaced; old keys stay published until their tokens expire.
	KeyRotation Duration `yaml:"keyRotation"`
	// NotificationIssuer is the iss claim of notification tokens; empty means http.publicUrl.
	NotificationIssuer string `yaml:"notificationIssuer"`
	// NotificationTokenLifetime is the lifetime of tokens on notifications.
	NotificationTokenLifetime Duration `yaml:"notificationTokenLifetime"`
	// TokenThrottle limits the token endpoint per source address and per client id (brute force, client-secret guessing).
	TokenThrottle TokenThrottle `yaml:"tokenThrottle"`
}

// TokenThrottle limits requests to the token endpoints. Beyond a limit the
// answer is 429 with Retry-After and an identity-platform error body
// (temporarily_unavailable, AADSTS90055 for the rate, AADSTS50053 for a
// lockout), before the secret is looked at.
type TokenThrottle struct {
	// RequestsPerSecond is the sustained rate of token requests one source address may send; 0 turns the limit off. Default 20.
	RequestsPerSecond float64 `yaml:"requestsPerSecond"`
	// Burst is how many token requests a source may send at once above RequestsPerSecond. Default 40.
	Burst int `yaml:"burst"`
	// MaxFailures is how many wrong client secrets one source address may send within FailureWindow before it is locked out for Lockout; 0 turns lockouts off. Default 10.
	MaxFailures int `yaml:"maxFailures"`
	// MaxClientFailures is how many wrong secrets for one client id, from any address, lock that client id out for Lockout (sources that got a token for it in the last tokenLifetime keep getting them); 0 turns it off. Default 100.
	MaxClientFailures int `yaml:"maxClientFailures"`
	// FailureWindow is the window the failures are counted in. Default 1m.
	FailureWindow Duration `yaml:"failureWindow"`
	// Lockout is how long a locked-out source or client id is refused. Default 5m.
	Lockout Duration `yaml:"lockout"`
}

// Calls holds call timers and limits.
type Calls struct {
	// AnswerTimeout is how long an incoming call waits for answer, reject or redirect.
	AnswerTimeout Duration `yaml:"answerTimeout"`
	// KeepAliveTimeout ends a call that saw no keepAlive for this long.
	KeepAliveTimeout Duration `yaml:"keepAliveTimeout"`
	// RingTimeout ends an outbound call nobody answers.
	RingTimeout Duration `yaml:"ringTimeout"`
	// DrainTimeout is how long a stopping node lets live calls finish before it ends them.
	DrainTimeout Duration `yaml:"drainTimeout"`
	// MaxConcurrentPerApp limits live calls per application and tenant.
	MaxConcurrentPerApp int `yaml:"maxConcurrentPerApp"`
	// MaxConcurrent limits the live calls of the node, whatever their
	// application: beyond it new INVITEs get SIP 503 and new Graph creates
	// 503 serviceNotAvailable, both with Retry-After; 0 (the default): no
	// cap, only Overload's measured limits.
	MaxConcurrent int `yaml:"maxConcurrent"`
	// Overload refuses new calls while the node's measured load is over a
	// limit (internal/admission), before the calls it has degrade.
	Overload Overload `yaml:"overload"`
}

// Overload holds the measured limits of admission: while the node is over
// one, new calls are refused like those over calls.maxConcurrent. A zero
// limit is off.
type Overload struct {
	// MaxLateTickPercent is the share (percent) of the media clock's ticks
	// in the last one to two seconds that may be late (started more than
	// 5 ms late, or skipped) before new calls are refused; judged from 25
	// ticks (half a second) on. Default 50.
	MaxLateTickPercent float64 `yaml:"maxLateTickPercent"`
	// MaxNotificationBacklog is how many notifications the node may have
	// yet to deliver to bots (parked calls' aside) before new calls are
	// refused. Default 5000: more than the delivery window holds
	// (notifications.workers × 16, 4096 by default) so it takes a full
	// window and more waiting behind it; keep it above the window, or one
	// slow bot, which may hold three quarters of it, refuses everyone's
	// calls.
	MaxNotificationBacklog int `yaml:"maxNotificationBacklog"`
	// RetryAfter is the Retry-After of refusals (whole seconds, 1s to 1h).
	// Default 5s.
	RetryAfter Duration `yaml:"retryAfter"`
}

// Notifications configures delivery to bots.
type Notifications struct {
	// Timeout of one POST to a bot.
	Timeout Duration `yaml:"timeout"`
	// MaxAge is how long a notification is retried before it is dropped.
	MaxAge Duration `yaml:"maxAge"`
	// Workers bounds the calls delivered to in parallel. One webhook host
	// gets at most three quarters of them, and one at a time while it
	// fails, so a dead bot cannot take the workers of the others.
	Workers int `yaml:"workers"`
}

// Outbound restricts the server's own HTTP requests (webhooks, prompt fetches).
type Outbound struct {
	// Allow lists CIDRs and host names that may be contacted; empty allows any.
	Allow []string `yaml:"allow"`
	// AllowInsecureCallbacks accepts http:// callback URIs to non-loopback hosts.
	AllowInsecureCallbacks bool `yaml:"allowInsecureCallbacks"`
}

// Simulator configures the simulated endpoint's HTTP control API.
type Simulator struct {
	// Enabled mounts /simulator/v1/ (no authentication: for tests and demos).
	Enabled bool `yaml:"enabled"`
	// Audio gives simulated users real RTP handsets on the media engine
	// (the default): they hear prompts as audio, speak and press keys over
	// RTP. Off, their media is only timed: prompts are counted, not heard.
	Audio bool `yaml:"audio"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// Tenant is a directory of users.
type Tenant struct {
	// ID is the tenant's GUID.
	ID string `yaml:"id"`
	// DisplayName names the tenant.
	DisplayName string `yaml:"displayName"`
	// Users of the tenant.
	Users []User `yaml:"users"`
	// Conferencing is the tenant's audio conferencing (dial-in to online meetings).
	Conferencing Conferencing `yaml:"conferencing"`
}

// Conferencing is a tenant's audio conferencing: the number phones dial
// to join its online meetings with a conference id.
type Conferencing struct {
	// TollNumber is the E.164 dial-in number shown in the tenant's meetings
	// (audioConferencing.tollNumber, the join page); empty: meetings show
	// no dial-in number, only their conference id.
	TollNumber string `yaml:"tollNumber"`
}

// User is a person who can be called.
type User struct {
	// ID is the user's object id (GUID).
	ID string `yaml:"id"`
	// DisplayName names the user.
	DisplayName string `yaml:"displayName"`
	// SIP holds the user's SIP credentials.
	SIP SIPCredentials `yaml:"sip"`
	// Phone is the user's E.164 number.
	Phone string `yaml:"phone"`
	// Simulated makes the built-in simulated endpoint answer for this user.
	Simulated bool `yaml:"simulated"`
	// Simulation tunes the simulated endpoint.
	Simulation Simulation `yaml:"simulation"`
}

// SIPCredentials are a user's SIP digest credentials.
type SIPCredentials struct {
	// Username is the SIP user part.
	Username string `yaml:"username"`
	// Password is the digest password.
	Password string `yaml:"password"`
}

// Simulation tunes how a simulated user behaves when called.
type Simulation struct {
	// Answer is accept (default), busy, decline, noAnswer or unreachable.
	Answer string `yaml:"answer"`
	// RingAfter is when the endpoint starts ringing.
	RingAfter Duration `yaml:"ringAfter"`
	// AnswerAfter is when it answers (or refuses).
	AnswerAfter Duration `yaml:"answerAfter"`
	// HangUpAfter hangs up that long after answering; 0 never.
	HangUpAfter Duration `yaml:"hangUpAfter"`
	// DTMF is pressed once the call is established, one key per DTMFInterval.
	DTMF string `yaml:"dtmf"`
	// DTMFInterval is the gap between simulated key presses.
	DTMFInterval Duration `yaml:"dtmfInterval"`
}

// Application is a bot.
type Application struct {
	// ID is the app id (client_id).
	ID string `yaml:"id"`
	// DisplayName names the bot.
	DisplayName string `yaml:"displayName"`
	// Secret is the client secret.
	Secret string `yaml:"secret"`
	// Tenants the bot is provisioned in.
	Tenants []string `yaml:"tenants"`
	// Permissions are the application permissions granted (roles).
	Permissions []string `yaml:"permissions"`
	// CallbackURI receives incoming-call notifications.
	CallbackURI string `yaml:"callbackUri"`
	// MediaMode is service or app.
	MediaMode string `yaml:"mediaMode"`
	// Numbers are the numbers and SIP users that ring this bot.
	Numbers []Number `yaml:"numbers"`
	// MeetingUsers are the user ids the bot may manage online meetings for
	// (Graph's application access policy); absent or empty: every user of
	// its tenants.
	MeetingUsers []string `yaml:"meetingUsers"`
}

// Number is a number a bot owns: a plain string, or {number, tenant, instanceId}.
type Number struct {
	// Number is an E.164 number or a SIP user part.
	Number string `yaml:"number"`
	// Tenant is the tenant the number belongs to; needed when the app serves several.
	Tenant string `yaml:"tenant"`
	// InstanceID is the applicationInstance id; derived from app and number when empty.
	InstanceID string `yaml:"instanceId"`
}

// UnmarshalYAML accepts a scalar number or a mapping.
func (n *Number) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind == yaml.ScalarNode {
		n.Number = v.Value
		return nil
	}
	type plain Number
	return v.Decode((*plain)(n))
}

// Duration is a time.Duration written as "15s", "45m".
type Duration time.Duration

// UnmarshalYAML parses Go duration syntax.
func (d *Duration) UnmarshalYAML(v *yaml.Node) error {
	p, err := time.ParseDuration(v.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (use 15s, 45m, 1h)", v.Line, v.Value)
	}
	*d = Duration(p)
	return nil
}

// MarshalYAML writes Go duration syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default returns the configuration every file is laid over.
func Default() Config {
	return Config{
		HTTP: HTTP{Listen: "127.0.0.1:8080", PublicURL: "http://127.0.0.1:8080",
			MaxBodyBytes: 1 << 20, RequestsPerSecond: 50, Burst: 100},
		SIP: SIP{Listen: "127.0.0.1:5060", Domain: "switchboard.local", TLSListen: "127.0.0.1:5061",
			RegisterExpiry: Duration(time.Hour), InvitesPerSecond: 200,
			Abuse: SIPAbuse{RequestsPerSecond: 50, Burst: 100, MaxAuthFailures: 10,
				AuthFailureWindow: Duration(time.Minute), BanTime: Duration(15 * time.Minute)},
			WS: SIPWebSocket{MaxConnsPerSource: 20, ConnsPerSecond: 5, ConnBurst: 20}},
		Media: Media{BindIP: "127.0.0.1", RTPPortMin: 20000, RTPPortMax: 29999, InactivityTimeout: Duration(30 * time.Second),
			RecordingRetention: Duration(time.Hour), RecordingsMaxBytes: 1 << 30, PromptCacheBytes: 64 << 20,
			Socket: MediaSocket{SendBuffer: Duration(200 * time.Millisecond), ReconnectWindow: Duration(30 * time.Second)}},
		WebRTC:  WebRTC{Enabled: true},
		DataDir: "./data",
		NATS:    NATS{Replicas: 1},
		Cluster: Cluster{NodeLease: Duration(15 * time.Second)},
		Identity: Identity{TokenLifetime: Duration(time.Hour), KeyRotation: Duration(30 * 24 * time.Hour),
			NotificationTokenLifetime: Duration(time.Hour),
			TokenThrottle: TokenThrottle{RequestsPerSecond: 20, Burst: 40, MaxFailures: 10, MaxClientFailures: 100,
				FailureWindow: Duration(time.Minute), Lockout: Duration(5 * time.Minute)}},
		Calls: Calls{AnswerTimeout: Duration(15 * time.Second), KeepAliveTimeout: Duration(45 * time.Minute),
			RingTimeout: Duration(60 * time.Second), DrainTimeout: Duration(10 * time.Second), MaxConcurrentPerApp: 100,
			Overload: Overload{MaxLateTickPercent: 50, MaxNotificationBacklog: 5000, RetryAfter: Duration(5 * time.Second)}},
		Notifications: Notifications{Timeout: Duration(5 * time.Second), MaxAge: Duration(10 * time.Minute), Workers: 256},
		Outbound:      Outbound{},
		Simulator:     Simulator{Audio: true},
		Log:           Log{Level: "info", Format: "text"},
		Runtime:       Runtime{GCPercent: 30, AdaptiveProcs: true},
	}
}

// Parse reads YAML over Default and validates the result. Every problem is
// reported at once, each naming its key path: keys that are no field, values
// of the wrong type (a bad duration), then what Validate finds.
func Parse(data []byte) (Config, error) {
	c := Default()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return c, fmt.Errorf("config: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var problems []error
	if len(doc.Content) > 0 {
		prune(doc.Content[0], reflect.TypeOf(c), "", &problems)
		if err := doc.Content[0].Decode(&c); err != nil {
			problems = append(problems, fmt.Errorf("config: %s", strings.TrimPrefix(err.Error(), "yaml: ")))
		}
	}
	if err := c.Validate(); err != nil {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			problems = append(problems, j.Unwrap()...)
		} else {
			problems = append(problems, err)
		}
	}
	return c, errors.Join(problems...)
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// prune removes from n what cannot be decoded into t, recording each as a
// problem at its key path, so the rest decodes and validates.
func prune(n *yaml.Node, t reflect.Type, path string, problems *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			if k, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); k != "" && k != "-" {
				fields[k] = f.Type
			}
		}
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			ft, ok := fields[k.Value]
			if !ok {
				*problems = append(*problems, fmt.Errorf("%s: unknown key (line %d)", p, k.Line))
				continue
			}
			if !decodes(v, ft, p, problems) {
				continue
			}
			prune(v, ft, p, problems)
			kept = append(kept, k, v)
		}
		n.Content = kept
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		kept := n.Content[:0]
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if decodes(e, t.Elem(), p, problems) {
				prune(e, t.Elem(), p, problems)
				kept = append(kept, e)
			}
		}
		n.Content = kept
	}
}

// decodes reports whether a scalar (or a value of a type that decodes
// itself) fits t, recording why not.
func decodes(n *yaml.Node, t reflect.Type, path string, problems *[]error) bool {
	if n.Kind != yaml.ScalarNode && !reflect.PointerTo(t).Implements(unmarshalerType) {
		return true // mappings and sequences are checked key by key
	}
	if n.Kind != yaml.ScalarNode && t.Kind() == reflect.Struct {
		return true
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
		*problems = append(*problems, fmt.Errorf("%s: %s", path, msg))
		return false
	}
	return true
}

// Load reads and validates the file at path.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
