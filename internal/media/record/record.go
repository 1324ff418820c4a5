// Package record keeps the recordings of recordResponse operations
// (https://learn.microsoft.com/graph/api/call-record) in a JetStream object
// store and serves them to bots: GET {recordingLocation} with Authorization:
// Bearer {recordingAccessToken} returns the recording as a WAV file.
//
// Audio streams from the media clock to the object store while the caller
// speaks, without a goroutine per recording: Recording.Write encodes each
// 20 ms frame as G.711 µ-law into a pooled one-second chunk and, once the
// chunk is full, hands it to one of a few uploaders shared by the node,
// which publishes it. Nothing per recording grows without bound in memory
// (docs/decisions.md#media-sharing): when the store falls behind and an
// uploader's queue is full, the second is dropped, counted, and replaced by
// silence of the same length so that the recording keeps its timing.
//
// The upload writes the object store's own layout (NATS ADR-20: chunk
// messages on $O.<bucket>.C.<nuid>, then the ObjectInfo on
// $O.<bucket>.M.<name> with a subject rollup) rather than calling
// ObjectStore.Put: Put in nats.go v1.55 starts a reconnect-listener
// goroutine per call that, when Put finishes before that goroutine first
// runs, blocks forever on a nil channel (jetstream.resetPendingAcksOnReconnect
// racing cleanupReplySub) — a slow leak of one goroutine per unlucky
// recording. Reads, deletes and expiry use the library; the tests read every
// recording back through it, so a change of layout would fail them.
//
// Objects hold G.711 µ-law at 8 kHz (half the bytes of 16-bit PCM, and the
// quality of the calls they record); they are served as 16-bit PCM WAV
// files, decoded on the way out, the header computed from the object's
// size. Objects stored as 16-bit PCM by earlier versions (metadata
// "format") are served as they are. The access token is
// stored only as its SHA-256 in the object's metadata, and the bucket's TTL
// deletes recordings after the configured retention.
package record

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/media/g711"
	"github.com/switchboard-voice/switchboard/internal/media/prompt"
	"github.com/switchboard-voice/switchboard/internal/store"
)

// BucketName is the JetStream object store bucket holding recordings.
const BucketName = "sb_recordings"

// MaxDuration caps one recording. Graph limits recordResponse to 120 s
// (maxRecordDurationInSeconds) and callctl enforces that; this cap only
// bounds what a caller that forgets can store. Audio past it is cut, and
// what was recorded before is kept.
const MaxDuration = 10 * time.Minute

const (
	maxSamples = int64(MaxDuration/time.Second) * media.SampleRate
	// chunkBytes is the object store chunk: one second of 8 kHz µ-law
	// audio per JetStream message.
	chunkBytes = media.SampleRate
	// uploaders publish the node's recordings, each recording on one;
	// uploaderQueue bounds the chunks waiting for each, and batchMax those
	// it publishes at once (run): 4 × 128 seconds of audio, 4 MB, shared
	// by every recording.
	uploaders     = 4
	uploaderQueue = 64
	// batchWait is how long an uploader lets chunks gather before it
	// publishes them together: recordings' seconds reach the store up to
	// 0.1 s later.
	batchWait = 100 * time.Millisecond
	batchMax  = 64
	// abortWait bounds how long Abort waits for the store to discard a
	// partial upload before giving up on it.
	abortWait = 5 * time.Second
	// wavHeaderLen is the canonical 44-byte RIFF/WAVE header.
	wavHeaderLen = prompt.WAVHeaderLen
)

// The object store's layout (NATS ADR-20), as nats.go writes it.
const (
	streamName    = "OBJ_" + BucketName
	chunkSubjects = "$O." + BucketName + ".C."
	metaSubjects  = "$O." + BucketName + ".M."
)

// publishTimeout bounds the store's acknowledgement of one chunk.
const publishTimeout = 10 * time.Second

// Object metadata keys.
const (
	metaTokenHash = "token-sha256"
	metaCall      = "call-id"
	metaOperation = "operation-id"
	metaStarted   = "started"
	metaFormat    = "format"
	formatPCM     = "pcm_s16le; rate=8000; channels=1" // before µ-law
	formatUlaw    = "g711_ulaw; rate=8000; channels=1"
)

