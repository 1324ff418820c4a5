package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// EngineOptions configures an Engine.
type EngineOptions struct {
	// BindIP is the address sockets bind to and SDP advertises.
	BindIP netip.Addr
	// PortMin and PortMax bound the RTP ports; only even ports are used
	// and RTCP (port+1) is not bound. Both 0 lets the OS pick any port,
	// which is what tests use.
	PortMin, PortMax int
	// InactivityTimeout: when no RTP has arrived for this long on a
	// session with a remote whose direction is SendRecv (see
	// Session.SetDirection), the session reports EventInactive (again
	// only after RTP has resumed). 0 turns it off.
	InactivityTimeout time.Duration
	// Logger receives the engine's rare logs; nil discards them.
	Logger *slog.Logger
	// Registerer, when not nil, gets the engine's metrics.
	Registerer prometheus.Registerer
}

// EngineStats are an Engine's counters since NewEngine.
type EngineStats struct {
	Sessions        int           // open sessions
	Ticks           uint64        // media clock ticks
	LateTicks       uint64        // ticks in which a shard started more than 5 ms late, or was skipped
	MaxLateness     time.Duration // worst lateness of a tick
	PacketsSent     uint64        // RTP packets sent by all sessions
	PacketsReceived uint64        // RTP packets received by all sessions
	// RecentTicks and RecentLateTicks count the ticks, and the late ones,
	// of the current and the previous second of the engine's clock (one
	// to two seconds): how the clock keeps up now, which admission
	// control weighs. Both fall to 0 once the clock has slept a second.
	RecentTicks, RecentLateTicks uint64
}

// lateThreshold is when a tick counts as late in EngineStats.
const lateThreshold = 5 * time.Millisecond

// Errors of the engine.
var (
	ErrNoPorts       = errors.New("media: no free RTP port in range")
	ErrEngineRunning = errors.New("media: engine already running")
)

// Engine owns the RTP sessions of a process and the shared media clock that
// paces them: one clock goroutine (Run) wakes a few tick workers, each
// every 20 ms at its own phase, and each ticks its shard of the sessions.
// There is no timer per call. An Engine is safe for concurrent use.
type Engine struct {
	o     EngineOptions
	log   *slog.Logger
	epoch time.Time // monotonic origin for nanotime
	ports portPool

	shards    []*shard
	netSend   bool // send through net.UDPConn, not raw sendto (benchmarks compare)
	nextShard atomic.Uint32
	running   atomic.Bool

	ticks       atomic.Uint64
	lateTicks   atomic.Uint64
	lastLate    atomic.Uint64 // tick number last counted late, to count a tick once across workers
	maxLateness atomic.Int64
	maxWork     atomic.Int64 // longest a worker took for one tick
	workTotal   atomic.Int64 // for benchmarks: mean tick work
	workCount   atomic.Int64
	// Counters of closed sessions; open ones are summed on demand so no
	// counter is shared between sessions on the hot path.
	closedSent, closedRecv atomic.Uint64
	// recentTicks and recentLate are per-second buckets (see window).
	recentTicks, recentLate window

	// live counts the sessions and conferences on the shards: while it is
	// 0 the clock sleeps, and the one that makes it 1 wakes the clock
	// through wake (capacity 1, so the wake is never lost and never
	// blocks).
	live atomic.Int64
	wake chan struct{}
	// hooks, set by tests before Run, observe the clock.
	rxPolls atomic.Uint64 // recvmmsg calls (Linux), for tests

	hooks struct {
		asleep func()                  // the clock goes to sleep
		tick   func(sh int, m tickMsg) // a worker starts a tick
	}
}

// window counts events in one-second buckets of the engine's clock, the
// current second's and the previous one's, lock-free: each bucket packs
// its second (high 32 bits) and its count (low 32).
type window [2]atomic.Uint64

