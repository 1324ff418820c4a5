package identity

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-voice/switchboard/internal/config"
)

// signTest signs a notification-shaped token valid for an hour from now.
func signTest(t *testing.T, k *Keyring, now time.Time) string {
	t.Helper()
	tok, err := k.Sign(&notificationClaims{Aud: audience{appOne}, Iss: "test", TID: tenantA,
		Iat: jwt.NewNumericDate(now), Nbf: jwt.NewNumericDate(now), Exp: jwt.NewNumericDate(now.Add(time.Hour))})
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return tok
}

// verify checks tok against k's Keyfunc and returns its kid.
func verify(k *Keyring, clk *clock, tok string) (string, error) {
	p := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(clk.Now))
	parsed, err := p.ParseWithClaims(tok, &notificationClaims{}, k.Keyfunc)
	if err != nil {
		return "", err
	}
	kid, _ := parsed.Header["kid"].(string)
	return kid, nil
}

func jwksKIDs(t *testing.T, k *Keyring) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			Kty, Use, Kid, N, E, Alg string
		} `json:"keys"`
	}
	if err := json.Unmarshal(k.JWKS(), &set); err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	var kids []string
	for _, key := range set.Keys {
		if key.Kty != "RSA" || key.Use != "sig" || key.Alg != "RS256" || key.N == "" || key.E != "AQAB" {
			t.Errorf("JWKS key %+v", key)
		}
		kids = append(kids, key.Kid)
	}
	return kids
}

func TestKeyringRotationKeepsOldKeyForRetain(t *testing.T) {
	clk := newClock()
	retain := 2 * time.Hour
	k := openKeyring(t, openBucket(t), clk, KeyringOptions{Rotation: 30 * 24 * time.Hour, Retain: retain})

	old := signTest(t, k, clk.Now())
	oldKID, err := verify(k, clk, old)
	if err != nil {
		t.Fatalf("verify before rotation: %v", err)
	}
	if err := k.Rotate(context.Background()); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	fresh := signTest(t, k, clk.Now())
	newKID, err := verify(k, clk, fresh)
	if err != nil || newKID == oldKID {
		t.Fatalf("after rotation: kid %s (old %s), err %v", newKID, oldKID, err)
	}
	if kid, err := verify(k, clk, old); err != nil || kid != oldKID {
		t.Fatalf("token signed before rotation: %v", err)
	}
	if kids := jwksKIDs(t, k); !slices.Equal(kids, []string{newKID, oldKID}) {
		t.Fatalf("JWKS after rotation = %v, want [%s %s]", kids, newKID, oldKID)
	}

	clk.Advance(retain - time.Second)
	if kids := jwksKIDs(t, k); !slices.Contains(kids, oldKID) {
		t.Fatalf("old kid left the JWKS before Retain passed: %v", kids)
	}
	clk.Advance(time.Second)
	if kids := jwksKIDs(t, k); !slices.Equal(kids, []string{newKID}) {
		t.Fatalf("JWKS once Retain passed = %v, want [%s]", kids, newKID)
	}
	if _, err := verify(k, clk, signTest(t, k, clk.Now())); err != nil {
		t.Fatalf("current key: %v", err)
	}
	// Maintenance drops the expired key from the bucket too.
	if err := k.maintain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(k.ring.Load().doc.Keys); n != 1 {
		t.Errorf("bucket holds %d keys after maintenance, want 1", n)
	}
}

func TestKeyringScheduledRotationPublishesAhead(t *testing.T) {
	clk := newClock()
	ctx := context.Background()
	k := openKeyring(t, openBucket(t), clk, KeyringOptions{Rotation: 4 * time.Hour, Retain: time.Hour})
	first := jwksKIDs(t, k)
	if len(first) != 1 {
		t.Fatalf("new keyring JWKS = %v", first)
	}

	clk.Advance(3*time.Hour - time.Minute)
	if err := k.maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if kids := jwksKIDs(t, k); len(kids) != 1 {
		t.Fatalf("next key published too early: %v", kids)
	}
	clk.Advance(time.Minute) // a quarter of Rotation before due
	if err := k.maintain(ctx); err != nil {
		t.Fatal(err)
	}
	kids := jwksKIDs(t, k)
	if len(kids) != 2 || kids[0] != first[0] {
		t.Fatalf("JWKS with next key published = %v", kids)
	}
	next := kids[1]
	if kid, _ := verify(k, clk, signTest(t, k, clk.Now())); kid != first[0] {
		t.Fatalf("signed with %s before the next key is due, want %s", kid, first[0])
	}

	clk.Advance(time.Hour)
	if err := k.maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if kid, _ := verify(k, clk, signTest(t, k, clk.Now())); kid != next {
		t.Fatalf("signed with %s once due, want the published %s", kid, next)
	}
	if kids := jwksKIDs(t, k); !slices.Equal(kids, []string{next, first[0]}) {
		t.Fatalf("JWKS after rotation = %v", kids)
	}
	clk.Advance(time.Hour)
	if err := k.maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if kids := jwksKIDs(t, k); !slices.Equal(kids, []string{next}) {
		t.Fatalf("JWKS after Retain = %v", kids)
	}
}

