// Package record keeps the recordings of recordResponse operations
// (https://learn.microsoft.com/graph/api/call-record) in a JetStream object
// store and serves them to bots: GET {recordingLocation} with Authorization:
// Bearer {recordingAccessToken} returns the recording as a WAV file.
//
// Audio streams from the media clock to the object store while the caller
// speaks: Recording.Write copies each 20 ms frame into a pooled buffer and
// queues it without blocking; the recording's upload goroutine reads the
// queue through an io.Reader and publishes one-second chunks. Nothing per
// recording grows without bound in memory (docs/decisions.md#media-sharing):
// when the store falls behind, frames are dropped, counted, and replaced by
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
// Objects hold raw PCM (16-bit little-endian mono at 8 kHz); the WAV header
// is computed from the object's size when it is served. The access token is
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
	// frameSamples is the capacity of one queued frame: two 20 ms frames,
	// so that a caller writing 160 samples never splits one.
	frameSamples = 2 * media.SamplesPerFrame
	// queueFrames bounds the frames between Write and the object store:
	// one second of audio, 40 KB.
	queueFrames = 50
	// chunkBytes is the object store chunk: one second of 8 kHz 16-bit
	// audio per JetStream message.
	chunkBytes = media.SampleRate * 2
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
	formatPCM     = "pcm_s16le; rate=8000; channels=1"
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
	frames    sync.Pool // of *frame

	// publish and purge reach the bucket's stream; benchmarks replace them.
	publish func(ctx context.Context, m *nats.Msg) error
	purge   func(ctx context.Context, subject string) error

	mu     sync.Mutex
	open   map[*Recording]struct{}
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
	obs, err := st.JetStream().CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      BucketName,
		Description: "recordResponse recordings: 8 kHz 16-bit mono PCM",
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
	s.frames.New = func() any { return new(frame) }
	js := st.JetStream()
	s.publish = func(ctx context.Context, m *nats.Msg) error {
		_, err := js.PublishMsg(ctx, m)
		return err
	}
	s.purge = func(ctx context.Context, subject string) error {
		return stream.Purge(ctx, jetstream.WithPurgeSubject(subject))
	}
	return s, nil
}

// Close aborts every recording still open and waits for their uploads to
// stop. Later Begins fail. It is idempotent.
func (s *Store) Close() {
	s.mu.Lock()
	s.closed = true
	open := make([]*Recording, 0, len(s.open))
	for r := range s.open {
		open = append(open, r)
	}
	s.mu.Unlock()
	for _, r := range open {
		r.Abort()
	}
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
// with each other. The caller must call Finish or Abort: until then a
// goroutine uploads the recording.
type Recording struct {
	s             *Store
	id            string
	token         string
	callID, opID  string
	log           *slog.Logger
	max           int64 // samples
	started       time.Time
	ctx           context.Context // the upload's; cancelled when it is over
	cancel        context.CancelFunc
	frames        chan *frame
	finish, abort chan struct{} // closed by Finish, Abort
	tail          int64         // silence after the last frame; set before finish is closed
	done          chan struct{} // closed when the upload is over
	putErr        error         // set before done is closed
	failed        chan error    // the upload's error, if it failed while recording; closed when the upload is over
	abortOnce     sync.Once

	state     atomic.Int32
	samples   atomic.Int64 // accepted by Write, dropped ones included
	gap       atomic.Int64 // samples dropped since the last queued frame
	dropped   atomic.Int64 // frames dropped
	truncated atomic.Bool

	src source // owned by the upload goroutine
}

// frame is a queued piece of audio, preceded by gap samples of silence that
// stand for frames dropped before it.
type frame struct {
	pcm [frameSamples]int16
	n   int
	gap int64
}

// Begin starts a recording for operation opID of call callID and its
// upload to the object store. ctx's values are kept for the upload, but not
// its cancellation: a recording ends with Finish or Abort.
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
	r := s.newRecording(ctx, id, token, callID, opID)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		r.cancel()
		return nil, errs.E(errs.Unavailable, "cannot record: the node is shutting down")
	}
	s.open[r] = struct{}{}
	s.mu.Unlock()
	go r.upload()
	return r, nil
}

