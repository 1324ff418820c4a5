package sipgw

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/switchboard-voice/switchboard/internal/config"
)

// Digest authentication of REGISTER and INVITE (RFC 3261 §22.4, RFC 7616;
// SHA-256 answers as RFC 8760 has them). Nonces carry their issue time and an HMAC of it
// under a secret every node shares through the store, so any node can check
// a nonce another node issued and none keeps per-nonce state.

// nonceTTL is how long a nonce is accepted; an older one gets a fresh
// challenge with stale=true so the UA retries without asking its user.
const nonceTTL = 5 * time.Minute

type authResult int

const (
	authNone    authResult = iota // no usable Authorization: challenge
	authOK                        // the credentials are right
	authStale                     // right credentials on an expired nonce: challenge with stale=true
	authFailed                    // wrong password, unknown user, bad nonce: 403
	authBadUser                   // right credentials for another user than the request is about: 403
	authBadURI                    // credentials for another Request-URI: 400 (RFC 7616 §3.4.6)
)

type digester struct {
	realm  string
	secret []byte
	now    func() time.Time
}

// nonce returns a fresh nonce: the issue time and its HMAC, hex-encoded.
func (d *digester) nonce() string {
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(d.now().Unix()))
	return hex.EncodeToString(ts[:]) + hex.EncodeToString(d.mac(ts[:]))
}

func (d *digester) mac(ts []byte) []byte {
	m := hmac.New(sha256.New, d.secret)
	m.Write(ts)
	m.Write([]byte(d.realm))
	return m.Sum(nil)[:16]
}

// checkNonce reports whether n is a nonce this realm issued, and whether
// it is still fresh.
func (d *digester) checkNonce(n string) (valid, fresh bool) {
	raw, err := hex.DecodeString(n)
	if err != nil || len(raw) != 8+16 {
		return false, false
	}
	if !hmac.Equal(raw[8:], d.mac(raw[:8])) {
		return false, false
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(raw[:8])), 0)
	age := d.now().Sub(issued)
	return true, age >= -time.Minute && age <= nonceTTL
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
// exists.
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
	valid, fresh := d.checkNonce(cred.Nonce)
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
	}
	return authOK, u, tenantID
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