func (w *window) add(sec uint32) {
	b := &w[sec&1]
	for {
		v := b.Load()
		nv := uint64(sec)<<32 | 1
		if uint32(v>>32) == sec {
			nv = v + 1
		}
		if b.CompareAndSwap(v, nv) {
			return
		}
	}
}

// sum is the count of the seconds sec and sec-1.
func (w *window) sum(sec uint32) uint64 {
	var n uint64
	for i := range w {
		v := w[i].Load()
		if s := uint32(v >> 32); s == sec || s+1 == sec {
			n += v & 0xffffffff
		}
	}
	return n
}

// shard is a set of sessions, and of conferences, one tick worker serves.
type shard struct {
	live     atomic.Int32 // sessions and conferences on it: the clock does not wake an empty shard's worker
	mu       sync.Mutex
	sessions []*Session    // guarded by mu
	confs    []*Conference // guarded by mu
	tick     chan tickMsg
	snap     []*Session    // the worker's copy; owned by the worker
	rxb      *rxBatch      // the worker's receive buffers
	rx       shardRx       // which of its sessions' sockets have data
	confSnap []*Conference // the worker's copy; owned by the worker
}

type tickMsg struct {
	n        uint64    // tick number since Run started
	deadline time.Time // when the tick was due
}

// NewEngine returns an engine; call Run to start its clock.
func NewEngine(o EngineOptions) (*Engine, error) { return newEngine(o, 0) }

