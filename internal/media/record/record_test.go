package record

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/media/g711"
	"github.com/switchboard-voice/switchboard/internal/media/prompt"
	"github.com/switchboard-voice/switchboard/internal/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openStore opens the embedded store in dir; it is closed when the test
// ends (closing it twice is fine).
func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(ctxT(t), store.Options{DataDir: dir, Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// env is a recording store served over loopback HTTP.
type env struct {
	st  *store.Store
	rs  *Store
	srv *httptest.Server
}

func newEnv(t testing.TB, dir string) *env {
	t.Helper()
	st := openStore(t, dir)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	rs, err := NewStore(ctxT(t), st, srv.URL+"/", time.Hour, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Close)
	rs.Routes(mux)
	return &env{st: st, rs: rs, srv: srv}
}

// toneFrames is seconds of freq Hz at 8 kHz, cut into 20 ms frames.
func toneFrames(freq, amp, seconds float64) [][]int16 {
	n := int(seconds * media.SampleRate)
	var frames [][]int16
	for start := 0; start < n; start += media.SamplesPerFrame {
		f := make([]int16, media.SamplesPerFrame)
		for i := range f {
			f[i] = int16(amp * 32767 * math.Sin(2*math.Pi*freq*float64(start+i)/media.SampleRate))
		}
		frames = append(frames, f)
	}
	return frames
}

func concat(frames [][]int16) []int16 {
	var out []int16
	for _, f := range frames {
		out = append(out, f...)
	}
	return out
}

// goertzel returns the amplitude of the freq Hz component of x at 8 kHz.
func goertzel(x []int16, freq float64) float64 {
	w := 2 * math.Pi * freq / media.SampleRate
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s := float64(v) + coeff*s1 - s2
		s2, s1 = s1, s
	}
	return 2 * math.Hypot(s1-s2*math.Cos(w), s2*math.Sin(w)) / float64(len(x))
}

func download(t *testing.T, method, location, auth string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), method, location, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// pacedWrite writes frames no faster than the upload takes them. The
// media clock writes one every 20 ms, far slower than the upload; a test
// writing seconds of audio at once instead waits for room in the
// uploader's queue.
func pacedWrite(r *Recording, frames [][]int16) {
	for _, f := range frames {
		for len(r.up.jobs) == cap(r.up.jobs) {
			runtime.Gosched()
		}
		r.Write(f)
	}
}

func record(t *testing.T, rs *Store, frames [][]int16) (location, token string) {
	t.Helper()
	r, err := rs.Begin(ctxT(t), "call-1", "op-1")
	if err != nil {
		t.Fatal(err)
	}
	pacedWrite(r, frames)
	location, token, err = r.Finish(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Dropped(); d != 0 {
		t.Fatalf("%d frames dropped", d)
	}
	return location, token
}

// ulawRoundTrip is pcm as a recording keeps it: through G.711 µ-law.
func ulawRoundTrip(pcm []int16) []int16 {
	b := make([]byte, len(pcm))
	g711.EncodeUlaw(b, pcm)
	out := make([]int16, len(pcm))
	g711.DecodeUlaw(out, b)
	return out
}

func TestRecordAndDownload(t *testing.T) {
	e := newEnv(t, t.TempDir())
	frames := toneFrames(1000, 0.5, 5)
	want := ulawRoundTrip(concat(frames))
	location, token := record(t, e.rs, frames)
	if !strings.HasPrefix(location, e.srv.URL+"/recordings/") {
		t.Fatalf("location %q, want under %s/recordings/", location, e.srv.URL)
	}
	if raw, _ := base64Len(token); raw != 32 {
		t.Fatalf("token %q is not 32 url-safe base64 bytes", token)
	}

	resp := download(t, http.MethodGet, location, "Bearer "+token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type %q, want application/octet-stream", ct)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ContentLength != int64(len(body)) || len(body) != 44+2*len(want) {
		t.Fatalf("body %d bytes, Content-Length %d; want %d", len(body), resp.ContentLength, 44+2*len(want))
	}
	// The header says what it holds...
	le := binary.LittleEndian
	if string(body[0:4]) != "RIFF" || le.Uint32(body[4:]) != uint32(len(body)-8) || string(body[8:16]) != "WAVEfmt " ||
		le.Uint16(body[20:]) != 1 || le.Uint16(body[22:]) != 1 || le.Uint32(body[24:]) != 8000 ||
		le.Uint16(body[34:]) != 16 || string(body[36:40]) != "data" || le.Uint32(body[40:]) != uint32(2*len(want)) {
		t.Fatalf("bad WAV header % x", body[:44])
	}
	// ...any WAV reader can read it, and it is the tone that was recorded.
	got, err := prompt.DecodeWAV(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d samples, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sample %d is %d, want %d", i, got[i], want[i])
		}
	}
	if a := goertzel(got, 1000); math.Abs(a-0.5*32767) > 0.01*32767 {
		t.Errorf("1 kHz amplitude %.0f, want %.0f", a, 0.5*32767)
	}

	// The token is stored only as its hash.
	id := location[strings.LastIndex(location, "/")+1:]
	info, err := e.rs.obs.GetInfo(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(token))
	if info.Metadata[metaTokenHash] != hex.EncodeToString(sum[:]) {
		t.Errorf("metadata %v does not hold the token's SHA-256", info.Metadata)
	}
	meta, _ := json.Marshal(info)
	if bytes.Contains(meta, []byte(token)) {
		t.Errorf("the token is stored in the object's info: %s", meta)
	}
	if info.Metadata[metaCall] != "call-1" || info.Metadata[metaOperation] != "op-1" {
		t.Errorf("metadata %v", info.Metadata)
	}
}

// TestServesPCMObjects: recordings stored as 16-bit PCM by an earlier
// version (metadata format pcm_s16le) are still served and read as they
// are.
func TestServesPCMObjects(t *testing.T) {
	e := newEnv(t, t.TempDir())
	want := concat(toneFrames(700, 0.4, 1.5))
	raw := make([]byte, 2*len(want))
	for i, v := range want {
		binary.LittleEndian.PutUint16(raw[2*i:], uint16(v))
	}
	const id, token = "00112233445566778899aabbccddeeff", "old-token"
	_, err := e.rs.obs.Put(ctxT(t), jetstream.ObjectMeta{Name: id, Metadata: map[string]string{
		metaTokenHash: hashToken(token), metaCall: "c", metaOperation: "o",
		metaStarted: time.Now().UTC().Format(time.RFC3339Nano), metaFormat: formatPCM,
	}}, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.rs.Read(ctxT(t), id)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Read: %d samples, %v; want the %d stored", len(got), err, len(want))
	}
	resp := download(t, http.MethodGet, e.srv.URL+"/recordings/"+id, "Bearer "+token)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || len(body) != 44+len(raw) || !bytes.Equal(body[44:], raw) {
		t.Fatalf("GET: %s, %d bytes; want the %d stored after the header", resp.Status, len(body), 44+len(raw))
	}
}

func base64Len(s string) (int, bool) {
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return 0, false
		}
	}
	return len(s) * 6 / 8, true
}

