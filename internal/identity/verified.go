package identity

import (
	"crypto/sha256"
	"sync"
	"time"
)

// A bot sends the same access token with every request for as long as it
// lives (an hour), so the signature and the claims of a token are checked
// once and remembered by the token's hash: a request then costs a hash and
// a map lookup instead of an RSA verification and a JSON decode. What the
// directory says (the tenant, the app, its permissions) is still read on
// every request, so a change to them applies at once.
const (
	// verifiedFor bounds how long a verified token is trusted without
	// checking its signature again: a signing key withdrawn from the
	// keyring stops working within it.
	verifiedFor = time.Minute
	// verifiedMax bounds the cache; when it is full it starts afresh.
	verifiedMax = 10000
)

type verifiedToken struct {
	tid, appID, iss string
	roles           []string
	until           time.Time // min(exp + leeway, verified + verifiedFor)
}

type verifiedCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*verifiedToken
}

func (c *verifiedCache) get(key [sha256.Size]byte, now time.Time) *verifiedToken {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.m[key]
	if v == nil {
		return nil
	}
	if !now.Before(v.until) {
		delete(c.m, key)
		return nil
	}
	return v
}

func (c *verifiedCache) put(key [sha256.Size]byte, v *verifiedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= verifiedMax {
		c.m = make(map[[sha256.Size]byte]*verifiedToken)
	}
	c.m[key] = v
}
