package platform

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/switchboard-voice/switchboard/internal/store"
)

// A node's id names the calls it owns and its notification outbox in the
// shared store, so two processes must never run as one node: both would
// resume the same calls and consume the same outbox. A node therefore
// claims its id in KV sb_nodes when it starts and renews the claim with a
// heartbeat. The claim of a node that died is taken over: at once when
// the node ran on this host and its process is gone (a restart after a
// crash), else once its heartbeat is older than the lease. A node whose
// claim is live refuses a second one, with an error that says why.
const (
	defaultNodeLease = 15 * time.Second
	nodeBucket       = "sb_nodes"
)

// nodeClaim is the value of a node's key in sb_nodes.
type nodeClaim struct {
	Instance string    `json:"instance"` // this process, random
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Started  time.Time `json:"started"`
	Beat     time.Time `json:"beat"`
	// LeaseMS is the holder's lease, which other nodes judge it by.
	LeaseMS int64 `json:"leaseMs,omitempty"`
	// TakenOverBy names the node that holds the claim of a lost node
	// while it ends that node's calls and delivers its notifications
	// (takeover.go). The lost node, restarted meanwhile, waits for it.
	TakenOverBy string `json:"takenOverBy,omitempty"`
	// HTTP is the base URL other nodes reach the holder's HTTP listener
	// at (cluster.httpUrl, else http.listen's address): a media socket
	// opened on another node is proxied there (graphapi). Empty until the
	// listener is up, and in a takeover's claim.
	HTTP string `json:"http,omitempty"`
}

// lease is how long the claim lasts without a heartbeat; def when the
// holder did not say.
func (nc nodeClaim) lease(def time.Duration) time.Duration {
	if nc.LeaseMS > 0 {
		return time.Duration(nc.LeaseMS) * time.Millisecond
	}
	return def
}

// claim is this process's hold on its node id.
type claim struct {
	kv    *store.KV
	id    string
	lease time.Duration
	mine  nodeClaim
	rev   uint64
	log   *slog.Logger
	// lost, when set, is told that another node took the claim over
	// (the node named): this one was taken for lost and must stop.
	lost func(by string)
	// finished marks a takeover's claim done: run releases a takeover
	// claim only then, else it expires and another node takes over.
	finished atomic.Bool
	// http is what the claim advertises as nodeClaim.HTTP, set by
	// advertise once the listener is up; kick asks run to write it at
	// once rather than at the next heartbeat.
	http atomic.Pointer[string]
	kick chan struct{}
}

// claimNodeID takes the node id for this process, waiting up to a lease
// for the claim of a node that stopped without releasing it, and fails if
// a live node holds it.
func claimNodeID(ctx context.Context, st *store.Store, id string, lease time.Duration, log *slog.Logger) (*claim, error) {
	if lease <= 0 {
		lease = defaultNodeLease
	}
	kv, err := st.Bucket(ctx, nodeBucket, 0)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	inst := make([]byte, 8)
	_, _ = rand.Read(inst)
	now := time.Now()
	c := &claim{kv: kv, id: id, lease: lease, log: log, kick: make(chan struct{}, 1),
		mine: nodeClaim{Instance: hex.EncodeToString(inst), Host: host, PID: os.Getpid(), Started: now, Beat: now,
			LeaseMS: lease.Milliseconds()}}
	deadline := now.Add(lease + lease/2)
	var seen nodeClaim
	for {
		data, rev, err := kv.Get(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if c.rev, err = kv.Create(ctx, id, c.value()); err == nil {
				return c, nil
			} else if !errors.Is(err, store.ErrExists) {
				return nil, fmt.Errorf("claim node id %s: %w", id, err)
			}
			continue // another process created it meanwhile: look at it
		case err != nil:
			return nil, fmt.Errorf("claim node id %s: %w", id, err)
		}
		var old nodeClaim
		bad := json.Unmarshal(data, &old) != nil
		if !bad && old.TakenOverBy != "" && time.Since(old.Beat) <= old.lease(c.lease) {
			// Another node is ending this node's calls, having taken it
			// for lost: starting now would resume them twice. Wait while
			// its heartbeat goes on; it releases the id when done.
			if old.Beat != seen.Beat {
				log.Warn("another node is ending this node's calls, taken for lost; waiting for it to finish",
					"by", old.TakenOverBy, "since", old.Started)
			}
			seen = old
			deadline = time.Now().Add(lease + lease/2)
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("claim node id %s: node %s is taking over its calls: %w", id, old.TakenOverBy, ctx.Err())
			case <-time.After(lease / 5):
			}
			continue
		}
		if bad || c.gone(old) {
			if c.rev, err = kv.Update(ctx, id, c.value(), rev); err == nil {
				if old.Instance != "" {
					log.Warn("took over the node id from a node that stopped without releasing it",
						"previous_host", old.Host, "previous_pid", old.PID, "previous_beat", old.Beat)
				}
				return c, nil
			} else if !errors.Is(err, store.ErrConflict) {
				return nil, fmt.Errorf("claim node id %s: %w", id, err)
			}
			continue
		}
		if old.Beat != seen.Beat && seen.Instance != "" && seen.TakenOverBy == "" {
			// Its heartbeat moved while we waited: a live node.
			return nil, fmt.Errorf("node id %s is in use by a running node (host %q, pid %d, up since %s): each node needs its own data directory and so its own node id",
				id, old.Host, old.PID, old.Started.Format(time.RFC3339))
		}
		seen = old
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("node id %s is held by a node (host %q, pid %d) whose claim did not expire", id, old.Host, old.PID)
		}
		log.Info("node id held by another process; waiting for its claim to expire or renew",
			"holder_host", old.Host, "holder_pid", old.PID, "lease", lease)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("claim node id %s: %w", id, ctx.Err())
		case <-time.After(lease / 5):
		}
	}
}

