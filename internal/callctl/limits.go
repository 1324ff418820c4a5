package callctl

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/store"
)

// LimitsBucket holds the cluster-wide count of live calls per application
// and tenant (calls.maxConcurrentPerApp): one key per app and tenant whose
// value maps each node to the calls it carries for them. A node changes
// only its own entry, with compare-and-set on the key's revision, and
// refuses a new call when the entries add up to the limit. A node's
// entry is set from its own live calls when it starts (a restart keeps
// what it resumed) and dropped by the node that takes over its calls
// when it is lost (DropNodeLimits), so a dead node's share does not leak.
const LimitsBucket = "sb_limits"

// limits counts this node's calls per app|tenant in LimitsBucket.
//
// A new call costs one KV round trip at most, and less under load: the
// creates of one key that arrive while a write is in flight wait for the
// next one, which grants them all at once (a group commit). The count
// the node last read is used for the compare-and-set; a conflict (another
// node wrote meanwhile) reads the key again. A call is refused only on a
// count read in the same round (so a stale count never refuses).
// Releases are written off the call path, folded into the next write.
// Safe for concurrent use.
type limits struct {
	kv    *store.KV
	node  string
	limit func() int
	log   *slog.Logger

	mu   sync.Mutex
	keys map[string]*limitKey
	wg   sync.WaitGroup // writers
}

// limitKey is one app|tenant's count; guarded by limits.mu.
type limitKey struct {
	name    string       // the KV key
	own     int          // this node's calls counted under the key
	stored  int          // own as last written (or read, when dirty is false)
	waiting []chan error // creates waiting for the next write
	busy    bool         // a writer runs for the key
	timer   *time.Timer  // a release waiting to be written (release)
	// What the last read or write of the key showed.
	loaded bool
	rev    uint64
	counts map[string]int
}

func newLimits(kv *store.KV, node string, limit func() int, log *slog.Logger) *limits {
	return &limits{kv: kv, node: node, limit: limit, log: log, keys: map[string]*limitKey{}}
}

// limitKeyName turns app|tenant (lower-case ids) into a KV key.
func limitKeyName(app, tenant string) string {
	ok := func(s string) bool {
		for _, r := range s {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
		return s != ""
	}
	if ok(app) && ok(tenant) {
		return app + "." + tenant
	}
	return "x" + hex.EncodeToString([]byte(app+"|"+tenant))
}

func (l *limits) key(name string) *limitKey {
	k := l.keys[name]
	if k == nil {
		k = &limitKey{name: name}
		l.keys[name] = k
	}
	return k
}

// acquire counts one more call of this node under name, or refuses it
// (errs.Throttled) when the cluster's calls under name reach the limit.
func (l *limits) acquire(ctx context.Context, name string) error {
	done := make(chan error, 1)
	l.mu.Lock()
	k := l.key(name)
	if k.own >= l.limit() {
		n := k.own
		l.mu.Unlock()
		return throttled(n)
	}
	k.waiting = append(k.waiting, done)
	l.kick(k)
	l.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// The writer still answers done (buffered); a grant that lands
		// after the caller gave up is given back.
		go func() {
			if <-done == nil {
				l.release(name)
			}
		}()
		return errs.Wrap(errs.Unavailable, ctx.Err(), "The call limits store did not answer in time.")
	}
}

// releaseDelay is how long a release waits to be written on its own: a
// create's write within it carries it (most do under load), so a call
// costs one write of its key, not two. A count a release has not lowered
// yet is high, never low: it can only refuse a call early, for that long.
const releaseDelay = 250 * time.Millisecond

// release counts one call fewer; written in the background, with the next
// create's write or after releaseDelay.
func (l *limits) release(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.key(name)
	if k.own > 0 {
		k.own--
	}
	if k.busy || k.timer != nil {
		return // the writer, or the armed timer, writes it
	}
	var t *time.Timer
	t = time.AfterFunc(releaseDelay, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if k.timer != t {
			return // a write came first, or wait took over
		}
		k.timer = nil
		l.kick(k)
	})
	k.timer = t
}

// adopt counts a resumed call (a restart) without asking: its share was
// counted before the restart. sync writes the counts once resumed.
func (l *limits) adopt(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.key(name).own++
}

