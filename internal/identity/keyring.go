package identity

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/store"
)

// keyringKey is the one key of the bucket the keyring lives under. The whole
// keyring is one value so that a compare-and-set on its revision makes every
// change (rotate, retire, drop) atomic across nodes.
const keyringKey = "keyring"

// keyBits is the RSA modulus size of signing keys.
const keyBits = 2048

// KeyringOptions configure OpenKeyring. Zero values take the defaults.
type KeyringOptions struct {
	// Rotation is how long a key signs before it is replaced (default 30 days).
	// Run publishes the next key Rotation/4 ahead, so that relying parties
	// that cache the JWKS know it before it signs anything.
	Rotation time.Duration
	// Retain is how long a retired key stays in the JWKS (default 24h). It must
	// be at least the longest token lifetime, or tokens signed just before a
	// rotation stop verifying before they expire.
	Retain time.Duration
	// Interval is how often Run reloads the keyring and rotates when due
	// (default 30s).
	Interval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives Run's logs (default: discarded).
	Logger *slog.Logger
}

// KeyringOptionsFor returns the options c implies: Rotation is
// identity.keyRotation, Retain the longest token lifetime plus five minutes
// for relying parties whose clocks run behind.
func KeyringOptionsFor(c *config.Config) KeyringOptions {
	return KeyringOptions{
		Rotation: c.Identity.KeyRotation.D(),
		Retain:   max(c.Identity.TokenLifetime.D(), c.Identity.NotificationTokenLifetime.D()) + 5*time.Minute,
	}
}

// Keyring holds the RS256 keys Switchboard signs tokens with. The keys live
// in a JetStream key-value bucket so that every node signs with the same
// current key and publishes the same JWKS; any node may rotate. A retired key
// stays published for Retain so tokens it signed keep verifying until they
// expire.
//
// A Keyring is safe for concurrent use. Sign, JWKS and Keyfunc take no locks
// and do no I/O, except that Keyfunc reloads from the bucket (at most once a
// second) when it meets an unknown kid, which another node may have just
// rotated in.
type Keyring struct {
	kv       *store.KV
	rotation time.Duration
	retain   time.Duration
	interval time.Duration
	now      func() time.Time
	log      *slog.Logger

	ring atomic.Pointer[ring]
	jwks atomic.Pointer[jwksCache]

	reloadMu   sync.Mutex // serialises reloads on an unknown kid
	lastReload time.Time  // wall time of the last such reload, under reloadMu
}

// storedRing is the keyring as kept in the bucket.
type storedRing struct {
	Version int         `json:"version"`
	Keys    []storedKey `json:"keys"`
}

// storedKey is one key. A key is pending (published, not yet signing) while
// Activated is zero, current while Activated is set and Retired zero, and
// retired after; exactly one key is current.
type storedKey struct {
	KID       string    `json:"kid"`
	Key       []byte    `json:"key"` // PKCS #8 DER
	Created   time.Time `json:"created"`
	Activated time.Time `json:"activated,omitzero"`
	Retired   time.Time `json:"retired,omitzero"`
}

// ring is one immutable revision of the keyring, parsed.
type ring struct {
	rev     uint64
	doc     storedRing
	current *signingKey
	byKID   map[string]*signingKey
}

type signingKey struct {
	storedKey
	priv *rsa.PrivateKey
}

type jwksCache struct {
	ring  *ring
	body  []byte
	until time.Time // the body is stale from here: a retired key drops out
}