// newEngine is NewEngine with the shard count fixed (0: from GOMAXPROCS),
// for benchmarks that compare.
func newEngine(o EngineOptions, shards int) (*Engine, error) {
	if !o.BindIP.IsValid() {
		return nil, errors.New("new media engine: BindIP is required")
	}
	if err := validatePorts(o.PortMin, o.PortMax); err != nil {
		return nil, fmt.Errorf("new media engine: %w", err)
	}
	if o.InactivityTimeout < 0 {
		return nil, errors.New("new media engine: InactivityTimeout is negative")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{o: o, log: log.With("component", "media"), epoch: time.Now(), wake: make(chan struct{}, 1)}
	e.ports.init(o.PortMin, o.PortMax)
	// One shard per CPU (2 to 16): each phase of the clock is a timer
	// wake-up and a hand-off to a worker, and at 1,000 IVR calls on 2 CPUs
	// two shards cost 3–6 % less CPU than eight and ticked late a third
	// as often (docs/benchmarks.md).
	n := min(max(runtime.GOMAXPROCS(0), 2), 16)
	if shards > 0 {
		n = shards
	}
	var fds []int
	for range n {
		sh := &shard{rxb: newRxBatch()}
		sh.rx.init()
		e.shards = append(e.shards, sh)
		fds = append(fds, sh.rx.fd())
	}
	// The shards' epoll sets live as long as the engine.
	runtime.AddCleanup(e, closeFDs, fds)
	if o.Registerer != nil {
		if err := e.register(o.Registerer); err != nil {
			return nil, fmt.Errorf("new media engine: register metrics: %w", err)
		}
	}
	return e, nil
}

func validatePorts(lo, hi int) error {
	switch {
	case lo == 0 && hi == 0:
		return nil
	case lo < 1 || hi > 65535 || lo > hi:
		return fmt.Errorf("RTP port range %d-%d is invalid", lo, hi)
	case (lo+1)&^1 > hi:
		return fmt.Errorf("RTP port range %d-%d holds no even port", lo, hi)
	}
	return nil
}

// nanotime is the engine's monotonic clock in nanoseconds.
func (e *Engine) nanotime() int64 { return int64(time.Since(e.epoch)) }

// second is the second of the engine's clock, for the recent windows.
func (e *Engine) second() uint32 { return uint32(time.Since(e.epoch) / time.Second) }

// joined counts a session or conference on a shard, waking the clock if
// it was the first; left counts one off.
func (e *Engine) joined() {
	if e.live.Add(1) == 1 {
		select {
		case e.wake <- struct{}{}:
		default: // a wake is pending already
		}
	}
}

func (e *Engine) left() { e.live.Add(-1) }

// Run is the shared media clock. Every 20 ms it ticks every session; the
// sessions are sharded over a few workers (one per CPU, 2 to 16), and the
// shards are ticked at staggered phases across the 20 ms (with 2 shards,
// one every 10 ms) so that sends, and the receive work they cause, are
// spread over the period instead of arriving in one burst. Each session
// does a bounded amount of work per tick (drain at most a ring of received
// packets, play out one frame, send at most one packet), and a worker still
// busy with its previous tick skips the next one rather than bursting to
// catch up, so pacing degrades gracefully under CPU pressure. While the
// engine has no session and no conference the clock sleeps (no timer, no
// wake-up), and the first one to arrive wakes it: the schedule starts
// again from that moment at the first shard, where an empty engine puts
// it, so its first tick is not delayed and no tick counts late for the
// sleep. Tick numbers go on from before the sleep. Run returns nil when
// ctx is done; sessions stay open (their owners close them). Run may be
// called once at a time.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return ErrEngineRunning
	}
	defer e.running.Store(false)
	var wg sync.WaitGroup
	for i, sh := range e.shards {
		sh.tick = make(chan tickMsg, 1)
		wg.Add(1)
		go func(sh *shard, ch <-chan tickMsg) {
			defer wg.Done()
			e.work(sh, i, ch)
		}(sh, sh.tick)
	}
	defer func() {
		for _, sh := range e.shards {
			close(sh.tick)
		}
		wg.Wait()
	}()

	nsh := uint64(len(e.shards))
	step := FrameDuration / time.Duration(nsh)
	var m uint64 // phases since start: shard m%nsh, its tick m/nsh
	next := time.Now().Add(step)
	timer := time.NewTimer(step)
	defer timer.Stop()
	for {
		if e.live.Load() == 0 {
			timer.Stop() // Go 1.23 timers: nothing stale is received after
			if !e.sleep(ctx) {
				return nil
			}
			// Start a new period at the first shard, now.
			m = (m + nsh - 1) / nsh * nsh
			next = time.Now()
			timer.Reset(0)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		// Dispatch every phase now due: a timer a little late runs the
		// phases it missed back to back; a phase a whole period late is
		// skipped, because the same shard's next tick is already due.
		now := time.Now()
		for !next.After(now) {
			late := now.Sub(next)
			e.noteLateness(late)
			sh := e.shards[m%nsh]
			switch {
			case sh.live.Load() == 0:
				// Nothing on this shard: its worker sleeps on.
			case late >= FrameDuration:
				e.countLate(m / nsh)
			default:
				select {
				case sh.tick <- tickMsg{n: m / nsh, deadline: next}:
				default:
					// The worker is still on its previous tick: skip this
					// one for its sessions (their RTP timestamps still
					// advance).
					e.countLate(m / nsh)
				}
			}
			if m%nsh == nsh-1 {
				e.ticks.Add(1)
				e.recentTicks.add(e.second())
			}
			m++
			next = next.Add(step)
		}
		timer.Reset(next.Sub(now))
	}
}

// sleep waits, with no timer, until the engine has a session or a
// conference again; false if ctx is done first.
func (e *Engine) sleep(ctx context.Context) bool {
	for e.live.Load() == 0 {
		if f := e.hooks.asleep; f != nil {
			f()
		}
		select {
		case <-ctx.Done():
			return false
		case <-e.wake:
			// A stale wake (a session that came and went while the
			// clock ran) finds live still 0 and sleeps again.
		}
	}
	return true
}

