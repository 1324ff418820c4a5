// Package abuse keeps the per-source (or per-client) state the node's edges
// need against scanners, floods and password guessing: a token bucket of
// requests and a count of failed credentials per key, and a ban once the
// failures pass a limit within a window. The SIP edge keys it by source
// address (svwar, svcrack, INVITE and REGISTER floods); the token endpoint by
// source address and by client id (client-secret guessing).
//
// Its memory is bounded: at most Limits.MaxKeys keys are tracked. An idle key
// (bucket full again, no failures in the window, not banned) is forgotten
// when room is needed, so a flood from many addresses costs a fixed table; when
// the table is full of keys that are not idle, a random key that is not banned
// gives way, and only a table full of bans stops tracking newcomers (they are
// let through: the node's global limits still apply).
package abuse

import (
	"sync"
	"time"
)

// Limits configure a Guard. A zero Rate turns the request limit off; a zero
// MaxFailures turns bans off.
type Limits struct {
	// Rate is the sustained requests per second of one key, Burst the
	// bucket's size (at least 1 when Rate is set).
	Rate  float64
	Burst int
	// MaxFailures failed credentials within Window ban the key for BanTime.
	MaxFailures int
	Window      time.Duration
	BanTime     time.Duration
	// MaxKeys bounds the keys tracked; DefaultMaxKeys when 0.
	MaxKeys int
}

// DefaultMaxKeys is the table size when Limits.MaxKeys is 0: about 10 MB
// when full.
const DefaultMaxKeys = 1 << 16

// sweepEvery is how often a full table is swept for idle keys at most: a
// sweep walks the whole table, so a flood of new keys must not trigger one
// per request.
const sweepEvery = time.Second

// Verdict is what Allow decides.
type Verdict int

const (
	// Allowed: go on.
	Allowed Verdict = iota
	// Limited: over the key's request rate.
	Limited
	// Banned: the key failed its credentials too often.
	Banned
)

// A Guard is safe for concurrent use. The zero value is not usable: use New.
type Guard[K comparable] struct {
	lim Limits
	now func() time.Time

	mu        sync.Mutex
	m         map[K]*entry
	lastSweep time.Time
	untracked uint64 // keys let through because the table was full of bans
}

type entry struct {
	tokens      float64
	last        time.Time // the bucket's last refill
	failures    int
	windowStart time.Time
	bannedUntil time.Time
}

// New returns a guard with lim on the clock now (time.Now when nil).
func New[K comparable](lim Limits, now func() time.Time) *Guard[K] {
	if now == nil {
		now = time.Now
	}
	if lim.MaxKeys <= 0 {
		lim.MaxKeys = DefaultMaxKeys
	}
	if lim.Rate > 0 && lim.Burst < 1 {
		lim.Burst = 1
	}
	return &Guard[K]{lim: lim, now: now, m: make(map[K]*entry)}
}

// Allow takes one request of key from its bucket. A banned key is refused
// with the time left of its ban; a key over its rate with the time until its
// next token.
func (g *Guard[K]) Allow(key K) (Verdict, time.Duration) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.m[key]
	if e != nil && now.Before(e.bannedUntil) {
		return Banned, e.bannedUntil.Sub(now)
	}
	if g.lim.Rate <= 0 {
		return Allowed, 0
	}
	if e == nil {
		if e = g.add(key, now); e == nil {
			return Allowed, 0
		}
	}
	g.refill(e, now)
	if e.tokens < 1 {
		return Limited, time.Duration((1 - e.tokens) / g.lim.Rate * float64(time.Second))
	}
	e.tokens--
	return Allowed, 0
}

// Banned reports whether key is banned now, and for how much longer.
func (g *Guard[K]) Banned(key K) (bool, time.Duration) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if e := g.m[key]; e != nil && now.Before(e.bannedUntil) {
		return true, e.bannedUntil.Sub(now)
	}
	return false, 0
}

// Fail counts one failed credential of key. It returns true when this
// failure bans the key (once per ban); failures of a banned key are not
// counted.
func (g *Guard[K]) Fail(key K) bool {
	if g.lim.MaxFailures <= 0 {
		return false
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.m[key]
	if e == nil {
		if e = g.add(key, now); e == nil {
			return false
		}
	}
	if now.Before(e.bannedUntil) {
		return false
	}
	if e.failures == 0 || now.Sub(e.windowStart) > g.lim.Window {
		e.failures, e.windowStart = 0, now
	}
	e.failures++
	if e.failures < g.lim.MaxFailures {
		return false
	}
	e.failures = 0
	e.bannedUntil = now.Add(g.lim.BanTime)
	return true
}

// Len is the number of keys tracked.
func (g *Guard[K]) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.m)
}

// Untracked is how many times a new key was let through untracked because
// the table was full of banned keys.
func (g *Guard[K]) Untracked() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.untracked
}

func (g *Guard[K]) refill(e *entry, now time.Time) {
	if el := now.Sub(e.last); el > 0 {
		e.tokens = min(float64(g.lim.Burst), e.tokens+el.Seconds()*g.lim.Rate)
		e.last = now
	}
}

// add tracks a new key with a full bucket, making room if the table is
// full; nil when there is none.
func (g *Guard[K]) add(key K, now time.Time) *entry {
	if len(g.m) >= g.lim.MaxKeys {
		if now.Sub(g.lastSweep) >= sweepEvery {
			g.lastSweep = now
			for k, e := range g.m {
				if g.idle(e, now) {
					delete(g.m, k)
				}
			}
		}
		if len(g.m) >= g.lim.MaxKeys {
			// Map iteration starts at a random place: the key that gives
			// way is random, so a flood cannot choose whom it evicts.
			evicted := false
			for k, e := range g.m {
				if !now.Before(e.bannedUntil) {
					delete(g.m, k)
					evicted = true
					break
				}
			}
			if !evicted {
				g.untracked++
				return nil
			}
		}
	}
	e := &entry{tokens: float64(g.lim.Burst), last: now}
	g.m[key] = e
	return e
}

// idle reports whether forgetting e changes nothing: not banned, no
// failure in the window, its bucket full again.
func (g *Guard[K]) idle(e *entry, now time.Time) bool {
	if now.Before(e.bannedUntil) {
		return false
	}
	if e.failures > 0 && now.Sub(e.windowStart) <= g.lim.Window {
		return false
	}
	if g.lim.Rate > 0 && e.tokens+now.Sub(e.last).Seconds()*g.lim.Rate < float64(g.lim.Burst) {
		return false
	}
	return true
}