func TestKeyringsOnOneBucketAgree(t *testing.T) {
	kv := openBucket(t)
	clk := newClock()
	ctx := context.Background()

	// Two nodes start at once on an empty bucket.
	var wg sync.WaitGroup
	rings := make([]*Keyring, 2)
	errc := make([]error, 2)
	for i := range rings {
		wg.Go(func() {
			rings[i], errc[i] = OpenKeyring(ctx, kv, KeyringOptions{Now: clk.Now})
		})
	}
	wg.Wait()
	for _, err := range errc {
		if err != nil {
			t.Fatalf("open: %v", err)
		}
	}
	a, b := rings[0], rings[1]
	kidA, errA := verify(b, clk, signTest(t, a, clk.Now()))
	kidB, errB := verify(a, clk, signTest(t, b, clk.Now()))
	if errA != nil || errB != nil || kidA != kidB {
		t.Fatalf("current keys differ: %s (%v) and %s (%v)", kidA, errA, kidB, errB)
	}
	if string(a.JWKS()) != string(b.JWKS()) {
		t.Fatal("JWKS differ")
	}

	// A rotates; B verifies A's new tokens at once (it reloads on an unknown
	// kid) and signs with the new key after its next maintenance.
	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	newKID, err := verify(b, clk, signTest(t, a, clk.Now()))
	if err != nil || newKID == kidA {
		t.Fatalf("B verifying A's rotated key: kid %s, %v", newKID, err)
	}
	if err := b.maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if kid, err := verify(a, clk, signTest(t, b, clk.Now())); err != nil || kid != newKID {
		t.Fatalf("B signs with %s (%v), want %s", kid, err, newKID)
	}
	if string(a.JWKS()) != string(b.JWKS()) {
		t.Fatal("JWKS differ after rotation")
	}

	// A third node opening later loads the same keys.
	c := openKeyring(t, kv, clk, KeyringOptions{})
	if string(c.JWKS()) != string(a.JWKS()) {
		t.Fatal("late node's JWKS differs")
	}
}

func TestKeyringRejects(t *testing.T) {
	clk := newClock()
	k := openKeyring(t, openBucket(t), clk, KeyringOptions{})
	other := openKeyring(t, openBucket(t), clk, KeyringOptions{})
	if _, err := verify(k, clk, signTest(t, other, clk.Now())); err == nil {
		t.Error("accepted a token signed by a key not in the keyring")
	}
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"aud": appOne}).SignedString([]byte("k"))
	if _, err := k.Keyfunc(mustParseUnverified(t, hs)); err == nil {
		t.Error("Keyfunc accepted HS256")
	}
	tok := mustParseUnverified(t, signTest(t, k, clk.Now()))
	delete(tok.Header, "kid")
	if _, err := k.Keyfunc(tok); err == nil {
		t.Error("Keyfunc accepted a token without kid")
	}
}

func mustParseUnverified(t *testing.T, s string) *jwt.Token {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(s, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestKeyringRunReturnsOnCancel(t *testing.T) {
	clk := newClock()
	k := openKeyring(t, openBucket(t), clk, KeyringOptions{Interval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		k.Run(ctx)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestKeyringOptionsFor(t *testing.T) {
	c := testConfig(t)
	c.Identity.NotificationTokenLifetime = config.Duration(2 * time.Hour)
	o := KeyringOptionsFor(c)
	if o.Rotation != c.Identity.KeyRotation.D() || o.Retain != 2*time.Hour+5*time.Minute {
		t.Errorf("KeyringOptionsFor = %+v", o)
	}
}