// Store creates recordings and serves them over HTTP. It is safe for
// concurrent use; its owner calls Close, which aborts the recordings still
// open.
type Store struct {
	obs       jetstream.ObjectStore
	publicURL string
	retention time.Duration
	log       *slog.Logger
	now       func() time.Time
	chunks    sync.Pool // of *chunk
	ups       []*uploader
	quit      chan struct{} // closed by Close: the uploaders stop
	upWG      sync.WaitGroup

	// publish and purge reach the bucket's stream; benchmarks replace them.
	// async publishes chunks without waiting (publishAll); nil: they go
	// through publish, one at a time.
	publish func(ctx context.Context, m *nats.Msg) error
	async   jetstream.JetStream
	purge   func(ctx context.Context, subject string) error

	mu     sync.Mutex
	open   map[*Recording]struct{}
	next   int // the uploader of the next recording
	closed bool
}

// NewStore opens (creating or updating) the recordings bucket in st, with
// objects expiring after retention. publicURL is the base URL bots reach
// this node's HTTP server at; recordingLocation is publicURL +
// "/recordings/" + id. retention must be at least MaxDuration: the bucket's
// TTL applies to each chunk from the moment it is written, so a shorter one
// could expire the start of a long recording before it is finished.
// maxBytes bounds the bucket (0: no bound): once full, new chunks are
// refused, so a recording under way fails (see Recording.Failed) and the
// rest of the store, sharing its disk, goes on working.
func NewStore(ctx context.Context, st *store.Store, publicURL string, retention time.Duration, maxBytes int64, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("record: public url %q is not an absolute http(s) URL", publicURL)
	}
	if retention < MaxDuration {
		return nil, fmt.Errorf("record: retention %s is shorter than the longest recording (%s)", retention, MaxDuration)
	}
	obs, err := st.ObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      BucketName,
		Description: "recordResponse recordings: 8 kHz mono G.711 µ-law",
		TTL:         retention,
		MaxBytes:    maxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    st.Replicas(),
	})
	if err != nil {
		return nil, fmt.Errorf("record: object store %s: %w", BucketName, err)
	}
	s := &Store{
		obs:       obs,
		publicURL: strings.TrimRight(publicURL, "/"),
		retention: retention,
		log:       log,
		now:       time.Now,
		open:      map[*Recording]struct{}{},
	}
	stream, err := st.JetStream().Stream(ctx, streamName)
	if err != nil {
		return nil, fmt.Errorf("record: object store %s: %w", BucketName, err)
	}
	js := st.JetStream()
	s.async = js
	s.publish = func(ctx context.Context, m *nats.Msg) error {
		_, err := js.PublishMsg(ctx, m)
		return err
	}
	s.purge = func(ctx context.Context, subject string) error {
		return stream.Purge(ctx, jetstream.WithPurgeSubject(subject))
	}
	s.start()
	return s, nil
}

// start starts the uploaders.
func (s *Store) start() {
	s.chunks.New = func() any { return new(chunk) }
	s.quit = make(chan struct{})
	for range uploaders {
		u := &uploader{s: s, jobs: make(chan upJob, uploaderQueue)}
		s.ups = append(s.ups, u)
		s.upWG.Go(u.run)
	}
}

// Close aborts every recording still open, waits for their uploads to
// stop, and stops the uploaders. Later Begins fail. It is idempotent.
func (s *Store) Close() {
	s.mu.Lock()
	wasClosed := s.closed
	s.closed = true
	open := make([]*Recording, 0, len(s.open))
	for r := range s.open {
		open = append(open, r)
	}
	s.mu.Unlock()
	for _, r := range open {
		r.Abort()
	}
	if !wasClosed {
		close(s.quit)
	}
	s.upWG.Wait()
}

// Recording states.
const (
	stateRecording int32 = iota
	stateFinishing       // Finish was called: Write is a no-op
	stateAborted
)