// OpenKeyring loads the keyring from kv, or creates it with a first key when
// the bucket is empty. Nodes starting at once agree on one first key: only
// one create succeeds and the others load it. It then rotates if the current
// key is due and drops keys past retention.
func OpenKeyring(ctx context.Context, kv *store.KV, o KeyringOptions) (*Keyring, error) {
	if o.Rotation <= 0 {
		o.Rotation = 30 * 24 * time.Hour
	}
	if o.Retain <= 0 {
		o.Retain = 24 * time.Hour
	}
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	k := &Keyring{kv: kv, rotation: o.Rotation, retain: o.Retain, interval: o.Interval, now: o.Now, log: o.Logger}

	_, _, err := kv.Get(ctx, keyringKey)
	if errors.Is(err, store.ErrNotFound) {
		now := k.now()
		key, err := newStoredKey(now)
		if err != nil {
			return nil, err
		}
		key.Activated = now
		data, err := json.Marshal(storedRing{Version: 1, Keys: []storedKey{key}})
		if err != nil {
			return nil, fmt.Errorf("identity: encode keyring: %w", err)
		}
		if _, err := kv.Create(ctx, keyringKey, data); err != nil && !errors.Is(err, store.ErrExists) {
			return nil, fmt.Errorf("identity: create keyring: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("identity: open keyring: %w", err)
	}
	if _, err := k.load(ctx); err != nil {
		return nil, err
	}
	if err := k.maintain(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

// Rotate makes a new key current at once (the pending one if Run already
// published it) and retires the old one, which stays in the JWKS for Retain.
func (k *Keyring) Rotate(ctx context.Context) error {
	if err := k.modify(ctx, func(doc *storedRing, now time.Time, fresh func() (storedKey, error)) (bool, error) {
		k.prune(doc, now)
		return true, promote(doc, now, fresh)
	}); err != nil {
		return fmt.Errorf("identity: rotate keys: %w", err)
	}
	return nil
}

// Run keeps the keyring current until ctx is done: every Interval it reloads
// from the bucket (another node may have rotated), publishes the next key
// ahead of its time, rotates when due and drops keys past retention. Failures
// are logged and retried at the next tick. The caller owns the goroutine Run
// runs in; Run returns when ctx is done.
func (k *Keyring) Run(ctx context.Context) {
	t := time.NewTicker(k.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := k.maintain(ctx); err != nil && ctx.Err() == nil {
			k.log.Warn("signing keys maintenance failed; retrying", "err", err, "retry_in", k.interval)
		}
	}
}

// maintain reloads and applies the rotation policy.
func (k *Keyring) maintain(ctx context.Context) error {
	err := k.modify(ctx, func(doc *storedRing, now time.Time, fresh func() (storedKey, error)) (bool, error) {
		changed := k.prune(doc, now)
		cur := currentKey(doc)
		if cur == nil {
			return true, promote(doc, now, fresh)
		}
		due := cur.Activated.Add(k.rotation)
		switch {
		case !now.Before(due):
			return true, promote(doc, now, fresh)
		case !now.Before(due.Add(-k.rotation/4)) && pendingKey(doc) == nil:
			key, err := fresh()
			if err != nil {
				return false, err
			}
			doc.Keys = append(doc.Keys, key)
			return true, nil
		}
		return changed, nil
	})
	if err != nil {
		return fmt.Errorf("identity: maintain keys: %w", err)
	}
	return nil
}

// prune drops retired keys past retention.
func (k *Keyring) prune(doc *storedRing, now time.Time) bool {
	n := len(doc.Keys)
	doc.Keys = slices.DeleteFunc(doc.Keys, func(s storedKey) bool {
		return !s.Retired.IsZero() && !now.Before(s.Retired.Add(k.retain))
	})
	return len(doc.Keys) != n
}

// promote retires the current key and makes the pending key (or a fresh one)
// current.
func promote(doc *storedRing, now time.Time, fresh func() (storedKey, error)) error {
	next := pendingKey(doc)
	if next == nil {
		key, err := fresh()
		if err != nil {
			return err
		}
		doc.Keys = append(doc.Keys, key)
		next = &doc.Keys[len(doc.Keys)-1]
	}
	if cur := currentKey(doc); cur != nil {
		cur.Retired = now
	}
	next.Activated = now
	return nil
}

func currentKey(doc *storedRing) *storedKey {
	for i := range doc.Keys {
		if k := &doc.Keys[i]; !k.Activated.IsZero() && k.Retired.IsZero() {
			return k
		}
	}
	return nil
}

func pendingKey(doc *storedRing) *storedKey {
	for i := range doc.Keys {
		if k := &doc.Keys[i]; k.Activated.IsZero() {
			return k
		}
	}
	return nil
}

// modify applies f to the stored keyring with compare-and-set, retrying when
// another node changed it in between. f is given a fresh-key generator that
// generates at most once however often f is retried; it returns whether it
// changed doc.
func (k *Keyring) modify(ctx context.Context, f func(doc *storedRing, now time.Time, fresh func() (storedKey, error)) (bool, error)) error {
	var generated *storedKey
	fresh := func() (storedKey, error) {
		if generated == nil {
			key, err := newStoredKey(k.now())
			if err != nil {
				return storedKey{}, err
			}
			generated = &key
		}
		return *generated, nil
	}
	for attempt := 0; ; attempt++ {
		r, err := k.load(ctx)
		if err != nil {
			return err
		}
		doc := storedRing{Version: r.doc.Version, Keys: append([]storedKey(nil), r.doc.Keys...)}
		changed, err := f(&doc, k.now(), fresh)
		if err != nil || !changed {
			return err
		}
		data, err := json.Marshal(doc)
		if err != nil {
			return fmt.Errorf("encode keyring: %w", err)
		}
		rev, err := k.kv.Update(ctx, keyringKey, data, r.rev)
		if errors.Is(err, store.ErrConflict) && attempt < 10 {
			continue
		}
		if err != nil {
			return err
		}
		nr, err := parseRing(rev, doc, r)
		if err != nil {
			return err
		}
		k.install(nr)
		return nil
	}
}

// load reads the keyring from the bucket and installs it if it is newer.
func (k *Keyring) load(ctx context.Context) (*ring, error) {
	data, rev, err := k.kv.Get(ctx, keyringKey)
	if err != nil {
		return nil, fmt.Errorf("identity: load keyring: %w", err)
	}
	old := k.ring.Load()
	if old != nil && old.rev == rev {
		return old, nil
	}
	var doc storedRing
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("identity: decode keyring: %w", err)
	}
	r, err := parseRing(rev, doc, old)
	if err != nil {
		return nil, err
	}
	k.install(r)
	return r, nil
}

// install makes r the keyring unless a newer revision is already installed.
func (k *Keyring) install(r *ring) {
	for {
		old := k.ring.Load()
		if old != nil && old.rev >= r.rev {
			return
		}
		if k.ring.CompareAndSwap(old, r) {
			return
		}
	}
}

// parseRing parses doc, reusing the keys prev already parsed.
func parseRing(rev uint64, doc storedRing, prev *ring) (*ring, error) {
	r := &ring{rev: rev, doc: doc, byKID: make(map[string]*signingKey, len(doc.Keys))}
	for _, s := range doc.Keys {
		sk := &signingKey{storedKey: s}
		if p, ok := prevKey(prev, s.KID); ok {
			sk.priv = p.priv
		} else {
			key, err := x509.ParsePKCS8PrivateKey(s.Key)
			if err != nil {
				return nil, fmt.Errorf("identity: key %s: %w", s.KID, err)
			}
			rk, ok := key.(*rsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("identity: key %s is %T, not RSA", s.KID, key)
			}
			sk.priv = rk
		}
		r.byKID[s.KID] = sk
		if !s.Activated.IsZero() && s.Retired.IsZero() {
			r.current = sk
		}
	}
	if r.current == nil {
		return nil, errors.New("identity: keyring has no current key")
	}
	return r, nil
}

func prevKey(prev *ring, kid string) (*signingKey, bool) {
	if prev == nil {
		return nil, false
	}
	k, ok := prev.byKID[kid]
	return k, ok
}

// newStoredKey generates a pending key.
func newStoredKey(now time.Time) (storedKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return storedKey{}, fmt.Errorf("identity: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storedKey{}, fmt.Errorf("identity: encode key: %w", err)
	}
	return storedKey{KID: thumbprint(&priv.PublicKey), Key: der, Created: now}, nil
}

// thumbprint is the key's JWK thumbprint (RFC 7638), used as its kid.
func thumbprint(pub *rsa.PublicKey) string {
	n, e := jwkNE(pub)
	sum := sha256.Sum256([]byte(`{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// jwkNE encodes the modulus and exponent as JWK n and e (RFC 7518 §6.3.1).
func jwkNE(pub *rsa.PublicKey) (n, e string) {
	return base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes())
}

// visible reports whether key is published (and accepted) at now.
func (k *Keyring) visible(key *signingKey, now time.Time) bool {
	return key.Retired.IsZero() || now.Before(key.Retired.Add(k.retain))
}

// Sign returns claims as a compact JWS signed RS256 with the current key,
// whose kid is in the header.
func (k *Keyring) Sign(claims jwt.Claims) (string, error) {
	cur := k.ring.Load().current
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = cur.KID
	s, err := t.SignedString(cur.priv)
	if err != nil {
		return "", fmt.Errorf("identity: sign token: %w", err)
	}
	return s, nil
}

// jwk is one key of a JWKS (RFC 7517 §4).
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
	Alg string `json:"alg"`
}

// JWKS returns the JSON Web Key Set of every published key: the current one,
// the next one if already published, and the retired ones still within
// Retain: {"keys":[{"kty":"RSA","use":"sig","kid":...,"n":...,"e":...,"alg":"RS256"}]}.
// The slice is shared: callers must not modify it.
func (k *Keyring) JWKS() []byte {
	r := k.ring.Load()
	now := k.now()
	if c := k.jwks.Load(); c != nil && c.ring == r && now.Before(c.until) {
		return c.body
	}
	// Within one revision the set changes only when a retired key passes
	// retention; a new revision is a new ring and misses the cache.
	c := &jwksCache{ring: r, until: now.Add(100 * 365 * 24 * time.Hour)}
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	// Current first, then pending, then retired newest first.
	add := func(sk *signingKey) {
		n, e := jwkNE(&sk.priv.PublicKey)
		set.Keys = append(set.Keys, jwk{Kty: "RSA", Use: "sig", Kid: sk.KID, N: n, E: e, Alg: "RS256"})
	}
	add(r.current)
	for i := len(r.doc.Keys) - 1; i >= 0; i-- {
		if s := r.doc.Keys[i]; s.Activated.IsZero() {
			add(r.byKID[s.KID])
		}
	}
	for i := len(r.doc.Keys) - 1; i >= 0; i-- {
		s := r.byKID[r.doc.Keys[i].KID]
		if s.Retired.IsZero() || !k.visible(s, now) {
			continue
		}
		add(s)
		if end := s.Retired.Add(k.retain); end.Before(c.until) {
			c.until = end
		}
	}
	body, err := json.Marshal(set)
	if err != nil {
		panic("identity: encode JWKS: " + err.Error()) // strings only: cannot fail
	}
	c.body = body
	k.jwks.Store(c)
	return body
}

// Keyfunc is a jwt.Keyfunc: it returns the public key whose kid the token's
// header names, if that key is published. It accepts RS256 only.
func (k *Keyring) Keyfunc(t *jwt.Token) (any, error) {
	if t.Method != jwt.SigningMethodRS256 {
		return nil, fmt.Errorf("identity: signing method %v is not RS256", t.Header["alg"])
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errors.New("identity: token has no kid")
	}
	if key, ok := k.lookup(kid); ok {
		return key, nil
	}
	if k.reloadForUnknownKID() {
		if key, ok := k.lookup(kid); ok {
			return key, nil
		}
	}
	return nil, fmt.Errorf("identity: unknown signing key %q", kid)
}

func (k *Keyring) lookup(kid string) (*rsa.PublicKey, bool) {
	sk, ok := k.ring.Load().byKID[kid]
	if !ok || !k.visible(sk, k.now()) {
		return nil, false
	}
	return &sk.priv.PublicKey, true
}

// reloadForUnknownKID reloads from the bucket, at most once a second, and
// reports whether it did. It uses the wall clock, not the injected one: it
// only bounds how hard tokens with made-up kids can hit the store.
func (k *Keyring) reloadForUnknownKID() bool {
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	now := time.Now()
	if now.Sub(k.lastReload) < time.Second {
		return false
	}
	k.lastReload = now
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := k.load(ctx); err != nil {
		k.log.Warn("reload signing keys for an unknown kid failed", "err", err)
		return false
	}
	return true
}
