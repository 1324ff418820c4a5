package platform

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/store"
	"github.com/switchboard-voice/switchboard/internal/webhook"
)

// Node loss. Every node looks at the claims in sb_nodes every fifth of
// its lease. A claim whose revision has not changed for longer than its
// holder's lease (measured on the looking node's monotonic clock, so a
// skewed wall clock elsewhere changes nothing) belongs to a lost node:
// a node that died without coming back. The first node to replace that
// claim, with compare-and-set on the revision it saw, by one of its own
// marked TakenOverBy, takes the lost node over; the others' writes fail.
// It renews that claim as its own while it
//
//  1. drops the lost node's share of the cluster-wide call counts
//     (calls.maxConcurrentPerApp): its calls are dead already;
//  2. opens the lost node's notification outbox (its consumer recreated
//     from the oldest message, parked calls first) and delivers it, so
//     every notification the lost node had accepted goes out, in order
//     per call;
//  3. runs a call manager as the lost node (callctl.Options.Takeover),
//     which ends each of its calls with errs.NodeLost: the terminated
//     state is stored, its notifications queued on the lost node's
//     subjects behind those still undelivered, a SIP far end whose
//     dialog was confirmed gets a BYE from this node (sipgw.Resume);
//  4. waits until the outbox has delivered everything (bounded by
//     notifications.maxAge), then releases the lost node's id.
//
// The lost node, restarted meanwhile, waits for the id (claimNodeID) and
// then finds nothing left to resume. A node that was only cut off, not
// dead, learns at its next heartbeat that its claim was taken over and
// stops (Node.Lost); until then its writes to call records fail their
// compare-and-set against the takeover's. A takeover whose node dies in
// turn leaves its claim to expire, and another node takes over both.
//
// From the lost node's last heartbeat, its calls end within its lease
// plus a fifth of the looking node's lease (15 s + 3 s by default), plus
// the time to end them (milliseconds each).

// watchNodes looks for lost nodes until ctx is done, and takes them over.
func (n *Node) watchNodes(ctx context.Context, kv *store.KV, lease time.Duration) {
	type sighting struct {
		rev uint64
		at  time.Time
	}
	seen := map[string]sighting{}
	var mu sync.Mutex
	active := map[string]bool{}
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(lease / 5)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lctx, cancel := context.WithTimeout(ctx, lease)
		keys, err := kv.Listed(lctx) // a deleted claim's Get fails below
		if err != nil {
			cancel()
			continue // the store is out of reach: nobody is judged meanwhile
		}
		now := time.Now()
		present := map[string]bool{}
		live := 1 // this node
		for _, id := range keys {
			present[id] = true
			mu.Lock()
			busy := active[id]
			mu.Unlock()
			if id == n.ID || busy {
				continue
			}
			data, rev, err := kv.Get(lctx, id)
			if err != nil {
				continue
			}
			var old nodeClaim
			if json.Unmarshal(data, &old) != nil {
				continue
			}
			s, ok := seen[id]
			if !ok || s.rev != rev {
				seen[id] = sighting{rev, now}
			}
			if !ok || s.rev != rev || now.Sub(s.at) <= old.lease(defaultNodeLease) {
				if old.TakenOverBy == "" {
					live++
				}
				continue
			}
			mu.Lock()
			active[id] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := n.takeOver(ctx, kv, lease, id, rev, old, now.Sub(s.at)); err != nil {
					n.log.Error("take over a lost node", "lost", id, "err", err)
				}
				mu.Lock()
				delete(active, id)
				mu.Unlock()
			}()
		}
		cancel()
		n.nodes.Store(int32(live))
		for id := range seen {
			if !present[id] {
				delete(seen, id)
			}
		}
	}
}

