package sdk

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Validator checks the bearer token on notifications POSTed to a bot: RS256
// signature against the keys the platform's OpenID configuration lists, the
// issuer that configuration names, audience = the bot's app id, expiry, and
// a tenant claim. It caches the keys and refetches them when a token names
// an unknown key id (the platform rotated). It is safe for concurrent use.
type Validator struct {
	// OpenIDConfigURL is the platform's OpenID configuration, e.g.
	// http://127.0.0.1:8080/v1/.well-known/openidconfiguration.
	OpenIDConfigURL string
	// AppID is the bot's application id: the audience tokens must carry.
	AppID string
	// ExtraIssuers are accepted besides the configuration's issuer.
	ExtraIssuers []string
	// Client fetches the configuration and keys; http.DefaultClient when nil.
	Client *http.Client

	mu      sync.Mutex
	issuer  string
	keys    map[string]*rsa.PublicKey
	fetched time.Time
}

// NotificationClaims are what a valid notification token says.
type NotificationClaims struct {
	TenantID string `json:"tid"`
	jwt.RegisteredClaims
}

// ErrInvalidToken wraps every validation failure.
var ErrInvalidToken = errors.New("invalid notification token")

// Validate checks r's Authorization header and returns the token's claims.
func (v *Validator) Validate(ctx context.Context, r *http.Request) (*NotificationClaims, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return nil, fmt.Errorf("%w: no bearer token", ErrInvalidToken)
	}
	if err := v.ensure(ctx, false); err != nil {
		return nil, err
	}
	claims := &NotificationClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if k := v.key(kid); k != nil {
			return k, nil
		}
		if err := v.ensure(ctx, true); err != nil {
			return nil, err
		}
		if k := v.key(kid); k != nil {
			return k, nil
		}
		return nil, fmt.Errorf("unknown key id %q", kid)
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(v.AppID), jwt.WithExpirationRequired(), jwt.WithLeeway(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	v.mu.Lock()
	iss := v.issuer
	v.mu.Unlock()
	okIss := claims.Issuer == iss
	for _, e := range v.ExtraIssuers {
		okIss = okIss || claims.Issuer == e
	}
	if !okIss {
		return nil, fmt.Errorf("%w: issuer %q is not %q", ErrInvalidToken, claims.Issuer, iss)
	}
	if claims.TenantID == "" {
		return nil, fmt.Errorf("%w: no tid claim", ErrInvalidToken)
	}
	return claims, nil
}

func (v *Validator) key(kid string) *rsa.PublicKey {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.keys[kid]
}

// ensure fetches the configuration and keys when missing, older than an
// hour, or when force asks (an unknown kid) and the last fetch is not fresh.
func (v *Validator) ensure(ctx context.Context, force bool) error {
	v.mu.Lock()
	age := time.Since(v.fetched)
	have := v.keys != nil
	v.mu.Unlock()
	if have && age < time.Hour && (!force || age < 5*time.Second) {
		return nil
	}
	var conf struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := v.getJSON(ctx, v.OpenIDConfigURL, &conf); err != nil {
		return fmt.Errorf("openid configuration: %w", err)
	}
	var set struct {
		Keys []struct {
			Kty, Kid, N, E string
		} `json:"keys"`
	}
	if err := v.getJSON(ctx, conf.JWKSURI, &set); err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "RSA" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil {
			continue
		}
		keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	v.mu.Lock()
	v.issuer, v.keys, v.fetched = conf.Issuer, keys, time.Now()
	v.mu.Unlock()
	return nil
}

func (v *Validator) getJSON(ctx context.Context, url string, out any) error {
	c := v.Client
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
