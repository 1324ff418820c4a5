package sipgw

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/switchboard-voice/switchboard/internal/config"
)

// Digest authentication of REGISTER and INVITE (RFC 3261 §22.4, RFC 7616;
// SHA-256 answers as RFC 8760 has them). Nonces carry their issue time, the
// gateway instance that issued them and a sequence number, under an HMAC
// with a secret every node shares through the store: no node can be handed
// a nonce it did not issue, or one altered, without noticing.
//
// Credentials are good for one request (RFC 7616 §3.4.6, §5.5): their uri
// must be the Request-URI, and each nonce count is accepted once, by the
// instance that issued the nonce, which remembers the highest count it
// accepted per nonce. A nonce another node issued, or this node before a
// restart, is answered with a fresh challenge with stale=true: it could
// only be checked against counts nobody here remembers. A UA that moves
// between nodes pays one round trip per move.

// nonceTTL is how long a nonce is accepted; an older one gets a fresh
// challenge with stale=true so the UA retries without asking its user.
const nonceTTL = 5 * time.Minute

// maxTrackedNonces bounds the nonce counts an instance remembers (about
// 5 MB when full). Only nonces answered with right credentials are
// tracked, never those merely handed out in challenges, and each for at
// most nonceTTL: 2^17 holds a nonce lifetime of INVITEs at the default
// limit of 200 a second (60,000, from UAs that ask for a nonce per call)
// and as many registered UAs again. When it is full the oldest is
// forgotten, and with it every nonce issued up to it that was never used:
// those get a stale challenge instead of a second life.
const maxTrackedNonces = 1 << 17

type authResult int

const (
	authNone    authResult = iota // no usable Authorization: challenge
	authOK                        // the credentials are right
	authStale                     // right credentials on an expired or foreign nonce, or a used count: challenge with stale=true
	authFailed                    // wrong password, unknown user, bad nonce: 403
	authBadUser                   // right credentials for another user than the request is about: 403
	authBadURI                    // credentials for another Request-URI: 400 (RFC 7616 §3.4.6)
)

// A digester issues and checks nonces and credentials for one realm. It is
// safe for concurrent use. Fields other than realm, secret and now need no
// setting up: the instance id is drawn on first use.
type digester struct {
	realm  string
	secret []byte
	now    func() time.Time
	// maxTracked overrides maxTrackedNonces (tests).
	maxTracked int

	initOnce sync.Once
	instance [8]byte // random: this digester's nonces are its own
	seq      atomic.Uint64

	mu   sync.Mutex
	uses nonceUses
}

// Nonce layout, hex-encoded: issue time (Unix seconds), instance, sequence
// number, each 8 bytes big-endian, then 16 bytes of HMAC-SHA256 over them
// and the realm.
const (
	nonceBody       = 24
	nonceMAC        = 16
	legacyNonceBody = 8 // the issue time alone
)

func (d *digester) init() {
	d.initOnce.Do(func() { _, _ = rand.Read(d.instance[:]) })
}

// nonce returns a fresh nonce. It keeps no state: a flood of challenges
// costs no memory.
func (d *digester) nonce() string {
	d.init()
	var b [nonceBody]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(d.now().Unix()))
	copy(b[8:16], d.instance[:])
	binary.BigEndian.PutUint64(b[16:24], d.seq.Add(1))
	return hex.EncodeToString(b[:]) + hex.EncodeToString(d.mac(b[:]))
}

func (d *digester) mac(body []byte) []byte {
	m := hmac.New(sha256.New, d.secret)
	m.Write(body)
	m.Write([]byte(d.realm))
	return m.Sum(nil)[:nonceMAC]
}

// checkNonce reports whether n is a nonce of this realm's secret, and
// whether this instance issued it and it is still fresh; seq and issued
// identify it among this instance's nonces.
func (d *digester) checkNonce(n string) (valid, fresh bool, seq uint64, issued time.Time) {
	d.init()
	raw, err := hex.DecodeString(n)
	if err == nil && len(raw) == legacyNonceBody+nonceMAC {
		// A nonce of the layout before instances and sequence numbers,
		// held by a UA across the upgrade: never good again, but right
		// credentials on it get a stale challenge, not a plain one, which
		// UAs built on libre take for a wrong password.
		return hmac.Equal(raw[legacyNonceBody:], d.mac(raw[:legacyNonceBody])), false, 0, time.Time{}
	}
	if err != nil || len(raw) != nonceBody+nonceMAC {
		return false, false, 0, time.Time{}
	}
	if !hmac.Equal(raw[nonceBody:], d.mac(raw[:nonceBody])) {
		return false, false, 0, time.Time{}
	}
	issued = time.Unix(int64(binary.BigEndian.Uint64(raw[0:8])), 0)
	seq = binary.BigEndian.Uint64(raw[16:24])
	age := d.now().Sub(issued)
	ours := [8]byte(raw[8:16]) == d.instance
	return true, ours && age >= -time.Minute && age <= nonceTTL, seq, issued
}