// takeOver takes the lost node id over if its claim is still at rev,
// ends its calls and delivers its notifications (see the comment above).
func (n *Node) takeOver(ctx context.Context, kv *store.KV, lease time.Duration, id string, rev uint64, old nodeClaim, silent time.Duration) error {
	start := time.Now()
	log := n.log.With("lost", id)
	host, _ := os.Hostname()
	inst := make([]byte, 8)
	_, _ = rand.Read(inst)
	tk := &claim{kv: kv, id: id, lease: lease, log: log,
		mine: nodeClaim{Instance: hex.EncodeToString(inst), Host: host, PID: os.Getpid(), Started: start, Beat: start,
			LeaseMS: lease.Milliseconds(), TakenOverBy: n.ID}}
	var err error
	if tk.rev, err = kv.Update(ctx, id, tk.value(), rev); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil // another node took it over, or it came back
		}
		return err
	}
	n.takeovers.Inc()
	log.Warn("a node was lost: taking over its calls and notifications",
		"last_beat", old.Beat, "silent_for", silent.Round(time.Millisecond), "its_host", old.Host, "its_pid", old.PID)
	tctx, cancel := context.WithCancel(ctx)
	tk.lost = func(string) { cancel() }
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Add(1)
	go func() { defer wg.Done(); tk.run(tctx) }()

	// Its calls are dead already: their share of the cluster-wide call
	// counts is released first, so a bot told they ended can call again.
	if _, err := callctl.DropNodeLimits(tctx, n.Store, id); err != nil {
		return err
	}
	cfg := n.Config
	ob, err := webhook.Open(tctx, n.Store, n.Identity, webhook.Options{
		Node: id, Timeout: cfg.Notifications.Timeout.D(), MaxAge: cfg.Notifications.MaxAge.D(),
		Workers: cfg.Notifications.Workers, Client: n.egress.Client(cfg.Notifications.Timeout.D()),
		Logger: log.With("component", "webhook"), OnResult: n.onResult,
	})
	if err != nil {
		return fmt.Errorf("open the outbox of node %s: %w", id, err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := ob.Run(tctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("outbox of a lost node stopped", "err", err)
		}
	}()
	mgr, err := callctl.New(tctx, callctl.Options{Node: id, Config: cfg, Directory: n.Directory, Store: n.Store,
		Notifier: ob, Dialer: n.dial, Clock: n.clk, Logger: log.With("component", "calls"), Takeover: true})
	if err != nil {
		return err
	}
	if err := mgr.Start(tctx); err != nil {
		mgr.Stop()
		return fmt.Errorf("end the calls of node %s: %w", id, err)
	}
	if err := waitFor(tctx, func() (bool, error) { return mgr.Live() == 0, nil }); err != nil {
		mgr.Stop()
		return err
	}
	_ = mgr.Shutdown(tctx, time.Now())
	calls := mgr.Ended() // a Manager of its own: all of them are the lost node's
	n.tookOverCalls.Add(float64(calls))
	log.Warn("ended the calls of a lost node", "calls", calls, "after", time.Since(start).Round(time.Millisecond))
	// Everything it had accepted goes out before its id is given back.
	bctx, bcancel := context.WithTimeout(tctx, cfg.Notifications.MaxAge.D()+time.Minute)
	err = waitFor(bctx, func() (bool, error) {
		left, err := ob.Backlog(bctx)
		return left == 0, err
	})
	bcancel()
	if err != nil {
		return fmt.Errorf("deliver the notifications of node %s: %w", id, err)
	}
	cancel()
	wg.Wait()
	if err := webhook.Remove(ctx, n.Store, id); err != nil {
		log.Warn("remove the outbox consumer of a lost node", "err", err)
	}
	// The id is released only now, and only by this node.
	tk.finished.Store(true)
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	defer rcancel()
	if _, r, err := kv.Get(rctx, id); err == nil && r == tk.rev {
		_ = kv.Delete(rctx, id)
	}
	log.Warn("took over a lost node", "calls", calls, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// waitFor polls done, backing off to 250 ms, until it is true, fails, or
// ctx ends: what it waits for is another component's progress, which
// has no signal to wait on.
func waitFor(ctx context.Context, done func() (bool, error)) error {
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 250*time.Millisecond) {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// Nodes is how many nodes serve the deployment: this one and those whose
// claims in sb_nodes were renewed within their lease when it last looked
// (every fifth of its lease), not counting takeovers.
func (n *Node) Nodes() int { return max(1, int(n.nodes.Load())) }

// Lost is closed when this node found its id taken over by another node,
// which took it for lost (it did not renew its claim within its lease: a
// network split, a stalled process): the node has stopped its calls,
// which the other node ends, and stopped serving. Its process should
// exit; restarted, it waits for the takeover to finish.
func (n *Node) Lost() <-chan struct{} { return n.lost }

// fence stops a node taken for lost: its calls are abandoned without a
// write (the node that took over ends them), then the node stops.
func (n *Node) fence(by string) {
	n.lostOnce.Do(func() {
		n.log.Error("stopping: this node's calls were taken over by another node", "by", by)
		close(n.lost)
		go func() {
			if n.API != nil {
				n.API.Drain()
			}
			if n.Calls != nil {
				n.Calls.Stop()
			}
			n.Kill()
		}()
	})
}

// Crash stops the node as a SIGKILL would, for tests of node loss in one
// process: its NATS connection is closed first, so nothing more is
// written and its claim on its id is not released (it expires). Unlike a
// SIGKILL, closing the SIP gateway hangs up its dialogs.
func (n *Node) Crash() {
	if n.Store != nil && n.Store.Conn() != nil {
		n.Store.Conn().Close()
	}
	n.Kill()
}
