package abuse

import (
	"net/netip"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock               { return &fakeClock{t: time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)} }
func addr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}
func verdict(v Verdict, _ time.Duration) Verdict { return v }

func TestRateLimitPerKey(t *testing.T) {
	c := newClock()
	g := New[netip.Addr](Limits{Rate: 10, Burst: 5}, c.now)
	a, b := addr(1), addr(2)
	for i := range 5 {
		if v := verdict(g.Allow(a)); v != Allowed {
			t.Fatalf("request %d of the burst: %v", i, v)
		}
	}
	v, wait := g.Allow(a)
	if v != Limited || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("over the burst: %v, retry after %v", v, wait)
	}
	if v := verdict(g.Allow(b)); v != Allowed {
		t.Fatalf("another key is limited too: %v", v)
	}
	c.add(100 * time.Millisecond)
	if v := verdict(g.Allow(a)); v != Allowed {
		t.Fatalf("a token later: %v", v)
	}
	if v := verdict(g.Allow(a)); v != Limited {
		t.Fatalf("only one token came back: %v", v)
	}
}

func TestBanAfterFailuresInWindow(t *testing.T) {
	c := newClock()
	g := New[string](Limits{MaxFailures: 3, Window: time.Minute, BanTime: 10 * time.Minute}, c.now)
	g.Fail("x")
	g.Fail("x")
	c.add(2 * time.Minute) // the window passed: the count starts over
	if g.Fail("x") || g.Fail("x") {
		t.Fatal("banned before the third failure of a window")
	}
	if !g.Fail("x") {
		t.Fatal("the third failure in a window did not ban")
	}
	if v, left := g.Allow("x"); v != Banned || left != 10*time.Minute {
		t.Fatalf("banned key: %v, %v left", v, left)
	}
	if g.Fail("x") {
		t.Fatal("a banned key was banned again")
	}
	if v := verdict(g.Allow("y")); v != Allowed {
		t.Fatalf("another key: %v", v)
	}
	c.add(10 * time.Minute)
	if v := verdict(g.Allow("x")); v != Allowed {
		t.Fatalf("after the ban: %v", v)
	}
	if g.Fail("x") {
		t.Fatal("the ban's failures counted after it")
	}
}

func TestBoundedTable(t *testing.T) {
	c := newClock()
	const max = 64
	g := New[netip.Addr](Limits{Rate: 1, Burst: 2, MaxFailures: 2, Window: time.Minute, BanTime: time.Hour, MaxKeys: max}, c.now)
	// Two banned keys survive a flood of a hundred thousand others.
	for _, k := range []netip.Addr{addr(1), addr(2)} {
		g.Fail(k)
		if !g.Fail(k) {
			t.Fatal("not banned")
		}
	}
	for i := range 100_000 {
		g.Allow(addr(1000 + i))
		if i%1000 == 0 {
			c.add(10 * time.Millisecond)
		}
	}
	if n := g.Len(); n > max {
		t.Fatalf("%d keys tracked, limit %d", n, max)
	}
	for _, k := range []netip.Addr{addr(1), addr(2)} {
		if banned, _ := g.Banned(k); !banned {
			t.Fatalf("%v's ban was forgotten under the flood", k)
		}
	}
	// Idle keys are swept: once the flood's buckets refilled, new keys
	// find room without evicting anyone.
	c.add(5 * time.Second)
	g.Allow(addr(7))
	if n := g.Len(); n != 3 {
		t.Fatalf("%d keys after the sweep, want the two bans and the newcomer", n)
	}
	// A table full of bans lets newcomers through, untracked.
	small := New[int](Limits{Rate: 1, Burst: 1, MaxFailures: 1, BanTime: time.Hour, MaxKeys: 2}, c.now)
	small.Fail(1)
	small.Fail(2)
	for range 3 {
		if v := verdict(small.Allow(3)); v != Allowed {
			t.Fatalf("newcomer to a table of bans: %v", v)
		}
	}
	if small.Untracked() != 3 {
		t.Fatalf("untracked %d", small.Untracked())
	}
}

func TestOff(t *testing.T) {
	g := New[string](Limits{}, nil)
	for range 1000 {
		if v := verdict(g.Allow("x")); v != Allowed {
			t.Fatal(v)
		}
		if g.Fail("x") {
			t.Fatal("banned with bans off")
		}
	}
	if g.Len() != 0 {
		t.Fatalf("tracked %d keys with everything off", g.Len())
	}
}