// challenges returns the WWW-Authenticate header of a 401. It offers MD5
// only: RFC 8760 lets a server add a SHA-256 challenge, but UAs built on
// libre (baresip 1.0) give up on a 401 holding an algorithm they do not
// know instead of skipping it. verify still takes SHA-256 answers to our
// nonces, from UAs configured for it.
func (d *digester) challenges(stale bool) []sip.Header {
	c := digest.Challenge{Realm: d.realm, Nonce: d.nonce(), Algorithm: "MD5", QOP: []string{"auth"}, Stale: stale}
	return []sip.Header{sip.NewHeader("WWW-Authenticate", c.String())}
}

// verify checks req's Authorization against the configured users. forUser,
// when set, is the user the request must be about (the AOR of a REGISTER).
// It compares in constant time and does the same work for unknown users as
// for known ones, so neither the answer nor its timing says whether a user
// exists. Only credentials it accepts use their nonce count up.
func (d *digester) verify(req *sip.Request, lookup func(username string) (*config.User, string, bool), forUser string) (authResult, *config.User, string) {
	h := req.GetHeader("Authorization")
	if h == nil {
		return authNone, nil, ""
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil || cred.Username == "" || cred.Response == "" || cred.Nonce == "" || cred.URI == "" {
		return authNone, nil, ""
	}
	if cred.Realm != d.realm {
		// Credentials for another realm are no answer to our challenge.
		return authNone, nil, ""
	}
	var newHash func() hash.Hash
	switch strings.ToUpper(cred.Algorithm) {
	case "", "MD5":
		newHash = md5.New
	case "SHA-256":
		newHash = sha256.New
	default:
		return authNone, nil, ""
	}
	if cred.QOP != "" && cred.QOP != "auth" {
		return authNone, nil, ""
	}
	// The response covers the method and the uri parameter, not the
	// Request-URI: unless they are the same resource, the credentials were
	// made for another request (RFC 7616 §3.4.6 asks for a 400).
	var uri sip.Uri
	if err := sip.ParseUri(cred.URI, &uri); err != nil || !sameURI(uri, req.Recipient) {
		return authBadURI, nil, ""
	}
	valid, fresh, seq, issued := d.checkNonce(cred.Nonce)
	u, tenantID, known := lookup(cred.Username)
	password := "\x00not-a-password"
	if known {
		password = u.SIP.Password
	}
	ha1 := hexHash(newHash, cred.Username+":"+d.realm+":"+password)
	ha2 := hexHash(newHash, string(req.Method)+":"+cred.URI)
	var want string
	if cred.QOP == "" {
		want = hexHash(newHash, ha1+":"+cred.Nonce+":"+ha2)
	} else {
		want = hexHash(newHash, ha1+":"+cred.Nonce+":"+fmt.Sprintf("%08x", cred.Nc)+":"+cred.Cnonce+":"+cred.QOP+":"+ha2)
	}
	match := subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(cred.Response))) == 1
	switch {
	case !valid:
		// Not a nonce of ours (another realm's secret, a forgery): a fresh
		// challenge, whatever the user; the answer says nothing about it.
		return authNone, nil, ""
	case !known || !match:
		return authFailed, nil, ""
	case !fresh:
		return authStale, nil, ""
	case forUser != "" && forUser != cred.Username:
		return authBadUser, nil, ""
	case !d.use(seq, issued, cred.QOP != "", cred.Nc):
		// A replay, or a UA's requests arriving out of order: either way
		// the right answer is a new nonce, without asking the user.
		return authStale, nil, ""
	}
	return authOK, u, tenantID
}

