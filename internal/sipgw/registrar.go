package sipgw

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/store"
)

// The registrar (RFC 3261 §10.3). Bindings live in the JetStream bucket
// sb_registrations, one key per configured user, so every node sees every
// contact; updates are compare-and-set.

const (
	// minExpires is the shortest registration accepted (423 below it).
	minExpires = 60 * time.Second
	// defaultExpires applies when a REGISTER names no expiry.
	defaultExpires = time.Hour
	// maxBindings bounds the contacts kept per user; the ones closest to
	// expiry give way.
	maxBindings = 10
)

// binding is one registered contact of a user.
type binding struct {
	Contact   string    `json:"contact"`
	Expires   time.Time `json:"expires"`
	Source    string    `json:"source"`    // host:port the REGISTER came from
	Transport string    `json:"transport"` // UDP, TCP or TLS, as it came
	CallID    string    `json:"callId"`
	CSeq      uint32    `json:"cseq"`
	// Path is the proxies the REGISTER came through that asked to stay on
	// the way to this contact (RFC 3327), first the one nearest to us:
	// requests to the contact carry it as their Route set, so a node
	// reaches a phone through the Kamailio it registered through. A
	// browser's is the node holding its WebSocket, with a flow token
	// (flow.go).
	Path []string `json:"path,omitempty"`
}

type aorRecord struct {
	Bindings []binding `json:"bindings"`
}

func aorKey(username string) string { return "aor." + hex.EncodeToString([]byte(username)) }

// ours reports whether host names this registrar: its domain, or the
// address it listens on (any address when it listens on a wildcard).
func (g *Gateway) ours(host string) bool {
	if strings.EqualFold(host, g.cfg.SIP.Domain) {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return strings.EqualFold(host, "localhost") && g.addr.Addr().IsLoopback()
	}
	return ip.Unmap() == g.addr.Addr() || g.laddr.IP.IsUnspecified()
}

func (g *Gateway) lookupUser(username string) (*config.User, string, bool) {
	tid, u, ok := g.dir.UserBySIP(username)
	return u, tid, ok
}

// challenge answers 401 with fresh nonces, statelessly: nonces keep no
// state either, so a flood of unauthenticated requests holds nothing.
func (g *Gateway) challenge(tx sip.ServerTransaction, req *sip.Request, stale bool) {
	g.respondStateless(tx, req, 401, "Unauthorized", g.auth.challenges(stale)...)
}