// Recording is one recording in progress. Write is called from the media
// clock goroutine; Finish and Abort from the call's owner. Write must not
// be called concurrently with itself; the three may be called concurrently
// with each other. The caller must call Finish or Abort.
//
// A recording has no goroutine of its own: Write encodes each frame
// (G.711 µ-law) into the chunk being filled and, once it holds a second,
// hands it to one of the store's uploaders, the same one for all of the
// recording's chunks so they are published in order.
type Recording struct {
	s            *Store
	id           string
	token        string
	callID, opID string
	subject      string // the chunks' subject
	log          *slog.Logger
	max          int64 // samples
	started      time.Time
	up           *uploader
	ctx          context.Context // the upload's; cancelled when it is over
	cancel       context.CancelFunc
	abortOnce    sync.Once

	mu      sync.Mutex // Write against Finish and Abort
	cur     *chunk     // guarded by mu: the chunk being filled; nil once handed over for good
	silence int64      // guarded by mu: bytes of silence standing for dropped chunks, sent before the next queued one

	state     atomic.Int32
	samples   atomic.Int64 // accepted by Write, dropped ones included
	dropped   atomic.Int64 // frames (20 ms) dropped
	truncated atomic.Bool

	// Owned by the uploader until done is closed.
	digest      hash.Hash
	size        uint64
	chunks      uint32
	uploadErr   error         // the first publish that failed; later chunks are skipped
	failHandled bool          // the failure was purged and reported
	done        chan struct{} // closed when the uploader has finished (saved, failed or purged)
	putErr      error         // set before done is closed
	failed      chan error    // the upload's error, if it failed while recording; closed with done
}

// chunk is one object chunk being filled or on its way to the store.
type chunk struct {
	b [chunkBytes]byte
	n int
}

// Begin starts a recording for operation opID of call callID. ctx's values
// are kept for the upload, but not its cancellation: a recording ends with
// Finish or Abort.
func (s *Store) Begin(ctx context.Context, callID, opID string) (*Recording, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("begin recording: %w", err)
	}
	id, err := randomString(16, hex.EncodeToString)
	if err != nil {
		return nil, err
	}
	token, err := randomString(32, base64.RawURLEncoding.EncodeToString)
	if err != nil {
		return nil, err
	}
	nuid, err := randomString(12, hex.EncodeToString)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errs.E(errs.Unavailable, "cannot record: the node is shutting down")
	}
	r := s.newRecording(ctx, id, token, callID, opID, nuid)
	s.open[r] = struct{}{}
	return r, nil
}

// newRecording returns a recording on the next uploader. s.mu is held.
func (s *Store) newRecording(ctx context.Context, id, token, callID, opID, nuid string) *Recording {
	r := &Recording{
		s:       s,
		id:      id,
		token:   token,
		callID:  callID,
		opID:    opID,
		subject: chunkSubjects + nuid,
		log:     s.log.With("callId", callID, "operationId", opID, "recording", id),
		max:     maxSamples,
		started: s.now(),
		up:      s.ups[s.next%len(s.ups)],
		cur:     s.chunks.Get().(*chunk),
		digest:  sha256.New(),
		done:    make(chan struct{}),
		failed:  make(chan error, 1),
	}
	s.next++
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	return r
}

func randomString(n int, encode func([]byte) string) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("record: random: %w", err)
	}
	return encode(b), nil
}

func hashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Failed gives the error that ended the upload before Finish (the store
// refused a chunk: a full disk, say), once, so that the recording can be
// stopped at once rather than when it would have ended: it cannot be
// saved. The channel is closed when the upload is over, failed or not.
func (r *Recording) Failed() <-chan error { return r.failed }

// Write appends pcm (8 kHz mono) to the recording. It never blocks, does
// not allocate (chunks come from a pool) and does not retain pcm. When the
// uploaders are behind, a full second is dropped, counted in Dropped, and
// replaced by silence, so that the recording keeps its timing. Audio past
// MaxDuration is cut (see Truncated). Write after Finish or Abort does
// nothing.
func (r *Recording) Write(pcm []int16) {
	if r.state.Load() != stateRecording {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state.Load() != stateRecording {
		return
	}
	have := r.samples.Load() // only Write adds: Load then Add is safe
	if have+int64(len(pcm)) > r.max {
		pcm = pcm[:max(r.max-have, 0)]
		r.truncated.Store(true)
	}
	r.samples.Add(int64(len(pcm)))
	for len(pcm) > 0 {
		c := r.cur
		k := min(len(pcm), chunkBytes-c.n)
		g711.EncodeUlaw(c.b[c.n:c.n+k], pcm[:k])
		c.n += k
		pcm = pcm[k:]
		if c.n == chunkBytes {
			r.queueLocked()
		}
	}
}

// queueLocked hands the full chunk to the uploader, or, if its queue is
// full, drops it for silence. r.mu is held.
func (r *Recording) queueLocked() {
	if r.up.try(upJob{r: r, c: r.cur, silence: r.silence}) {
		r.silence = 0
		r.cur = r.s.chunks.Get().(*chunk)
		return
	}
	r.silence += int64(r.cur.n)
	r.dropped.Add(int64(r.cur.n / media.SamplesPerFrame))
	r.cur.n = 0
}

// Dropped is the number of 20 ms frames dropped because the upload was
// behind.
func (r *Recording) Dropped() int64 { return r.dropped.Load() }

// Truncated reports whether audio was cut at MaxDuration.
func (r *Recording) Truncated() bool { return r.truncated.Load() }

// Duration is the length of the audio written so far.
func (r *Recording) Duration() time.Duration {
	return time.Duration(r.samples.Load()) * time.Second / media.SampleRate
}

// ID is the recording's id, the last segment of its location.
func (r *Recording) ID() string { return r.id }

// Finish ends the recording, waits for the upload to complete and returns
// the recording's location and the access token a bot downloads it with
// (recordingLocation and recordingAccessToken of the recordOperation,
// https://learn.microsoft.com/graph/api/call-record). If ctx ends first, the
// recording is aborted.
func (r *Recording) Finish(ctx context.Context) (location, accessToken string, err error) {
	r.mu.Lock()
	if !r.state.CompareAndSwap(stateRecording, stateFinishing) {
		r.mu.Unlock()
		return "", "", errs.E(errs.Conflict, "recording %s was already finished or aborted", r.id)
	}
	last := upJob{r: r, c: r.cur, silence: r.silence, final: true}
	r.cur, r.silence = nil, 0
	r.mu.Unlock()
	if err := r.up.send(ctx, last); err != nil {
		// The uploader is stuck (the store is down) or gone: what it
		// published expires with the bucket's TTL.
		r.abortOnce.Do(func() {})
		r.state.Store(stateAborted)
		r.cancel()
		r.s.forget(r)
		return "", "", fmt.Errorf("finish recording %s: %w", r.id, err)
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		r.Abort()
		return "", "", fmt.Errorf("finish recording %s: %w", r.id, ctx.Err())
	}
	r.cancel()
	r.s.forget(r)
	if r.state.Load() == stateAborted {
		return "", "", errs.E(errs.Conflict, "recording %s was aborted", r.id)
	}
	if r.putErr != nil {
		return "", "", errs.Wrap(errs.Unavailable, r.putErr, "the recording could not be saved")
	}
	if d := r.dropped.Load(); d > 0 {
		r.log.Warn("recording dropped frames: the object store was behind", "frames", d)
	}
	return r.s.publicURL + "/recordings/" + r.id, r.token, nil
}

// Abort stops the recording and discards it: the partial upload is purged,
// or, if Finish already saved it, the object is deleted. It waits (at most
// a few seconds) for the store to do so; an uploader that cannot take the
// request in that time leaves what was published to the bucket's TTL. It is
// idempotent.
func (r *Recording) Abort() {
	r.abortOnce.Do(func() {
		r.mu.Lock()
		prev := r.state.Swap(stateAborted)
		if r.cur != nil {
			r.s.putChunk(r.cur)
			r.cur = nil
		}
		r.mu.Unlock()
		if prev == stateRecording {
			// The uploader purges what it published and ends the upload;
			// a publish under way for it is cut short.
			ctx, cancel := context.WithTimeout(context.Background(), abortWait)
			if err := r.up.send(ctx, upJob{r: r, final: true}); err != nil {
				r.log.Error("abort recording: the uploader is stuck; its chunks expire with the bucket's TTL", "err", err)
			}
			cancel()
		}
		select {
		case <-r.done:
		case <-time.After(abortWait):
		}
		r.cancel()
		r.s.forget(r)
		if prev == stateFinishing {
			select {
			case <-r.done:
			default:
				return // Finish's upload is still stuck: nothing was saved
			}
			if r.putErr != nil {
				return
			}
			// Finish won the race to the store: delete what it saved.
			ctx, cancel := context.WithTimeout(context.Background(), abortWait)
			defer cancel()
			if err := r.s.obs.Delete(ctx, r.id); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
				r.log.Error("delete aborted recording", "err", err)
			}
		}
	})
}

func (s *Store) forget(r *Recording) {
	s.mu.Lock()
	delete(s.open, r)
	s.mu.Unlock()
}

// putChunk returns c, emptied, to the pool.
func (s *Store) putChunk(c *chunk) {
	c.n = 0
	s.chunks.Put(c)
}

// errAborted ends an upload, which purges the chunks it published.
var errAborted = errors.New("record: recording aborted")

// uploader publishes the chunks of its recordings, in the order they were
// queued, one at a time. A few uploaders serve every recording of the node.
type uploader struct {
	s    *Store
	jobs chan upJob

	// The batch being published; the uploader's own.
	batch  []upJob
	msgs   []*nats.Msg
	owners []*Recording
	errs   []error
}

// upJob is a chunk to publish (after silence bytes of silence), or with
// final the recording's end: its last partial chunk (if any) and its info,
// or, if the recording was aborted, the purge of what was published.
type upJob struct {
	r       *Recording
	c       *chunk // may be nil
	silence int64
	final   bool
}

// try queues j without waiting.
func (u *uploader) try(j upJob) bool {
	select {
	case u.jobs <- j:
		return true
	default:
		return false
	}
}

// send queues j, waiting for room until ctx ends or the store closes.
func (u *uploader) send(ctx context.Context, j upJob) error {
	select {
	case u.jobs <- j:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-u.s.quit:
		return errs.E(errs.Unavailable, "the recordings store is closed")
	}
}

// run publishes until the store closes; jobs left then belong to
// recordings Close has aborted.
//
// Chunks are published in batches: once a job arrives, the uploader lets
// others gather for up to batchWait (less when a recording ends, which
// someone waits for), publishes every chunk of the batch without waiting,
// and then waits for their acknowledgements (publishAll). A publish and its
// acknowledgement cost several hand-offs between goroutines in the client
// and the server; a batch costs them once. Recordings started at random
// times fill their chunks at random times, so without the wait batches
// would hold one chunk.
func (u *uploader) run() {
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		var j upJob
		select {
		case j = <-u.jobs:
		case <-u.s.quit:
			return
		}
		u.batch = append(u.batch[:0], j)
		if !j.final && u.s.async != nil { // one at a time: nothing to gain
			t.Reset(batchWait)
		gather:
			for len(u.batch) < batchMax {
				select {
				case j := <-u.jobs:
					u.batch = append(u.batch, j)
					if j.final {
						break gather
					}
				case <-t.C:
					break gather
				case <-u.s.quit:
					t.Stop()
					return
				}
			}
			t.Stop()
		}
		u.do(u.batch)
		clear(u.batch)
	}
}