// work is a tick worker: it ticks its shard's sessions for every tick,
// then its conferences (each of which ticks its members, wherever their
// shard).
func (e *Engine) work(sh *shard, idx int, ch <-chan tickMsg) {
	for m := range ch {
		start := time.Now()
		if f := e.hooks.tick; f != nil {
			f(idx, m)
		}
		if late := start.Sub(m.deadline); late > 0 {
			e.noteLateness(late)
			if late > lateThreshold {
				e.countLate(m.n)
			}
		}
		sh.mu.Lock()
		sh.snap = append(sh.snap[:0], sh.sessions...)
		sh.confSnap = append(sh.confSnap[:0], sh.confs...)
		sh.rx.markReady(len(sh.sessions))
		sh.mu.Unlock()
		tt := e.tickTime()
		for _, s := range sh.snap {
			if !s.inConf.Load() {
				s.pollReady(sh.rxb, tt) // a conference's worker polls its members
			}
			s.tick(m.n, tt.now)
		}
		for _, c := range sh.confSnap {
			c.poll(sh.rxb, tt)
			c.tick(m.n, tt.now)
		}
		clear(sh.snap) // let closed sessions go
		clear(sh.confSnap)
		work := time.Since(start)
		for {
			cur := e.maxWork.Load()
			if int64(work) <= cur || e.maxWork.CompareAndSwap(cur, int64(work)) {
				break
			}
		}
		e.workTotal.Add(int64(work))
		e.workCount.Add(1)
	}
}

