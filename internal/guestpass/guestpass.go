// Package guestpass makes and checks the short-lived credentials a
// meeting's join page gives an anonymous guest in the browser: good for
// one meeting only, for a few minutes, and for nothing else.
//
// A pass is a SIP digest username and password. The username says what
// the pass is for — guest-{conferenceId}-{expiry}-{guestId} — and the
// password is an HMAC of the username under a key every node shares, so
// nothing is stored: a node recomputes the password from the username,
// and only a holder of the key (the join page) can make a password that
// answers a digest challenge. Changing the meeting or the expiry in the
// username changes the password it needs. The SIP edge lets a guest
// INVITE only sip:meeting-{conferenceId}@… of its own pass (no REGISTER,
// no other target: a pass is no way to place calls), and the join page's
// roster stream takes the same username and password.
package guestpass

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Prefix starts every guest username; configured users may not use it
// (a SIP username with it is never looked up among them).
const Prefix = "guest-"

// TTL is how long a pass minted by the join page may start a call: long
// enough to allow the microphone and type a name, short enough that a
// pass copied off a screen is soon worthless. A call already in the
// meeting is not ended when its pass expires.
const TTL = 10 * time.Minute

// Errors of Check.
var (
	// ErrNotGuest: the username is not a guest pass's.
	ErrNotGuest = errors.New("not a guest pass")
	// ErrForged: the password is not the one the username needs.
	ErrForged = errors.New("guest pass not valid")
	// ErrExpired: the pass is past its expiry.
	ErrExpired = errors.New("guest pass expired")
)

// Pass is one guest's credentials and what they are for.
type Pass struct {
	User     string
	Password string
	Claims
}

// Claims are what a pass's username says.
type Claims struct {
	// ConferenceID is the meeting's audioConferencing.conferenceId: the
	// only meeting the pass joins (its SIP URI is meeting-{ConferenceID}).
	ConferenceID string
	// GuestID is random per pass: the guest's identity in the roster.
	GuestID string
	Expires time.Time
}

// Keys mints and checks passes. It is safe for concurrent use.
type Keys struct {
	key []byte
	now func() time.Time
}

// New returns Keys under secret (at least 32 bytes, the same on every
// node); now is the clock of expiries (time.Now when nil).
func New(secret []byte, now func() time.Time) *Keys {
	if now == nil {
		now = time.Now
	}
	// A key of its own, derived so that a pass's password is never a
	// value the secret's other uses (SIP nonces) produce.
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("switchboard guest pass v1"))
	return &Keys{key: m.Sum(nil), now: now}
}

// Mint makes a pass for the meeting with conferenceID, expiring after
// ttl.
func (k *Keys) Mint(conferenceID string, ttl time.Duration) Pass {
	var b [8]byte
	_, _ = rand.Read(b[:])
	c := Claims{ConferenceID: conferenceID, GuestID: hex.EncodeToString(b[:]), Expires: k.now().Add(ttl).Truncate(time.Second)}
	user := Prefix + conferenceID + "-" + strconv.FormatInt(c.Expires.Unix(), 10) + "-" + c.GuestID
	return Pass{User: user, Password: k.Password(user), Claims: c}
}

// Password is the password username needs: the digest's shared secret.
func (k *Keys) Password(username string) string {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte(username))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// Parse reads a guest username's claims, checking only its form.
func Parse(username string) (Claims, error) {
	rest, ok := strings.CutPrefix(username, Prefix)
	if !ok {
		return Claims{}, ErrNotGuest
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 3 || !digits(parts[0]) || !digits(parts[1]) || len(parts[2]) != 16 {
		return Claims{}, ErrNotGuest
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return Claims{}, ErrNotGuest
	}
	if _, err := hex.DecodeString(parts[2]); err != nil {
		return Claims{}, ErrNotGuest
	}
	return Claims{ConferenceID: parts[0], Expires: time.Unix(exp, 0), GuestID: parts[2]}, nil
}

// Check verifies a username and password given in plain (the join page's
// roster stream; SIP checks them by digest with Password): ErrNotGuest,
// ErrForged or ErrExpired, or the pass's claims. The password is compared
// in constant time.
func (k *Keys) Check(username, password string) (Claims, error) {
	c, err := Parse(username)
	if err != nil {
		return Claims{}, err
	}
	if subtle.ConstantTimeCompare([]byte(password), []byte(k.Password(username))) != 1 {
		return Claims{}, ErrForged
	}
	if k.Expired(c) {
		return c, ErrExpired
	}
	return c, nil
}

// Expired reports whether c's pass may no longer start a call.
func (k *Keys) Expired(c Claims) bool { return !k.now().Before(c.Expires) }

func digits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