// do publishes the chunks of a batch of jobs, in order, then ends the
// recordings whose last job is in it.
func (u *uploader) do(batch []upJob) {
	// Every chunk of the batch, as messages; a recording that has failed
	// or was aborted publishes nothing more.
	u.msgs, u.owners = u.msgs[:0], u.owners[:0]
	add := func(r *Recording, b []byte) {
		r.digest.Write(b)
		m := nats.NewMsg(r.subject)
		m.Data = b
		u.msgs = append(u.msgs, m)
		u.owners = append(u.owners, r)
		r.size += uint64(len(b))
		r.chunks++
	}
	for _, j := range batch {
		r := j.r
		if r.uploadErr != nil || r.state.Load() == stateAborted {
			continue
		}
		for rest := j.silence; rest > 0; {
			n := min(rest, chunkBytes)
			add(r, silenceChunk[:n])
			rest -= n
		}
		if j.c != nil && j.c.n > 0 {
			add(r, j.c.b[:j.c.n])
		}
	}
	if len(u.msgs) > 0 {
		u.errs = append(u.errs[:0], make([]error, len(u.msgs))...)
		u.s.publishAll(u.msgs, u.owners, u.errs)
		for i, err := range u.errs {
			if r := u.owners[i]; err != nil && r.uploadErr == nil {
				r.uploadErr = fmt.Errorf("publish recording chunk: %w", err)
			}
		}
		clear(u.msgs)
		clear(u.owners)
	}
	for _, j := range batch {
		if j.c != nil {
			u.s.putChunk(j.c) // published: the client has copied it
		}
		u.settle(j)
	}
}