func (e *Engine) noteLateness(d time.Duration) {
	for {
		cur := e.maxLateness.Load()
		if int64(d) <= cur || e.maxLateness.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// countLate counts tick n as late once, however many of its shards were
// late (a shard reporting a tick older than one already counted is not
// counted again).
func (e *Engine) countLate(n uint64) {
	for {
		cur := e.lastLate.Load()
		if n+1 <= cur {
			return
		}
		if e.lastLate.CompareAndSwap(cur, n+1) {
			e.lateTicks.Add(1)
			e.recentLate.add(e.second())
			return
		}
	}
}

// Recent returns RecentTicks and RecentLateTicks of Stats without
// walking the sessions: what admission control asks before every new call.
func (e *Engine) Recent() (ticks, late uint64) {
	sec := e.second()
	return e.recentTicks.sum(sec), e.recentLate.sum(sec)
}

// Stats returns the engine's counters. It visits every session (its
// packet counts) under its shard's lock.
func (e *Engine) Stats() EngineStats {
	st := EngineStats{
		Ticks:           e.ticks.Load(),
		LateTicks:       e.lateTicks.Load(),
		MaxLateness:     time.Duration(e.maxLateness.Load()),
		PacketsSent:     e.closedSent.Load(),
		PacketsReceived: e.closedRecv.Load(),
	}
	sec := e.second()
	st.RecentTicks, st.RecentLateTicks = e.recentTicks.sum(sec), e.recentLate.sum(sec)
	for _, sh := range e.shards {
		sh.mu.Lock()
		st.Sessions += len(sh.sessions)
		for _, s := range sh.sessions {
			st.PacketsSent += s.sent.Load()
			st.PacketsReceived += s.rcvd.Load()
		}
		sh.mu.Unlock()
	}
	return st
}

func (e *Engine) register(r prometheus.Registerer) error {
	const ns, sub = "switchboard", "media"
	stat := func(f func(EngineStats) float64) func() float64 {
		return func() float64 { return f(e.Stats()) }
	}
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "sessions",
			Help: "Open RTP sessions."}, stat(func(s EngineStats) float64 { return float64(s.Sessions) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "ticks_total",
			Help: "Media clock ticks."}, func() float64 { return float64(e.ticks.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "late_ticks_total",
			Help: "Media clock ticks started more than 5 ms late or skipped."}, func() float64 { return float64(e.lateTicks.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "tick_lateness_max_seconds",
			Help: "Worst media clock tick lateness since start."}, func() float64 { return time.Duration(e.maxLateness.Load()).Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "tick_work_max_seconds",
			Help: "Longest a worker took for its shard's tick since start (the budget is 20 ms)."}, func() float64 { return time.Duration(e.maxWork.Load()).Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rtp_packets_sent_total",
			Help: "RTP packets sent."}, stat(func(s EngineStats) float64 { return float64(s.PacketsSent) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rtp_packets_received_total",
			Help: "RTP packets received."}, stat(func(s EngineStats) float64 { return float64(s.PacketsReceived) })),
	}
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// join adds s to the shard with the fewest sessions.
func (e *Engine) join(s *Session) {
	var best *shard
	bestN := -1
	for _, sh := range e.shards {
		sh.mu.Lock()
		n := len(sh.sessions)
		sh.mu.Unlock()
		if bestN < 0 || n < bestN {
			best, bestN = sh, n
		}
	}
	s.shard = best
	best.mu.Lock()
	s.shardIdx = len(best.sessions)
	best.sessions = append(best.sessions, s)
	best.rx.add(s)
	best.live.Add(1)
	best.mu.Unlock()
	e.joined()
}

// bind opens a UDP socket on a free port of the range.
func (e *Engine) bind() (*net.UDPConn, int, error) {
	network := "udp4"
	if e.o.BindIP.Is6() && !e.o.BindIP.Is4In6() {
		network = "udp6"
	}
	listen := func(port int) (*net.UDPConn, error) {
		return net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(e.o.BindIP, uint16(port))))
	}
	if e.ports.any() {
		c, err := listen(0)
		if err != nil {
			return nil, 0, err
		}
		return c, c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	return e.ports.acquire(listen)
}

// portPool hands out the even ports of a range, next-fit so a port just
// released is the last to be reused.
type portPool struct {
	mu     sync.Mutex
	lo, hi int // even bounds, inclusive; 0, 0 = any
	next   int
	used   map[int]bool
}

func (p *portPool) init(lo, hi int) {
	if lo == 0 && hi == 0 {
		return
	}
	p.lo, p.hi = (lo+1)&^1, hi&^1
	p.next = p.lo
	p.used = make(map[int]bool)
}

func (p *portPool) any() bool { return p.lo == 0 }

func (p *portPool) acquire(listen func(int) (*net.UDPConn, error)) (*net.UDPConn, int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := (p.hi-p.lo)/2 + 1
	for range n {
		port := p.next
		p.next += 2
		if p.next > p.hi {
			p.next = p.lo
		}
		if p.used[port] {
			continue
		}
		c, err := listen(port)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				continue // another process has it
			}
			return nil, 0, err
		}
		p.used[port] = true
		return c, port, nil
	}
	return nil, 0, ErrNoPorts
}

func (p *portPool) release(port int) {
	if p.any() {
		return
	}
	p.mu.Lock()
	delete(p.used, port)
	p.mu.Unlock()
}

// addConference gives c a shard: the one with the fewest conferences, and
// of those the fewest sessions, since a conference's worker ticks all its
// members.
func (e *Engine) addConference(c *Conference) {
	var best *shard
	bestC, bestS := -1, -1
	for _, sh := range e.shards {
		sh.mu.Lock()
		nc, ns := len(sh.confs), len(sh.sessions)
		sh.mu.Unlock()
		if bestC < 0 || nc < bestC || (nc == bestC && ns < bestS) {
			best, bestC, bestS = sh, nc, ns
		}
	}
	c.shard = best
	best.mu.Lock()
	best.confs = append(best.confs, c)
	best.live.Add(1)
	best.mu.Unlock()
	e.joined()
}

// removeConference takes c off its shard; its worker may tick it once
// more (a tick under way), which finds it closed.
func (e *Engine) removeConference(c *Conference) {
	sh := c.shard
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for i, x := range sh.confs {
		if x == c {
			last := len(sh.confs) - 1
			sh.confs[i] = sh.confs[last]
			sh.confs[last] = nil
			sh.confs = sh.confs[:last]
			sh.live.Add(-1)
			e.left()
			return
		}
	}
}