func (g *Gateway) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	aor := req.To().Address.User
	if sc := strings.ToLower(req.To().Address.Scheme); sc != "sip" && sc != "sips" {
		g.m.register("bad_request")
		g.respond(tx, req, 400, "Bad Request (the To of a REGISTER is a SIP address of record)")
		return
	}
	if aor == "" {
		g.m.register("bad_request")
		g.respond(tx, req, 400, "Bad Request (no user in To)")
		return
	}
	if !g.ours(req.Recipient.Host) {
		g.m.register("not_found")
		g.respond(tx, req, 404, "Not Found (not this registrar's domain)")
		return
	}
	switch res, _, _ := g.auth.verify(req, g.lookupUser, aor); res {
	case authNone:
		g.m.register("challenged")
		g.challenge(tx, req, false)
		return
	case authStale:
		g.m.register("challenged")
		g.challenge(tx, req, true)
		return
	case authBadURI:
		g.m.register("bad_request")
		g.respond(tx, req, 400, "Bad Request (digest uri is not the Request-URI)")
		return
	case authFailed, authBadUser:
		// The same answer for an unknown user, a wrong password and
		// credentials of another user: nothing says who exists.
		g.m.register("forbidden")
		g.authFailed(req)
		g.respondStateless(tx, req, 403, "Forbidden")
		return
	}

	now := g.now()
	hdrExpires := -1
	if h := req.GetHeader("Expires"); h != nil {
		n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
		if err != nil || n < 0 {
			g.m.register("bad_request")
			g.respond(tx, req, 400, "Bad Request (Expires)")
			return
		}
		hdrExpires = n
	}
	type change struct {
		key     string
		uri     string
		expires time.Duration
	}
	var changes []change
	wildcard := false
	for _, h := range req.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			g.respond(tx, req, 400, "Bad Request (Contact)")
			return
		}
		if c.Address.Wildcard {
			wildcard = true
			continue
		}
		exp := defaultExpires
		switch v, ok := c.Params.Get("expires"); {
		case ok:
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				g.respond(tx, req, 400, "Bad Request (Contact expires)")
				return
			}
			exp = time.Duration(n) * time.Second
		case hdrExpires >= 0:
			exp = time.Duration(hdrExpires) * time.Second
		}
		if exp > 0 && exp < minExpires {
			g.respond(tx, req, 423, "Interval Too Brief", sip.NewHeader("Min-Expires", strconv.Itoa(int(minExpires/time.Second))))
			return
		}
		if limit := g.cfg.SIP.RegisterExpiry.D(); limit > 0 && exp > limit {
			exp = limit
		}
		u := c.Address.Clone()
		changes = append(changes, change{key: contactKey(*u), uri: u.String(), expires: exp})
	}
	if wildcard && (len(changes) > 0 || hdrExpires != 0) {
		// RFC 3261 §10.3 step 6: "*" only with Expires: 0 and alone.
		g.respond(tx, req, 400, "Bad Request (Contact: * needs Expires: 0 and no other contact)")
		return
	}

	path := pathOf(req)
	shown := path
	if t := strings.ToUpper(req.Transport()); len(path) == 0 && (t == "WS" || t == "WSS") {
		// A browser: only this node holds its connection, so the others
		// reach it through this node, which relays to the connection the
		// token names (flow.go). The Path is the node's business, not the
		// browser's: it is not shown.
		path = []string{g.flowRoute("TCP", g.flowToken(req.Source()))}
	}
	callID, cseq := callIDOf(req), req.CSeq().SeqNo
	ctx, cancel := context.WithTimeout(g.runCtx, 5*time.Second)
	defer cancel()
	var outOfOrder bool
	rec, err := g.updateAOR(ctx, aor, func(r *aorRecord) {
		outOfOrder = false
		if wildcard {
			r.Bindings = nil
			return
		}
		for _, c := range changes {
			i := slices.IndexFunc(r.Bindings, func(b binding) bool { return contactKeyOf(b.Contact) == c.key })
			if i >= 0 && r.Bindings[i].CallID == callID && cseq <= r.Bindings[i].CSeq {
				outOfOrder = true // step 7: an older REGISTER arriving late
				return
			}
			if i >= 0 {
				r.Bindings = append(r.Bindings[:i], r.Bindings[i+1:]...)
			}
			if c.expires == 0 {
				continue
			}
			r.Bindings = append(r.Bindings, binding{Contact: c.uri, Expires: now.Add(c.expires),
				Source: req.Source(), Transport: strings.ToUpper(req.Transport()), CallID: callID, CSeq: cseq, Path: path})
		}
		if len(r.Bindings) > maxBindings {
			sort.SliceStable(r.Bindings, func(i, j int) bool { return r.Bindings[i].Expires.After(r.Bindings[j].Expires) })
			r.Bindings = r.Bindings[:maxBindings]
		}
	})
	if err != nil {
		g.m.register("error")
		g.log.Error("register: store", "user", aor, "err", err)
		g.respond(tx, req, 500, "Server Internal Error", sip.NewHeader("Retry-After", "5"))
		return
	}
	if outOfOrder {
		g.respond(tx, req, 500, "Server Internal Error (out-of-order REGISTER)")
		return
	}
	switch {
	case wildcard:
		g.m.register("unregistered")
	case len(changes) == 0:
		g.m.register("queried")
	case changes[0].expires == 0:
		g.m.register("unregistered")
	default:
		g.m.register("registered")
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	for _, b := range rec.Bindings {
		var u sip.Uri
		if err := sip.ParseUri(b.Contact, &u); err != nil {
			continue
		}
		c := &sip.ContactHeader{Address: u, Params: sip.NewParams()}
		c.Params.Add("expires", strconv.Itoa(int(b.Expires.Sub(now).Round(time.Second)/time.Second)))
		res.AppendHeader(c)
	}
	if len(shown) > 0 && supports(req, "path") {
		// RFC 3327 §5.3: the UA learns the path its contacts are reached
		// by. To one that does not say it supports Path it is not shown,
		// though it is kept and used all the same (Kamailio's registrar
		// path_mode 0): the proxy asked for it.
		for _, p := range shown {
			res.AppendHeader(sip.NewHeader("Path", p))
		}
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(time.RFC1123)))
	if err := tx.Respond(res); err != nil {
		g.log.Debug("register: respond", "err", err)
	}
}