// settle reports a failed upload once and ends the recording on its last
// job.
func (u *uploader) settle(j upJob) {
	r := j.r
	aborted := r.state.Load() == stateAborted
	if r.uploadErr != nil && !r.failHandled {
		r.failHandled = true
		if !aborted {
			r.purge()
			r.log.Error("recording upload failed", "err", r.uploadErr)
			r.failed <- r.uploadErr
		}
	}
	if !j.final {
		return
	}
	switch {
	case aborted || r.state.Load() == stateAborted:
		if r.uploadErr == nil {
			r.purge() // what was published (a failed upload purged already)
		}
		r.putErr = errAborted
	case r.uploadErr != nil:
		r.putErr = r.uploadErr
	default:
		if err := r.publishInfo(); err != nil {
			r.purge()
			r.putErr = err
		}
	}
	close(r.failed)
	close(r.done)
}

// publishAll publishes ms in order and sets errs[i] to the outcome of
// ms[i], the chunks of owners[i]. With JetStream it sends them all, then
// waits for the acknowledgements (at most publishTimeout, or until the
// recording's context ends: an abort cuts its wait short); otherwise (the
// tests' stalled store, the benchmarks' null one) it publishes them one
// after the other.
func (s *Store) publishAll(ms []*nats.Msg, owners []*Recording, errs []error) {
	if s.async == nil {
		for i, m := range ms {
			ctx, cancel := context.WithTimeout(owners[i].ctx, publishTimeout)
			errs[i] = s.publish(ctx, m)
			cancel()
		}
		return
	}
	futs := make([]jetstream.PubAckFuture, len(ms))
	for i, m := range ms {
		futs[i], errs[i] = s.async.PublishMsgAsync(m)
	}
	deadline := time.NewTimer(publishTimeout)
	defer deadline.Stop()
	for i, f := range futs {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs[i] = err
		case <-owners[i].ctx.Done():
			errs[i] = owners[i].ctx.Err()
		case <-deadline.C:
			for k := i; k < len(futs); k++ {
				if futs[k] != nil && errs[k] == nil {
					select {
					case <-futs[k].Ok():
					default:
						errs[k] = context.DeadlineExceeded
					}
				}
			}
			return
		}
	}
}

// silenceChunk is a second of µ-law silence.
var silenceChunk = func() (b [chunkBytes]byte) {
	g711.EncodeUlaw(b[:], make([]int16, chunkBytes))
	return b
}()

// purge removes the chunks published so far (Abort, or a failed upload).
func (r *Recording) purge() {
	// The context may be cancelled already (Abort gave up waiting).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), publishTimeout)
	defer cancel()
	if err := r.s.purge(ctx, r.subject); err != nil {
		r.log.Error("purge partial recording", "err", err)
	}
}