// graphError decodes a Graph error body.
func graphError(t *testing.T, resp *http.Response) (code, message string) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type %q", ct)
	}
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Error.Code, body.Error.Message
}

func TestDownloadAuthAndErrors(t *testing.T) {
	e := newEnv(t, t.TempDir())
	location, token := record(t, e.rs, toneFrames(440, 0.3, 1))
	other, _ := record(t, e.rs, toneFrames(440, 0.3, 1))

	for _, tc := range []struct {
		name, location, auth string
		status               int
		code                 string
	}{
		{"no token", location, "", 401, "InvalidAuthenticationToken"},
		{"wrong token", location, "Bearer " + token + "x", 401, "InvalidAuthenticationToken"},
		{"another recording's token", other, "Bearer " + token, 401, "InvalidAuthenticationToken"},
		{"basic", location, "Basic " + token, 401, "InvalidAuthenticationToken"},
		{"empty bearer", location, "Bearer ", 401, "InvalidAuthenticationToken"},
		{"unknown", e.srv.URL + "/recordings/0123456789abcdef0123456789abcdef", "Bearer " + token, 404, "itemNotFound"},
		{"malformed id", e.srv.URL + "/recordings/..%2f..%2fetc", "Bearer " + token, 404, "itemNotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := download(t, http.MethodGet, tc.location, tc.auth)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %s, want %d", resp.Status, tc.status)
			}
			code, msg := graphError(t, resp)
			if code != tc.code || msg == "" {
				t.Fatalf("error %q %q, want code %q and a message", code, msg, tc.code)
			}
			if tc.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}

	// The scheme is case-insensitive (RFC 6750).
	if resp := download(t, http.MethodGet, location, "bearer "+token); resp.StatusCode != 200 {
		t.Fatalf("lower-case scheme: %s", resp.Status)
	}
	// HEAD: the headers without the body.
	resp := download(t, http.MethodHead, location, "Bearer "+token)
	if resp.StatusCode != 200 || resp.ContentLength != 44+16000 {
		t.Fatalf("HEAD: %s, Content-Length %d", resp.Status, resp.ContentLength)
	}
	if resp := download(t, http.MethodPost, location, "Bearer "+token); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %s", resp.Status)
	}

	// Past its retention a recording is gone, whether or not the store
	// has removed it yet.
	e.rs.now = func() time.Time { return time.Now().Add(time.Hour + time.Minute) }
	resp = download(t, http.MethodGet, location, "Bearer "+token)
	if resp.StatusCode != 404 {
		t.Fatalf("expired: %s, want 404", resp.Status)
	}
	if _, err := e.rs.Read(ctxT(t), location[strings.LastIndex(location, "/")+1:]); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("Read expired: %v, want NotFound", err)
	}
}

func TestRecordingSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir)
	frames := toneFrames(700, 0.4, 2)
	location, token := record(t, e.rs, frames)
	e.rs.Close()
	e.srv.Close()
	e.st.Close()

	e = newEnv(t, dir)
	id := location[strings.LastIndex(location, "/")+1:]
	got, err := e.rs.Read(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	want := concat(frames)
	if len(got) != len(want) {
		t.Fatalf("%d samples after restart, want %d", len(got), len(want))
	}
	if a := goertzel(got, 700); math.Abs(a-0.4*32767) > 0.01*32767 {
		t.Errorf("700 Hz amplitude %.0f after restart, want %.0f", a, 0.4*32767)
	}
	// The new server has a new URL; the recording's id and token still work.
	resp := download(t, http.MethodGet, e.srv.URL+"/recordings/"+id, "Bearer "+token)
	if resp.StatusCode != 200 {
		t.Fatalf("GET after restart: %s", resp.Status)
	}
}

// streamMsgs is the number of messages (chunks and metadata) in the bucket.
func streamMsgs(t *testing.T, st *store.Store) uint64 {
	t.Helper()
	s, err := st.JetStream().Stream(ctxT(t), "OBJ_"+BucketName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestAbortLeavesNothing(t *testing.T) {
	e := newEnv(t, t.TempDir())
	r, err := e.rs.Begin(ctxT(t), "call-1", "op-1")
	if err != nil {
		t.Fatal(err)
	}
	// Three seconds: the upload has taken at least two, so chunks have
	// been published before the abort.
	pacedWrite(r, toneFrames(1000, 0.5, 3))
	r.Abort()
	r.Abort() // idempotent
	r.Write(make([]int16, 160))
	if _, _, err := r.Finish(ctxT(t)); errs.KindOf(err) != errs.Conflict {
		t.Fatalf("Finish after Abort: %v, want Conflict", err)
	}
	if _, err := e.rs.Read(ctxT(t), r.ID()); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("Read after Abort: %v, want NotFound", err)
	}
	if n := streamMsgs(t, e.st); n != 0 {
		t.Fatalf("%d messages left in the bucket after Abort", n)
	}

	// Abort after Finish deletes the saved recording.
	location, token := func() (string, string) {
		r, err := e.rs.Begin(ctxT(t), "call-1", "op-2")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range toneFrames(1000, 0.5, 1) {
			r.Write(f)
		}
		l, tok, err := r.Finish(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		r.Abort()
		return l, tok
	}()
	if resp := download(t, http.MethodGet, location, "Bearer "+token); resp.StatusCode != 404 {
		t.Fatalf("GET after Finish and Abort: %s, want 404", resp.Status)
	}
}

func TestFinishTwice(t *testing.T) {
	e := newEnv(t, t.TempDir())
	r, err := e.rs.Begin(ctxT(t), "c", "o")
	if err != nil {
		t.Fatal(err)
	}
	// An empty recording is a valid, empty WAV.
	location, token, err := r.Finish(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Finish(ctxT(t)); errs.KindOf(err) != errs.Conflict {
		t.Fatalf("second Finish: %v, want Conflict", err)
	}
	resp := download(t, http.MethodGet, location, "Bearer "+token)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || len(body) != 44 {
		t.Fatalf("empty recording: %s, %d bytes", resp.Status, len(body))
	}
}

// stall makes the store's publishes wait until the returned release is
// called. Call it before the first Begin.
func stall(s *Store) (release func()) {
	gate := make(chan struct{})
	publish := s.publish
	s.async = nil // chunks go through publish
	s.publish = func(ctx context.Context, m *nats.Msg) error {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
		return publish(ctx, m)
	}
	var once sync.Once
	return func() { once.Do(func() { close(gate) }) }
}

// TestWriteNeverBlocks stalls the upload: Write must return at once,
// drop the seconds that do not fit in the uploader's bounded queue and,
// once the upload runs again, the recording keeps its length, with
// silence where seconds were dropped.
func TestWriteNeverBlocks(t *testing.T) {
	e := newEnv(t, t.TempDir())
	release := stall(e.rs)
	defer release()
	r, err := e.rs.Begin(ctxT(t), "c", "o")
	if err != nil {
		t.Fatal(err)
	}
	// The uploader takes one second and waits on the store with it; its
	// queue holds uploaderQueue more; the rest is dropped.
	kept := uploaderQueue + 1
	before := toneFrames(1000, 0.5, float64(kept+10))
	for _, f := range before {
		r.Write(f) // this would hang if Write blocked
	}
	perSecond := int64(media.SampleRate / media.SamplesPerFrame)
	if d := r.Dropped(); d != 10*perSecond {
		t.Fatalf("%d frames dropped, want %d (ten seconds)", d, 10*perSecond)
	}
	release()
	after := toneFrames(2000, 0.5, 1)
	pacedWrite(r, after)
	if _, _, err := r.Finish(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	got, err := e.rs.Read(ctxT(t), r.id)
	if err != nil {
		t.Fatal(err)
	}
	if want := (len(before) + len(after)) * media.SamplesPerFrame; len(got) != want {
		t.Fatalf("%d samples, want %d: dropped seconds must become silence", len(got), want)
	}
	q := kept * media.SampleRate
	gapEnd := len(before) * media.SamplesPerFrame
	if a := goertzel(got[:q], 1000); a < 0.49*32767 {
		t.Errorf("queued seconds: 1 kHz at %.0f", a)
	}
	for i, v := range got[q:gapEnd] {
		if v != 0 {
			t.Fatalf("sample %d of the dropped stretch is %d, want silence", q+i, v)
		}
	}
	if a := goertzel(got[gapEnd:], 2000); a < 0.49*32767 {
		t.Errorf("frames after the stall: 2 kHz at %.0f", a)
	}
}

func TestMaxDurationCuts(t *testing.T) {
	e := newEnv(t, t.TempDir())
	r, err := e.rs.Begin(ctxT(t), "c", "o")
	if err != nil {
		t.Fatal(err)
	}
	r.max = media.SampleRate // one second
	for _, f := range toneFrames(1000, 0.5, 1.5) {
		r.Write(f)
		r.Write(nil)
	}
	r.Write([]int16{1, 2, 3}) // odd sizes too
	if !r.Truncated() || r.Duration() != time.Second {
		t.Fatalf("truncated %v, duration %v", r.Truncated(), r.Duration())
	}
	if _, _, err := r.Finish(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	got, err := e.rs.Read(ctxT(t), r.id)
	if err != nil || len(got) != media.SampleRate {
		t.Fatalf("%d samples, %v; want the first second kept", len(got), err)
	}
}

func TestConcurrentWriteAndFinish(t *testing.T) {
	e := newEnv(t, t.TempDir())
	for range 5 {
		r, err := e.rs.Begin(ctxT(t), "c", "o")
		if err != nil {
			t.Fatal(err)
		}
		frame := make([]int16, 160)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					r.Write(frame)
				}
			}
		})
		for range 20 {
			r.Write(frame)
		}
		if _, _, err := r.Finish(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
	}
}

func TestCloseAbortsOpenRecordings(t *testing.T) {
	e := newEnv(t, t.TempDir())
	r, err := e.rs.Begin(ctxT(t), "c", "o")
	if err != nil {
		t.Fatal(err)
	}
	r.Write(make([]int16, 160))
	e.rs.Close()
	select {
	case <-r.done:
	default:
		t.Fatal("the upload is still running after Close")
	}
	if _, err := e.rs.Begin(ctxT(t), "c", "o2"); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("Begin after Close: %v", err)
	}
	if _, _, err := r.Finish(ctxT(t)); err == nil {
		t.Fatal("Finish after Close succeeded")
	}
}

func TestNewStoreValidates(t *testing.T) {
	st := openStore(t, t.TempDir())
	for _, tc := range []struct {
		url       string
		retention time.Duration
	}{
		{"", time.Hour},
		{"/relative", time.Hour},
		{"ftp://x", time.Hour},
		{"http://127.0.0.1:1", time.Minute},
	} {
		if _, err := NewStore(ctxT(t), st, tc.url, tc.retention, 0, nil); err == nil {
			t.Errorf("NewStore(%q, %v): no error", tc.url, tc.retention)
		}
	}
}

func TestWavHeaderIsReadable(t *testing.T) {
	// A decoder that knows nothing of Switchboard reads the header as PCM
	// 16-bit mono 8 kHz.
	pcm := []int16{0, 1000, -1000, 32767, -32768}
	h := wavHeader(int64(2 * len(pcm)))
	b := append(h[:], make([]byte, 2*len(pcm))...)
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(v))
	}
	got, err := prompt.DecodeWAV(bytes.NewReader(b))
	if err != nil || len(got) != len(pcm) {
		t.Fatalf("%v %v", got, err)
	}
	for i := range pcm {
		if got[i] != pcm[i] {
			t.Fatalf("sample %d: %d, want %d", i, got[i], pcm[i])
		}
	}
}

func nilLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// benchStore is a Store whose uploads go nowhere, to measure Write alone.
func benchStore(tb testing.TB) *Store {
	s := &Store{log: nilLogger(), now: time.Now, open: map[*Recording]struct{}{}}
	s.publish = func(context.Context, *nats.Msg) error { return nil }
	s.purge = func(context.Context, string) error { return nil }
	s.start()
	tb.Cleanup(s.Close)
	return s
}

// BenchmarkRecordingWrite is the media clock's cost per 20 ms frame while
// the upload keeps up.
func BenchmarkRecordingWrite(b *testing.B) {
	s := benchStore(b)
	r, err := s.Begin(context.Background(), "c", "o")
	if err != nil {
		b.Fatal(err)
	}
	r.max = math.MaxInt64
	frame := make([]int16, media.SamplesPerFrame)
	b.ReportAllocs()
	for b.Loop() {
		if len(r.up.jobs) == cap(r.up.jobs) {
			// Far faster than the media clock: let the uploader catch up.
			b.StopTimer()
			for len(r.up.jobs) > 0 {
				runtime.Gosched()
			}
			b.StartTimer()
		}
		r.Write(frame)
	}
	b.StopTimer()
	if d := r.Dropped(); d != 0 {
		b.Fatalf("%d frames dropped", d)
	}
	r.Abort()
}