// sync makes this node's entries in the bucket what it carries now: after
// a restart, the entries of the calls that ended with the old process go.
func (l *limits) sync(ctx context.Context) error {
	names, err := l.kv.Keys(ctx)
	if err != nil {
		return fmt.Errorf("callctl: call limits: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range names {
		l.key(n)
	}
	for _, k := range l.keys {
		k.loaded = false
		k.stored = -1 // unknown: write own
		l.kick(k)
	}
	return nil
}

// wait writes the releases still delayed and waits for the writers
// (Shutdown and Stop).
func (l *limits) wait() {
	l.mu.Lock()
	for _, k := range l.keys {
		if k.timer != nil {
			l.kick(k)
		}
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// kick starts k's writer unless it runs; a delayed release is written by
// it. l.mu is held.
func (l *limits) kick(k *limitKey) {
	if k.timer != nil {
		k.timer.Stop()
		k.timer = nil
	}
	if k.busy {
		return
	}
	k.busy = true
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.write(k)
	}()
}

// write runs while k has creates waiting or an unwritten count.
func (l *limits) write(k *limitKey) {
	for {
		l.mu.Lock()
		if len(k.waiting) == 0 && k.own == k.stored {
			k.busy = false
			l.mu.Unlock()
			return
		}
		batch := k.waiting
		k.waiting = nil
		own := k.own
		l.mu.Unlock()

		granted, err := l.commit(k, own, len(batch))
		l.mu.Lock()
		if err == nil {
			k.own += granted
			k.stored = own + granted
		} else if len(batch) == 0 {
			// A release not written: the next call or release tries
			// again; a lost node's share is dropped by its takeover.
			k.busy = false
			l.mu.Unlock()
			l.log.Warn("write the node's call count", "key", k.name, "err", err)
			return
		}
		l.mu.Unlock()
		for i, done := range batch {
			switch {
			case err != nil:
				done <- err
			case i < granted:
				done <- nil
			default:
				done <- throttled(l.limit())
			}
		}
	}
}

// commit writes this node's entry under k as own plus as many of want
// new calls as fit, and returns how many did. Only the writer of k calls
// it, so k's cached read is its own.
func (l *limits) commit(k *limitKey, own, want int) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	fresh := false
	for attempt := 0; attempt < 20; attempt++ {
		if !k.loaded {
			if err := l.read(ctx, k); err != nil {
				return 0, err
			}
			fresh = true
		}
		others := 0
		for n, c := range k.counts {
			if n != l.node {
				others += c
			}
		}
		grant := min(max(l.limit()-others-own, 0), want)
		if grant < want && !fresh {
			k.loaded = false // refuse only on a count just read
			continue
		}
		next := own + grant
		if k.counts[l.node] == next && k.rev != 0 {
			return grant, nil
		}
		if next == 0 && k.rev == 0 {
			return 0, nil // nothing stored, nothing to store
		}
		counts := make(map[string]int, len(k.counts)+1)
		for n, c := range k.counts {
			counts[n] = c
		}
		if next == 0 {
			delete(counts, l.node)
		} else {
			counts[l.node] = next
		}
		data, _ := json.Marshal(counts)
		var rev uint64
		var err error
		if k.rev == 0 {
			rev, err = l.kv.Create(ctx, k.name, data)
		} else {
			rev, err = l.kv.Update(ctx, k.name, data, k.rev)
		}
		switch {
		case err == nil:
			k.rev, k.counts = rev, counts
			return grant, nil
		case errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists):
			k.loaded = false
			fresh = false
		default:
			k.loaded = false
			return 0, errs.Wrap(errs.Unavailable, err, "The call limits store is unavailable.")
		}
	}
	return 0, errs.E(errs.Unavailable, "The call limits of key %s changed too often to be updated.", k.name)
}

// read loads k from the bucket.
func (l *limits) read(ctx context.Context, k *limitKey) error {
	data, rev, err := l.kv.Get(ctx, k.name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		k.rev, k.counts = 0, nil
	case err != nil:
		return errs.Wrap(errs.Unavailable, err, "The call limits store is unavailable.")
	default:
		var counts map[string]int
		if json.Unmarshal(data, &counts) != nil {
			counts = nil // unreadable: rewritten by the next write
		}
		k.rev, k.counts = rev, counts
	}
	k.loaded = true
	return nil
}

func throttled(n int) error {
	return errs.E(errs.Throttled, "The application has %d concurrent calls in this tenant, the limit (calls.maxConcurrentPerApp), counted across the Switchboard nodes.", n)
}

// DropNodeLimits removes a lost node's entries from the cluster-wide call
// counts, once the node that took over its calls has ended them. It
// returns how many calls they counted.
func DropNodeLimits(ctx context.Context, st *store.Store, node string) (int, error) {
	kv, err := st.Bucket(ctx, LimitsBucket, 0)
	if err != nil {
		return 0, err
	}
	names, err := kv.Keys(ctx)
	if err != nil {
		return 0, fmt.Errorf("callctl: call limits: %w", err)
	}
	dropped := 0
	for _, name := range names {
		for attempt := 0; ; attempt++ {
			data, rev, err := kv.Get(ctx, name)
			if errors.Is(err, store.ErrNotFound) {
				break
			}
			if err != nil {
				return dropped, fmt.Errorf("callctl: call limits: %w", err)
			}
			var counts map[string]int
			_ = json.Unmarshal(data, &counts)
			n, ok := counts[node]
			if !ok {
				break
			}
			delete(counts, node)
			data, _ = json.Marshal(counts)
			if _, err = kv.Update(ctx, name, data, rev); err == nil {
				dropped += n
				break
			}
			if !errors.Is(err, store.ErrConflict) || attempt > 50 {
				return dropped, fmt.Errorf("callctl: call limits: %w", err)
			}
		}
	}
	return dropped, nil
}