// publishInfo writes the object's info, which makes the recording visible.
func (r *Recording) publishInfo() error {
	nuid := strings.TrimPrefix(r.subject, chunkSubjects)
	info := jetstream.ObjectInfo{
		ObjectMeta: jetstream.ObjectMeta{
			Name:        r.id,
			Description: "recordResponse recording",
			Metadata: map[string]string{
				metaTokenHash: hashToken(r.token),
				metaCall:      r.callID,
				metaOperation: r.opID,
				metaStarted:   r.started.UTC().Format(time.RFC3339Nano),
				metaFormat:    formatUlaw,
			},
			Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunkBytes},
		},
		Bucket: BucketName,
		NUID:   nuid,
		Size:   r.size,
		Chunks: r.chunks,
		Digest: jetstream.GetObjectDigestValue(r.digest),
	}
	data, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("encode recording info: %w", err)
	}
	m := nats.NewMsg(metaSubjects + base64.URLEncoding.EncodeToString([]byte(r.id)))
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	m.Data = data
	ctx, cancel := context.WithTimeout(r.ctx, publishTimeout)
	defer cancel()
	if err := r.s.publish(ctx, m); err != nil {
		return fmt.Errorf("publish recording info: %w", err)
	}
	return nil
}

// Read returns the samples of recording id (8 kHz mono), for tests and for
// playing a recording back. An unknown or expired id is errs.NotFound.
func (s *Store) Read(ctx context.Context, id string) ([]int16, error) {
	info, err := s.info(ctx, id)
	if err != nil {
		return nil, err
	}
	b, err := s.obs.GetBytes(ctx, id)
	if err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, errs.Wrap(errs.NotFound, err, "recording %s does not exist or has expired", id)
		}
		return nil, errs.Wrap(errs.Unavailable, err, "recording %s could not be read", id)
	}
	if isPCM(info) {
		pcm := make([]int16, len(b)/2)
		for i := range pcm {
			pcm[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return pcm, nil
	}
	pcm := make([]int16, len(b))
	g711.DecodeUlaw(pcm, b)
	return pcm, nil
}

// isPCM reports whether an object holds 16-bit PCM, as earlier versions
// stored recordings, rather than µ-law.
func isPCM(info *jetstream.ObjectInfo) bool { return info.Metadata[metaFormat] == formatPCM }

// wavBytes is the size of the WAV data an object is served as.
func wavBytes(info *jetstream.ObjectInfo) int64 {
	if isPCM(info) {
		return int64(info.Size)
	}
	return 2 * int64(info.Size)
}

// ulawToPCM reads µ-law and returns 16-bit little-endian PCM.
type ulawToPCM struct {
	r   io.Reader
	in  [4096]byte
	pcm [4096]int16
}

func (d *ulawToPCM) Read(p []byte) (int, error) {
	k := min(len(p)/2, len(d.in))
	if k == 0 {
		return 0, io.ErrShortBuffer
	}
	n, err := d.r.Read(d.in[:k])
	g711.DecodeUlaw(d.pcm[:n], d.in[:n])
	for i, v := range d.pcm[:n] {
		binary.LittleEndian.PutUint16(p[2*i:], uint16(v))
	}
	return 2 * n, err
}

// info returns the metadata of a live recording: errs.NotFound when id is
// malformed, unknown or past its retention.
func (s *Store) info(ctx context.Context, id string) (*jetstream.ObjectInfo, error) {
	notFound := func(err error) error {
		return errs.Wrap(errs.NotFound, err, "recording %s does not exist or has expired", id)
	}
	if !validID(id) {
		return nil, notFound(nil)
	}
	info, err := s.obs.GetInfo(ctx, id)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, notFound(err)
	}
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "recording %s could not be read", id)
	}
	// The bucket's TTL removes chunks by their own age, the first ones
	// before the metadata that follows them: a recording is gone once its
	// first chunk may be, not when the store finally forgets it.
	started, err := time.Parse(time.RFC3339Nano, info.Metadata[metaStarted])
	if err != nil {
		started = info.ModTime
	}
	if !s.now().Before(started.Add(s.retention)) {
		return nil, notFound(nil)
	}
	return info, nil
}