// use records that this instance's nonce seq answered a request with
// nonce count nc, and reports whether that is the first use of the count:
// with qop=auth each count must exceed the highest accepted before for
// the nonce (RFC 7616 §3.4; counts may skip, as after a UA's failed
// request). Without qop (RFC 2069, which RFC 3261 §22.4 still lets UAs
// answer with) there is no count to tell requests apart, so such a nonce
// answers one request and then no other, with or without qop. Strictly
// increasing also refuses an honest UA's two requests that overtook each
// other; the stale challenge costs it one round trip, and keeps the table
// one number per nonce.
func (d *digester) use(seq uint64, issued time.Time, qop bool, nc int) bool {
	limit := d.maxTracked
	if limit <= 0 {
		limit = maxTrackedNonces
	}
	n := uint32(math.MaxUint32) // used up
	if qop {
		if nc <= 0 {
			return false
		}
		n = uint32(nc)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.uses.use(seq, issued, qop, n, d.now(), limit)
}

// nonceUses is the highest accepted nonce count per nonce of one instance,
// for at most limit nonces, forgotten in the order they were first used.
// The zero value is empty.
type nonceUses struct {
	last  map[uint64]uint32 // sequence number → highest accepted count
	ring  []trackedNonce    // the tracked nonces in order of first use
	head  int               // ring index of the oldest
	n     int
	floor uint64 // the highest sequence number forgotten: nonces up to it, untracked, count as used
}

type trackedNonce struct {
	seq    uint64
	issued int64 // Unix seconds
}

func (u *nonceUses) use(seq uint64, issued time.Time, qop bool, nc uint32, now time.Time, limit int) bool {
	last, tracked := u.last[seq]
	switch {
	case !tracked && seq <= u.floor:
		// Used and forgotten, or issued before one that was: its
		// history is gone, so it gets no (second) first use.
		return false
	case tracked && (!qop || nc <= last):
		return false
	case tracked:
		u.last[seq] = nc
		return true
	}
	if u.last == nil {
		u.last = make(map[uint64]uint32)
	}
	// Nonces past their lifetime are refused as stale anyway; forgetting
	// them (and everything issued before them, see floor) costs nothing.
	for u.n > 0 && now.Unix()-u.ring[u.head].issued > int64(nonceTTL/time.Second) {
		u.forgetOldest()
	}
	if u.n == len(u.ring) && len(u.ring) < limit {
		// Grown as needed: most gateways never track many.
		ring := make([]trackedNonce, min(limit, max(64, 2*len(u.ring))))
		for i := range u.n {
			ring[i] = u.ring[(u.head+i)%len(u.ring)]
		}
		u.ring, u.head = ring, 0
	}
	if u.n == len(u.ring) {
		u.forgetOldest()
	}
	u.ring[(u.head+u.n)%len(u.ring)] = trackedNonce{seq: seq, issued: issued.Unix()}
	u.n++
	u.last[seq] = nc
	return true
}

func (u *nonceUses) forgetOldest() {
	old := u.ring[u.head]
	delete(u.last, old.seq)
	u.floor = max(u.floor, old.seq)
	u.head = (u.head + 1) % len(u.ring)
	u.n--
}

// sameURI reports whether a and b are the same SIP URI by the rules of
// RFC 3261 §19.1.4, stricter only in comparing userinfo and header values
// as written, without undoing %HH escapes. Other schemes (tel:) compare as
// written.
//
// Why not the exact string, as some servers compare: sipgo's client (and
// UAs built like it) put the Request-URI without its parameters into the
// digest uri (sip.Uri.Addr), so a Request-URI with ;transport=tcp would fail
// a UA that did nothing wrong. Why that is still safe: what §19.1.4 lets
// differ (a parameter in one URI only, other than user, ttl, method and
// maddr; the case of the scheme, the host and the parameters) does not make
// another resource; the gateway routes on scheme, user and host, which must
// match, and the same resource twice is what the nonce count guards.
func sameURI(a, b sip.Uri) bool {
	if !strings.EqualFold(a.Scheme, b.Scheme) {
		return false
	}
	sc := strings.ToLower(a.Scheme)
	if sc != "sip" && sc != "sips" {
		return a.Raw() == b.Raw()
	}
	if a.Wildcard || b.Wildcard || a.User != b.User || a.Password != b.Password ||
		!strings.EqualFold(a.Host, b.Host) || a.Port != b.Port {
		return false
	}
	for _, p := range a.UriParams {
		if v, ok := paramFold(b.UriParams, p.K); ok {
			if !strings.EqualFold(v, p.V) {
				return false
			}
		} else if mustMatchParam(p.K) {
			return false
		}
	}
	for _, p := range b.UriParams {
		if _, ok := paramFold(a.UriParams, p.K); !ok && mustMatchParam(p.K) {
			return false
		}
	}
	if len(a.Headers) != len(b.Headers) {
		return false
	}
	for _, h := range a.Headers {
		if v, ok := paramFold(b.Headers, h.K); !ok || v != h.V {
			return false
		}
	}
	return true
}

// mustMatchParam reports whether a URI parameter present in one URI only
// makes two URIs differ (RFC 3261 §19.1.4).
func mustMatchParam(k string) bool {
	switch strings.ToLower(k) {
	case "user", "ttl", "method", "maddr":
		return true
	}
	return false
}

func paramFold(ps sip.HeaderParams, k string) (string, bool) {
	for _, p := range ps {
		if strings.EqualFold(p.K, k) {
			return p.V, true
		}
	}
	return "", false
}

func hexHash(newHash func() hash.Hash, s string) string {
	h := newHash()
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}