// gone reports whether the process behind old is known to have stopped:
// its heartbeat is older than a lease, or it ran on this host and its
// process no longer exists (or is this one, which a container restart
// gives the same pid).
func (c *claim) gone(old nodeClaim) bool {
	if time.Since(old.Beat) > old.lease(c.lease) {
		return true
	}
	if old.Host != c.mine.Host {
		return false
	}
	if old.PID == c.mine.PID {
		return true
	}
	err := syscall.Kill(old.PID, 0)
	return errors.Is(err, syscall.ESRCH)
}

func (c *claim) value() []byte {
	v := c.mine
	if u := c.http.Load(); u != nil {
		v.HTTP = *u
	}
	b, _ := json.Marshal(v)
	return b
}

// advertise publishes url as where other nodes reach this node's HTTP
// listener: run writes it with its next renewal, which it does at once.
// It is safe to call while run runs.
func (c *claim) advertise(url string) {
	c.http.Store(&url)
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// run renews the claim every fifth of a lease until ctx is done, then
// releases it, so that a successor starts at once (a takeover's claim
// only once finished). A claim taken by another process meanwhile is
// logged as the error it is, and told to lost when a node took it over.
func (c *claim) run(ctx context.Context) {
	t := time.NewTicker(c.lease / 5)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if c.mine.TakenOverBy != "" && !c.finished.Load() {
				return // unfinished: another node takes over once it expires
			}
			if _, rev, err := c.kv.Get(rctx, c.id); err == nil && rev == c.rev {
				_ = c.kv.Delete(rctx, c.id)
			}
			return
		case <-t.C:
		case <-c.kick:
		}
		c.mine.Beat = time.Now()
		uctx, cancel := context.WithTimeout(ctx, c.lease/5)
		rev, err := c.kv.Update(uctx, c.id, c.value(), c.rev)
		cancel()
		switch {
		case err == nil:
			c.rev = rev
		case errors.Is(err, store.ErrConflict):
			var now nodeClaim
			if data, _, gerr := c.kv.Get(ctx, c.id); gerr == nil && json.Unmarshal(data, &now) == nil && now.TakenOverBy != "" && now.TakenOverBy != c.mine.TakenOverBy {
				c.log.Error("this node was taken for lost (its claim was not renewed within its lease) and another node took over its calls; it stops",
					"by", now.TakenOverBy)
				if c.lost != nil {
					c.lost(now.TakenOverBy)
				}
				return
			}
			c.log.Error("another process claimed this node's id: two processes run as one node; stop one (each node needs its own data directory)")
			return
		default:
			c.log.Warn("renew the node's claim on its id", "err", err)
		}
	}
}