func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Routes registers the download endpoint, GET (and HEAD)
// /recordings/{id}, on mux.
func (s *Store) Routes(mux interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}) {
	mux.HandleFunc("GET /recordings/{id}", s.serveRecording)
}

// serveRecording implements the download of
// https://learn.microsoft.com/graph/api/call-record: the bearer token must be
// the recording's recordingAccessToken, not a Graph token; the body is a WAV
// file, sent as application/octet-stream.
func (s *Store) serveRecording(w http.ResponseWriter, req *http.Request) {
	token, ok := bearerToken(req)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="recordings"`)
		writeError(w, errs.E(errs.Unauthenticated,
			"Download a recording with the header Authorization: Bearer <recordingAccessToken>, the token of the recordOperation that made it."))
		return
	}
	id := req.PathValue("id")
	info, err := s.info(req.Context(), id)
	if err != nil {
		s.fail(w, id, err)
		return
	}
	want, err := hex.DecodeString(info.Metadata[metaTokenHash])
	got := sha256.Sum256([]byte(token))
	if err != nil || subtle.ConstantTimeCompare(want, got[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="recordings", error="invalid_token"`)
		writeError(w, errs.E(errs.Unauthenticated,
			"The access token is not valid for this recording: use the recordingAccessToken of the recordOperation that made it."))
		return
	}
	s.writeWAV(w, req, id, info, "application/octet-stream")
}

// ServeCallRecording serves recording id of call callID as a WAV file
// (audio/wav, for a page's <audio> element) without its access token:
// the caller has authenticated someone allowed to hear the node's calls
// (the operators' console). A recording of another call is not found.
func (s *Store) ServeCallRecording(w http.ResponseWriter, req *http.Request, callID, id string) {
	info, err := s.info(req.Context(), id)
	if err == nil && info.Metadata[metaCall] != callID {
		err = errs.E(errs.NotFound, "recording %s of call %s does not exist or has expired", id, callID)
	}
	if err != nil {
		s.fail(w, id, err)
		return
	}
	s.writeWAV(w, req, id, info, "audio/wav")
}

// writeWAV streams a recording as a WAV file: its header, computed from
// the object's size, then the object, decoded to 16-bit PCM.
func (s *Store) writeWAV(w http.ResponseWriter, req *http.Request, id string, info *jetstream.ObjectInfo, contentType string) {
	size := wavBytes(info)
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.FormatInt(wavHeaderLen+size, 10))
	h.Set("Cache-Control", "no-store")
	if req.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	obj, err := s.obs.Get(req.Context(), id)
	if err != nil {
		s.fail(w, id, err)
		return
	}
	defer obj.Close()
	hdr := wavHeader(size)
	if _, err := w.Write(hdr[:]); err != nil {
		return
	}
	var body io.Reader = obj
	if !isPCM(info) {
		body = &ulawToPCM{r: obj}
	}
	if _, err := io.Copy(w, body); err != nil && req.Context().Err() == nil {
		// The status is sent; a short body tells the client it failed.
		s.log.Error("serve recording", "recording", id, "err", err)
	}
}

// fail writes err as a Graph error body; an unclassified one is a store
// failure.
func (s *Store) fail(w http.ResponseWriter, id string, err error) {
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		err = errs.Wrap(errs.NotFound, err, "recording %s does not exist or has expired", id)
	}
	if k := errs.KindOf(err); k == errs.Internal || k == errs.Unavailable {
		s.log.Error("serve recording", "recording", id, "err", err)
	}
	writeError(w, err)
}

// bearerToken returns the token of an Authorization: Bearer header
// (RFC 6750 §2.1; the scheme is case-insensitive).
func bearerToken(req *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(req.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

func writeError(w http.ResponseWriter, err error) { errs.WriteGraph(w, err, time.Now(), nil) }

// wavHeader is the header of a WAV file holding size bytes of 8 kHz
// 16-bit mono PCM.
func wavHeader(size int64) [wavHeaderLen]byte { return prompt.WAVHeader(size, media.SampleRate) }
