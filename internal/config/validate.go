package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"
)

var (
	guidRE  = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	e164RE  = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	sipUser = regexp.MustCompile(`^[A-Za-z0-9._~+-]+$`)
)

// Permissions lists the application permissions Switchboard knows.
var Permissions = []string{
	"Calls.Initiate.All", "Calls.InitiateGroupCall.All", "Calls.JoinGroupCall.All",
	"Calls.JoinGroupCallAsGuest.All", "Calls.AccessMedia.All", "OnlineMeetings.Read.All",
	"OnlineMeetings.ReadWrite.All", "CallRecords.Read.All",
}

// IsGUID reports whether s is a GUID with dashes.
func IsGUID(s string) bool { return guidRE.MatchString(s) }

// Validate returns every problem in c, each naming its key path.
func (c *Config) Validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		bad("http.listen", "%q is not host:port", c.HTTP.Listen)
	}
	if u, err := url.Parse(c.HTTP.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("http.publicUrl", "%q is not an http(s) URL", c.HTTP.PublicURL)
	} else if strings.HasSuffix(c.HTTP.PublicURL, "/") {
		c.HTTP.PublicURL = strings.TrimRight(c.HTTP.PublicURL, "/")
	}
	if c.HTTP.MaxBodyBytes < 1024 {
		bad("http.maxBodyBytes", "must be at least 1024")
	}
	if c.HTTP.RequestsPerSecond <= 0 || c.HTTP.Burst < 1 {
		bad("http.requestsPerSecond", "requestsPerSecond must be > 0 and burst >= 1")
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		bad("http.tlsCert", "tlsCert and tlsKey go together")
	}
	if c.SIP.Listen != "" {
		if _, _, err := net.SplitHostPort(c.SIP.Listen); err != nil {
			bad("sip.listen", "%q is not host:port", c.SIP.Listen)
		}
	}
	if (c.SIP.TLSCert == "") != (c.SIP.TLSKey == "") {
		bad("sip.tlsCert", "tlsCert and tlsKey go together")
	}
	if c.SIP.RegisterExpiry.D() < 60e9 {
		bad("sip.registerExpiry", "must be at least 1m")
	}
	seenOperator := map[string]bool{}
	for i, u := range c.Console.Users {
		key := fmt.Sprintf("console.users[%d]", i)
		switch {
		case u.Name == "" || strings.ContainsAny(u.Name, ":\r\n"):
			bad(key+".name", "required, without ':' or line breaks")
		case seenOperator[u.Name]:
			bad(key+".name", "%q is listed twice", u.Name)
		}
		seenOperator[u.Name] = true
		if len(u.Password) < 8 {
			bad(key+".password", "at least 8 characters")
		}
	}
	if w := c.WebRTC; w.PublicIP != "" {
		if _, err := netip.ParseAddr(w.PublicIP); err != nil {
			bad("webrtc.publicIp", "%q is not an IP address", w.PublicIP)
		}
	}
	if w := c.WebRTC; w.UDPPortMin < 0 || w.UDPPortMax > 65535 || w.UDPPortMin > w.UDPPortMax || (w.UDPPortMin == 0) != (w.UDPPortMax == 0) {
		bad("webrtc.udpPortMin", "udpPortMin and udpPortMax go together, 1-65535, min <= max")
	}
	if c.SIP.InvitesPerSecond <= 0 {
		bad("sip.invitesPerSecond", "must be positive")
	}
	if a := c.SIP.Abuse; a.RequestsPerSecond < 0 || (a.RequestsPerSecond > 0 && a.Burst < 1) {
		bad("sip.abuse.requestsPerSecond", "requestsPerSecond must be >= 0 (0: off) and burst >= 1")
	}
	if w := c.SIP.WS; w.MaxConnsPerSource < 0 {
		bad("sip.ws.maxConnsPerSource", "must be >= 0 (0: off)")
	}
	if w := c.SIP.WS; w.ConnsPerSecond < 0 || (w.ConnsPerSecond > 0 && w.ConnBurst < 1) {
		bad("sip.ws.connsPerSecond", "connsPerSecond must be >= 0 (0: off) and connBurst >= 1")
	}
	if a := c.SIP.Abuse; a.MaxAuthFailures < 0 {
		bad("sip.abuse.maxAuthFailures", "must be >= 0 (0: no bans)")
	} else if a.MaxAuthFailures > 0 {
		if a.AuthFailureWindow.D() <= 0 {
			bad("sip.abuse.authFailureWindow", "must be positive")
		}
		if d := a.BanTime.D(); d < 1e9 || d > 24*3600e9 {
			bad("sip.abuse.banTime", "%v is not within 1s-24h", d)
		}
	}
	trunkNames := map[string]bool{}
	for i, t := range c.SIP.Trunks {
		p := fmt.Sprintf("sip.trunks[%d]", i)
		if t.Name == "" || trunkNames[t.Name] {
			bad(p+".name", "must be set and unique")
		}
		trunkNames[t.Name] = true
		if _, _, err := net.SplitHostPort(t.Address); err != nil {
			bad(p+".address", "%q is not host:port", t.Address)
		}
		for j, a := range t.AllowFrom {
			if net.ParseIP(a) == nil {
				if _, _, err := net.ParseCIDR(a); err != nil {
					bad(fmt.Sprintf("%s.allowFrom[%d]", p, j), "%q is neither an IP nor a CIDR", a)
				}
			}
		}
		switch t.Transport {
		case "", "udp", "tcp":
		default:
			bad(p+".transport", "%q is not udp or tcp", t.Transport)
		}
	}
	for i, a := range c.SIP.Proxies {
		if net.ParseIP(a) == nil {
			if _, _, err := net.ParseCIDR(a); err != nil {
				bad(fmt.Sprintf("sip.proxies[%d]", i), "%q is neither an IP nor a CIDR", a)
			}
		}
	}
	if net.ParseIP(c.Media.BindIP) == nil {
		bad("media.bindIp", "%q is not an IP address", c.Media.BindIP)
	}
	if c.Media.RTPPortMin < 1024 || c.Media.RTPPortMax > 65535 || c.Media.RTPPortMax-c.Media.RTPPortMin < 2 {
		bad("media.rtpPortMin", "the RTP port range %d-%d must lie in 1024-65535 and hold at least two ports", c.Media.RTPPortMin, c.Media.RTPPortMax)
	}
	if c.Media.InactivityTimeout.D() < 0 {
		bad("media.inactivityTimeout", "must not be negative")
	}
	if d := c.Media.Socket.SendBuffer.D(); d < 20e6 || d > 2e9 {
		bad("media.socket.sendBuffer", "%v is not within 20ms-2s", d)
	}
	if d := c.Media.Socket.ReconnectWindow.D(); d < 1e9 || d > 3600e9 {
		bad("media.socket.reconnectWindow", "%v is not within 1s-1h", d)
	}
	if c.Media.RecordingsMaxBytes < 0 {
		bad("media.recordingsMaxBytes", "%d is negative (0: no bound)", c.Media.RecordingsMaxBytes)
	}
	if c.Media.RecordingRetention.D() < 10*60e9 {
		bad("media.recordingRetention", "must be at least 10m (a recording's first chunks would expire before a long one ends)")
	}
	if h := c.Media.HoldMusic; h != "" {
		if u, err := url.Parse(h); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("media.holdMusic", "%q is not an http(s) URL of a WAV file", h)
		}
	}
	if c.DataDir == "" {
		bad("dataDir", "must be set")
	}
	if c.NATS.URL != "" {
		// Several servers separated by commas, as nats.go takes them.
		for _, s := range strings.Split(c.NATS.URL, ",") {
			s = strings.TrimSpace(s)
			if u, err := url.Parse(s); err != nil || u.Host == "" {
				bad("nats.url", "%q is not a nats:// URL", s)
			}
		}
	}
	if c.NATS.URL == "" && c.NATS.Replicas > 1 {
		bad("nats.replicas", "%d needs an external cluster (nats.url): the embedded server is one", c.NATS.Replicas)
	}
	if c.NATS.Replicas < 1 || c.NATS.Replicas > 5 {
		bad("nats.replicas", "must be 1 to 5")
	}
	if d := c.Cluster.NodeLease.D(); d < 3e9 || d > 600e9 {
		bad("cluster.nodeLease", "%v is not within 3s-10m (a shorter lease takes a node for lost on a NATS failover)", d)
	}
	if h := c.Cluster.HTTPURL; h != "" {
		if u, err := url.Parse(h); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
			bad("cluster.httpUrl", "%q is not an http(s) URL of a node's listener (scheme and host:port, no path)", h)
		}
	}
	if c.Identity.TokenLifetime.D() < 60e9 {
		bad("identity.tokenLifetime", "must be at least 1m")
	}
	if c.Identity.NotificationTokenLifetime.D() < 60e9 {
		bad("identity.notificationTokenLifetime", "must be at least 1m")
	}
	if c.Identity.KeyRotation.D() <= c.Identity.TokenLifetime.D() {
		bad("identity.keyRotation", "must be longer than identity.tokenLifetime")
	}
	if tt := c.Identity.TokenThrottle; tt.RequestsPerSecond < 0 || (tt.RequestsPerSecond > 0 && tt.Burst < 1) {
		bad("identity.tokenThrottle.requestsPerSecond", "requestsPerSecond must be >= 0 (0: off) and burst >= 1")
	}
	if tt := c.Identity.TokenThrottle; tt.MaxFailures < 0 || tt.MaxClientFailures < 0 {
		bad("identity.tokenThrottle.maxFailures", "maxFailures and maxClientFailures must be >= 0 (0: off)")
	} else if tt.MaxFailures > 0 || tt.MaxClientFailures > 0 {
		if tt.FailureWindow.D() <= 0 {
			bad("identity.tokenThrottle.failureWindow", "must be positive")
		}
		if d := tt.Lockout.D(); d < 1e9 || d > 24*3600e9 {
			bad("identity.tokenThrottle.lockout", "%v is not within 1s-24h", d)
		}
	}
	if c.Calls.AnswerTimeout.D() <= 0 {
		bad("calls.answerTimeout", "must be positive")
	}
	if c.Calls.KeepAliveTimeout.D() <= 0 {
		bad("calls.keepAliveTimeout", "must be positive")
	}
	if c.Calls.RingTimeout.D() <= 0 {
		bad("calls.ringTimeout", "must be positive")
	}
	if c.Calls.DrainTimeout.D() < 0 {
		bad("calls.drainTimeout", "must not be negative")
	}
	if c.Runtime.GCPercent < -1 {
		bad("runtime.gcPercent", "%d is below -1 (-1: the collector off)", c.Runtime.GCPercent)
	}
	if c.Runtime.MemoryLimit < 0 {
		bad("runtime.memoryLimit", "%d is negative (0: no limit)", c.Runtime.MemoryLimit)
	}
	if c.Runtime.GCPercent == -1 && c.Runtime.MemoryLimit == 0 {
		bad("runtime.gcPercent", "-1 turns the collector off: set runtime.memoryLimit too, or the heap grows without bound")
	}
	if c.Calls.MaxConcurrentPerApp < 1 {
		bad("calls.maxConcurrentPerApp", "must be at least 1")
	}
	if c.Calls.MaxConcurrent < 0 {
		bad("calls.maxConcurrent", "must not be negative (0: no cap)")
	}
	if p := c.Calls.Overload.MaxLateTickPercent; p < 0 || p > 100 {
		bad("calls.overload.maxLateTickPercent", "must be between 0 (off) and 100")
	}
	if c.Calls.Overload.MaxNotificationBacklog < 0 {
		bad("calls.overload.maxNotificationBacklog", "must not be negative (0: off)")
	}
	if d := c.Calls.Overload.RetryAfter.D(); d < time.Second || d > time.Hour {
		bad("calls.overload.retryAfter", "must be between 1s and 1h")
	}
	if c.Notifications.Timeout.D() <= 0 || c.Notifications.MaxAge.D() <= 0 {
		bad("notifications", "timeout and maxAge must be positive")
	}
	if c.Notifications.Workers < 1 {
		bad("notifications.workers", "must be at least 1")
	}
	for i, a := range c.Outbound.Allow {
		if _, _, err := net.ParseCIDR(a); err != nil && net.ParseIP(a) == nil && strings.ContainsAny(a, "/: ") {
			bad(fmt.Sprintf("outbound.allow[%d]", i), "%q is neither a CIDR, an IP nor a host name", a)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not text or json", c.Log.Format)
	}

	tenants := map[string]bool{}
	users := map[string]string{}
	userTenant := map[string]string{} // lower-case user id -> lower-case tenant id
	sipNames := map[string]string{}
	phones := map[string]string{}
	for i, t := range c.Tenants {
		p := fmt.Sprintf("tenants[%d]", i)
		if !IsGUID(t.ID) {
			bad(p+".id", "%q is not a GUID", t.ID)
		} else if tenants[strings.ToLower(t.ID)] {
			bad(p+".id", "%s appears twice", t.ID)
		}
		tenants[strings.ToLower(t.ID)] = true
		if n := t.Conferencing.TollNumber; n != "" {
			// Checked against users' phones and apps' numbers below: a
			// call to it must reach the conference, not someone's phone.
			if !e164RE.MatchString(n) {
				bad(p+".conferencing.tollNumber", "%q is not E.164 (+15550100)", n)
			} else if prev, ok := phones[n]; ok {
				bad(p+".conferencing.tollNumber", "%s is also %s", n, prev)
			}
			phones[n] = p + ".conferencing.tollNumber"
		}
		for j, u := range t.Users {
			up := fmt.Sprintf("%s.users[%d]", p, j)
			if !IsGUID(u.ID) {
				bad(up+".id", "%q is not a GUID", u.ID)
			} else if prev, ok := users[strings.ToLower(u.ID)]; ok {
				bad(up+".id", "%s is also %s", u.ID, prev)
			}
			users[strings.ToLower(u.ID)] = up
			userTenant[strings.ToLower(u.ID)] = strings.ToLower(t.ID)
			if u.DisplayName == "" {
				bad(up+".displayName", "must be set")
			}
			if u.SIP.Username != "" {
				if !sipUser.MatchString(u.SIP.Username) {
					bad(up+".sip.username", "%q has characters a SIP user part cannot", u.SIP.Username)
				} else if prev, ok := sipNames[u.SIP.Username]; ok {
					bad(up+".sip.username", "%q is also %s's", u.SIP.Username, prev)
				}
				sipNames[u.SIP.Username] = up
				if u.SIP.Password == "" {
					bad(up+".sip.password", "must be set with sip.username")
				}
			}
			if u.Phone != "" {
				if !e164RE.MatchString(u.Phone) {
					bad(up+".phone", "%q is not E.164 (+15550100)", u.Phone)
				} else if prev, ok := phones[u.Phone]; ok {
					bad(up+".phone", "%s is also %s", u.Phone, prev)
				}
				phones[u.Phone] = up
			}
			switch u.Simulation.Answer {
			case "", "accept", "busy", "decline", "noAnswer", "unreachable":
			default:
				bad(up+".simulation.answer", "%q is not accept, busy, decline, noAnswer or unreachable", u.Simulation.Answer)
			}
			for _, ch := range u.Simulation.DTMF {
				if !strings.ContainsRune("0123456789*#ABCD", ch) {
					bad(up+".simulation.dtmf", "%q is not a DTMF key", ch)
					break
				}
			}
		}
	}

	apps := map[string]bool{}
	for i, a := range c.Applications {
		p := fmt.Sprintf("applications[%d]", i)
		if !IsGUID(a.ID) {
			bad(p+".id", "%q is not a GUID", a.ID)
		} else if apps[strings.ToLower(a.ID)] {
			bad(p+".id", "%s appears twice", a.ID)
		}
		apps[strings.ToLower(a.ID)] = true
		if len(a.Secret) < 8 {
			bad(p+".secret", "must be at least 8 characters")
		}
		if len(a.Tenants) == 0 {
			bad(p+".tenants", "must list at least one tenant")
		}
		for j, t := range a.Tenants {
			if !tenants[strings.ToLower(t)] {
				bad(fmt.Sprintf("%s.tenants[%d]", p, j), "%q is not a configured tenant", t)
			}
		}
		for j, perm := range a.Permissions {
			if !knownPermission(perm) {
				bad(fmt.Sprintf("%s.permissions[%d]", p, j), "%q is not one of %s", perm, strings.Join(Permissions, ", "))
			}
		}
		if a.CallbackURI != "" {
			if err := c.CheckCallbackURI(a.CallbackURI); err != nil {
				bad(p+".callbackUri", "%v", err)
			}
		}
		switch a.MediaMode {
		case "", "service", "app":
		default:
			bad(p+".mediaMode", "%q is not service or app", a.MediaMode)
		}
		for j, n := range a.Numbers {
			np := fmt.Sprintf("%s.numbers[%d]", p, j)
			if !e164RE.MatchString(n.Number) && !sipUser.MatchString(n.Number) {
				bad(np, "%q is neither E.164 nor a SIP user", n.Number)
			}
			if prev, ok := phones[n.Number]; ok {
				bad(np, "%s is also %s", n.Number, prev)
			}
			phones[n.Number] = np
			if n.Tenant == "" && len(a.Tenants) > 1 {
				bad(np+".tenant", "must be set: the application serves several tenants")
			}
			if n.Tenant != "" && !contains(a.Tenants, n.Tenant) {
				bad(np+".tenant", "%q is not one of the application's tenants", n.Tenant)
			}
			if n.InstanceID != "" && !IsGUID(n.InstanceID) {
				bad(np+".instanceId", "%q is not a GUID", n.InstanceID)
			}
		}
		for j, u := range a.MeetingUsers {
			if t, ok := userTenant[strings.ToLower(u)]; !ok || !contains(a.Tenants, t) {
				bad(fmt.Sprintf("%s.meetingUsers[%d]", p, j), "%q is not a user of the application's tenants", u)
			}
		}
	}
	return errors.Join(errs...)
}

// CheckCallbackURI reports why u cannot be a callback URI: it must be https,
// or http to a loopback host, or http anywhere when the config allows it.
func (c *Config) CheckCallbackURI(u string) error {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", u)
	}
	switch p.Scheme {
	case "https":
		return nil
	case "http":
		if c.Outbound.AllowInsecureCallbacks || isLoopback(p.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q must be https (http is accepted only to loopback hosts or with outbound.allowInsecureCallbacks)", u)
	}
	return fmt.Errorf("%q must be an https URL", u)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func knownPermission(p string) bool { return contains(Permissions, p) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