// newRecording returns a recording whose upload has not started.
func (s *Store) newRecording(ctx context.Context, id, token, callID, opID string) *Recording {
	r := &Recording{
		s:       s,
		id:      id,
		token:   token,
		callID:  callID,
		opID:    opID,
		log:     s.log.With("callId", callID, "operationId", opID, "recording", id),
		max:     maxSamples,
		started: s.now(),
		frames:  make(chan *frame, queueFrames),
		finish:  make(chan struct{}),
		abort:   make(chan struct{}),
		done:    make(chan struct{}),
		failed:  make(chan error, 1),
	}
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.src.r = r
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

// upload publishes the recording as it is written: one chunk message per
// second of audio, then, once Finish has closed the queue, the object's
// info, which makes it visible. On Abort or a store error the chunks
// already published are purged.
func (r *Recording) upload() {
	defer close(r.done)
	r.putErr = r.uploadChunks()
	if r.putErr != nil && r.state.Load() != stateAborted {
		r.log.Error("recording upload failed", "err", r.putErr)
		r.failed <- r.putErr
	}
	close(r.failed)
}

// Failed gives the error that ended the upload before Finish (the store
// refused a chunk: a full disk, say), once, so that the recording can be
// stopped at once rather than when it would have ended: it cannot be
// saved. The channel is closed when the upload is over, failed or not.
func (r *Recording) Failed() <-chan error { return r.failed }

func (r *Recording) uploadChunks() error {
	nuid, err := randomString(12, hex.EncodeToString)
	if err != nil {
		return err
	}
	subject := chunkSubjects + nuid
	publish := func(m *nats.Msg) error {
		ctx, cancel := context.WithTimeout(r.ctx, publishTimeout)
		defer cancel()
		return r.s.publish(ctx, m)
	}
	fail := func(err error) error {
		// The context may be cancelled already (Abort gave up waiting).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), publishTimeout)
		defer cancel()
		if perr := r.s.purge(ctx, subject); perr != nil {
			r.log.Error("purge partial recording", "err", perr)
		}
		return err
	}

	digest := sha256.New()
	buf := make([]byte, chunkBytes)
	var size uint64
	var chunks uint32
	for {
		n, err := io.ReadFull(&r.src, buf)
		eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !eof {
			return fail(err) // aborted
		}
		if n > 0 {
			digest.Write(buf[:n])
			m := nats.NewMsg(subject)
			m.Data = buf[:n]
			if perr := publish(m); perr != nil {
				return fail(fmt.Errorf("publish recording chunk: %w", perr))
			}
			size += uint64(n)
			chunks++
		}
		if eof {
			break
		}
	}

	info := jetstream.ObjectInfo{
		ObjectMeta: jetstream.ObjectMeta{
			Name:        r.id,
			Description: "recordResponse recording",
			Metadata: map[string]string{
				metaTokenHash: hashToken(r.token),
				metaCall:      r.callID,
				metaOperation: r.opID,
				metaStarted:   r.started.UTC().Format(time.RFC3339Nano),
				metaFormat:    formatPCM,
			},
			Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunkBytes},
		},
		Bucket: BucketName,
		NUID:   nuid,
		Size:   size,
		Chunks: chunks,
		Digest: jetstream.GetObjectDigestValue(digest),
	}
	data, err := json.Marshal(info)
	if err != nil {
		return fail(fmt.Errorf("encode recording info: %w", err))
	}
	m := nats.NewMsg(metaSubjects + base64.URLEncoding.EncodeToString([]byte(r.id)))
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	m.Data = data
	if err := publish(m); err != nil {
		return fail(fmt.Errorf("publish recording info: %w", err))
	}
	return nil
}

// Write appends pcm (8 kHz mono) to the recording. It never blocks and
// does not retain pcm. When the upload is behind by more than a second, the
// frame is dropped, counted in Dropped, and replaced by silence. Audio past
// MaxDuration is cut (see Truncated). Write after Finish or Abort does
// nothing.
func (r *Recording) Write(pcm []int16) {
	if r.state.Load() != stateRecording {
		return
	}
	for len(pcm) > 0 {
		n := min(len(pcm), frameSamples)
		have := r.samples.Load() // only Write adds: Load then Add is safe
		if have+int64(n) > r.max {
			n = int(r.max - have)
			r.truncated.Store(true)
			if n <= 0 {
				return
			}
		}
		r.samples.Add(int64(n))
		if len(r.frames) < cap(r.frames) {
			f := r.s.frames.Get().(*frame)
			f.n = copy(f.pcm[:], pcm[:n])
			f.gap = r.gap.Swap(0)
			select {
			case r.frames <- f:
				pcm = pcm[n:]
				continue
			default: // Finish raced us, or the queue filled: drop
				r.gap.Add(f.gap)
				r.s.frames.Put(f)
			}
		}
		r.gap.Add(int64(n))
		r.dropped.Add(1)
		pcm = pcm[n:]
	}
}