// BenchmarkRecordingToStore is the upload path end to end into the
// embedded JetStream: ten seconds of audio per op, written as fast as the
// upload takes it, then Finish. audio-s/s is how many seconds of audio
// the path stores per second, an upper bound on concurrent recordings.
func BenchmarkRecordingToStore(b *testing.B) {
	e := newEnv(b, b.TempDir())
	frames := toneFrames(1000, 0.5, 10)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		r, err := e.rs.Begin(context.Background(), "c", "o")
		if err != nil {
			b.Fatal(err)
		}
		pacedWrite(r, frames)
		if _, _, err := r.Finish(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(10*float64(b.N)/time.Since(start).Seconds(), "audio-s/s")
}

// stalledRecording is a recording whose uploader is stuck on the store
// and whose queue is full: every second it fills is dropped.
func stalledRecording(tb testing.TB) *Recording {
	s := benchStore(tb)
	release := stall(s)
	tb.Cleanup(release)
	r, err := s.Begin(context.Background(), "c", "o")
	if err != nil {
		tb.Fatal(err)
	}
	r.max = math.MaxInt64
	second := make([]int16, media.SampleRate)
	for range uploaderQueue + batchMax + 2 {
		r.Write(second)
	}
	if r.Dropped() == 0 {
		tb.Fatal("the queue is not full")
	}
	return r
}

// BenchmarkRecordingWriteStalled is the cost when the upload is stuck and
// every second is dropped.
func BenchmarkRecordingWriteStalled(b *testing.B) {
	r := stalledRecording(b)
	frame := make([]int16, media.SamplesPerFrame)
	b.ReportAllocs()
	for b.Loop() {
		r.Write(frame)
	}
}

func TestWriteDoesNotAllocate(t *testing.T) {
	r := stalledRecording(t)
	frame := make([]int16, media.SamplesPerFrame)
	// Stalled: the queue is full and every full chunk is dropped.
	if n := testing.AllocsPerRun(200, func() { r.Write(frame) }); n != 0 {
		t.Errorf("Write allocates %.1f times per frame", n)
	}
}

// TestManyRecordingsInBatches records 24 calls at once, six on each
// uploader, each its own tone, their seconds interleaved as the media
// clock writes them: the uploaders publish them in batches, and every
// recording comes back whole, in order, with its own tone.
func TestManyRecordingsInBatches(t *testing.T) {
	e := newEnv(t, t.TempDir())
	const n, secs = 24, 3
	recs := make([]*Recording, n)
	frames := make([][][]int16, n)
	for i := range recs {
		r, err := e.rs.Begin(ctxT(t), fmt.Sprintf("call-%d", i), "op")
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = r
		frames[i] = toneFrames(float64(400+100*i), 0.5, secs)
	}
	for k := range frames[0] {
		for i, r := range recs {
			for len(r.up.jobs) == cap(r.up.jobs) {
				runtime.Gosched()
			}
			r.Write(frames[i][k])
		}
	}
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i, r := range recs {
		wg.Go(func() {
			if _, _, err := r.Finish(ctxT(t)); err != nil {
				t.Errorf("recording %d: %v", i, err)
			}
			ids[i] = r.id
		})
	}
	wg.Wait()
	for i, id := range ids {
		got, err := e.rs.Read(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != secs*media.SampleRate {
			t.Fatalf("recording %d: %d samples, want %d", i, len(got), secs*media.SampleRate)
		}
		for s := range secs {
			sec := got[s*media.SampleRate : (s+1)*media.SampleRate]
			if a := goertzel(sec, float64(400+100*i)); a < 0.45*32767 {
				t.Fatalf("recording %d, second %d: its tone at %.0f", i, s, a)
			}
		}
	}
}

// TestBatchWithARefusedRecording fills a bounded bucket: the recordings
// whose chunks the store refuses fail (Failed, then Finish), once each,
// and every one that fitted is saved.
func TestBatchWithARefusedRecording(t *testing.T) {
	st := openStore(t, t.TempDir())
	rs, err := NewStore(ctxT(t), st, "http://127.0.0.1:1/", time.Hour, 6*chunkBytes+4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Close)
	second := make([]int16, media.SampleRate)
	var recs []*Recording
	for i := range 4 { // 2 s each: two fit, the others do not
		r, err := rs.Begin(ctxT(t), fmt.Sprintf("call-%d", i), "op")
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	for range 2 {
		for _, r := range recs {
			r.Write(second)
		}
	}
	saved, failed := 0, 0
	for i, r := range recs {
		_, _, err := r.Finish(ctxT(t))
		switch {
		case err == nil:
			saved++
		case errs.KindOf(err) == errs.Unavailable:
			failed++
			if e, ok := <-r.Failed(); ok && e == nil {
				t.Errorf("recording %d: Failed gave nil", i)
			}
		default:
			t.Fatalf("recording %d: %v", i, err)
		}
	}
	if saved < 1 || failed < 1 || saved+failed != len(recs) {
		t.Fatalf("saved %d, failed %d of %d: want some of each", saved, failed, len(recs))
	}
}