// updateAOR applies f to a user's bindings (expired ones already dropped)
// with compare-and-set, retrying on conflicts.
func (g *Gateway) updateAOR(ctx context.Context, username string, f func(*aorRecord)) (*aorRecord, error) {
	key := aorKey(username)
	for range 8 {
		var rec aorRecord
		data, rev, err := g.regs.Get(ctx, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			if err := json.Unmarshal(data, &rec); err != nil {
				rec = aorRecord{} // unreadable: start over
			}
		}
		rec.Bindings = live(rec.Bindings, g.now())
		f(&rec)
		out, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		if rev == 0 {
			_, err = g.regs.Create(ctx, key, out)
		} else {
			_, err = g.regs.Update(ctx, key, out, rev)
		}
		if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &rec, nil
	}
	return nil, fmt.Errorf("registrations of %s: too many concurrent updates", username)
}

// bindings returns a user's unexpired contacts, most recently registered
// last.
func (g *Gateway) bindings(ctx context.Context, username string) ([]binding, error) {
	data, _, err := g.regs.Get(ctx, aorKey(username))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec aorRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("registrations of %s: %w", username, err)
	}
	return live(rec.Bindings, g.now()), nil
}

func live(bs []binding, now time.Time) []binding {
	out := bs[:0:0]
	for _, b := range bs {
		if b.Expires.After(now) {
			out = append(out, b)
		}
	}
	return out
}

// contactKey identifies a contact for updates: RFC 3261 §19.1.4
// comparison, simplified to scheme, user, host, port and transport.
func contactKey(u sip.Uri) string {
	t, _ := u.UriParams.Get("transport")
	return strings.ToLower(u.Scheme) + ":" + u.User + "@" + strings.ToLower(u.Host) + ":" + strconv.Itoa(u.Port) + ";" + strings.ToLower(t)
}

func contactKeyOf(s string) string {
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return s
	}
	return contactKey(u)
}

// pathOf is the Path of a REGISTER (RFC 3327 §4), one value per proxy, in
// the order the header fields carry them: the first is the proxy nearest to
// us, the first hop of a request to the contact.
func pathOf(req *sip.Request) []string {
	var out []string
	for _, h := range req.GetHeaders("Path") {
		for _, v := range splitList(h.Value()) {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

// splitList splits a header field's comma-separated values, leaving commas
// inside <> and quotes alone.
func splitList(s string) []string {
	var (
		out   []string
		angle bool
		quote bool
		start int
	)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' && !angle:
			quote = !quote
		case c == '<' && !quote:
			angle = true
		case c == '>' && !quote:
			angle = false
		case c == ',' && !angle && !quote:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// supports reports whether req lists an option tag in its Supported.
func supports(req *sip.Request, tag string) bool {
	for _, h := range req.GetHeaders("Supported") {
		for _, t := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(t), tag) {
				return true
			}
		}
	}
	return false
}