// Dropped is the number of frames dropped because the upload was behind.
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
	if !r.state.CompareAndSwap(stateRecording, stateFinishing) {
		return "", "", errs.E(errs.Conflict, "recording %s was already finished or aborted", r.id)
	}
	r.tail = r.gap.Swap(0)
	close(r.finish)
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
// a few seconds) for the store to do so. It is idempotent.
func (r *Recording) Abort() {
	r.abortOnce.Do(func() {
		prev := r.state.Swap(stateAborted)
		close(r.abort)
		select {
		case <-r.done:
		case <-time.After(abortWait):
			r.cancel()
			<-r.done
		}
		r.cancel()
		r.s.forget(r)
		if prev == stateFinishing && r.putErr == nil {
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

// errAborted ends an upload, which purges the chunks it published.
var errAborted = errors.New("record: recording aborted")

// source is the io.Reader the upload reads the recording from. Each Read
// blocks until p is full (one object chunk, a second of audio) or the
// recording ends, so that chunks are not published per frame.
type source struct {
	r       *Recording
	silence int64  // samples of silence to emit before pending
	pending []byte // encoded audio not yet returned
	buf     [frameSamples * 2]byte
	wait    *time.Timer
}

// batchWait is how long the upload sleeps when no frame is queued.
const batchWait = 200 * time.Millisecond

func (src *source) Read(p []byte) (int, error) {
	r := src.r
	n := 0
	for n+2 <= len(p) {
		if src.silence > 0 {
			k := min(src.silence, int64((len(p)-n)/2))
			clear(p[n : n+2*int(k)])
			n += 2 * int(k)
			src.silence -= k
			continue
		}
		if len(src.pending) > 0 {
			c := copy(p[n:], src.pending)
			src.pending = src.pending[c:]
			n += c
			continue
		}
		select {
		case f := <-r.frames:
			src.take(f)
			continue
		default:
		}
		// Nothing queued: wait for a batch of frames rather than waking for
		// each 20 ms frame (a wake-up per frame per recording was most of
		// the scheduler delay the media clock saw under load). The queue
		// holds a second; this drains it five times a second.
		if src.wait == nil {
			src.wait = time.NewTimer(batchWait)
		} else {
			src.wait.Reset(batchWait)
		}
		select {
		case <-src.wait.C:
		case <-r.abort:
			return 0, errAborted
		case <-r.finish:
			select {
			case f := <-r.frames: // queued before Finish
				src.take(f)
				continue
			default:
			}
			if r.tail > 0 {
				src.silence, r.tail = r.tail, 0
				continue
			}
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		}
	}
	return n, nil
}

// take encodes f after the silence standing for the frames dropped before
// it, and returns f to the pool.
func (src *source) take(f *frame) {
	src.silence = f.gap
	for i, v := range f.pcm[:f.n] {
		binary.LittleEndian.PutUint16(src.buf[2*i:], uint16(v))
	}
	src.pending = src.buf[:2*f.n]
	src.r.s.frames.Put(f)
}

// Read returns the samples of recording id (8 kHz mono), for tests and for
// playing a recording back. An unknown or expired id is errs.NotFound.
func (s *Store) Read(ctx context.Context, id string) ([]int16, error) {
	if _, err := s.info(ctx, id); err != nil {
		return nil, err
	}
	b, err := s.obs.GetBytes(ctx, id)
	if err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, errs.Wrap(errs.NotFound, err, "recording %s does not exist or has expired", id)
		}
		return nil, errs.Wrap(errs.Unavailable, err, "recording %s could not be read", id)
	}
	pcm := make([]int16, len(b)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return pcm, nil
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
// the object's size, then the object.
func (s *Store) writeWAV(w http.ResponseWriter, req *http.Request, id string, info *jetstream.ObjectInfo, contentType string) {
	size := int64(info.Size)
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
	if _, err := io.Copy(w, obj); err != nil && req.Context().Err() == nil {
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
