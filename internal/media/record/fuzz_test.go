package record

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/media/g711"
)

// FuzzDownload feeds HTTP requests, as a client sends them, to the
// recordings endpoint (GET /recordings/{id} on a mux, as the node serves
// it) of a store holding one recording. In the request, "{id}" and
// "{token}" stand for that recording's id and access token, so seeds
// reach the download itself: with Range, If-Range and other conditional
// headers, HEAD, odd methods, paths and credentials. A request Go's
// server would refuse is skipped. Nothing may panic; the answer is the
// whole recording (200: the store ignores Range, as RFC 9110 §14.2 lets a
// server do, so a client can never get a wrong slice), or a Graph error:
// 401 with WWW-Authenticate, 404 or the mux's 405.
func FuzzDownload(f *testing.F) {
	st := openStore(f, f.TempDir())
	mux := http.NewServeMux()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	f.Cleanup(cancel)
	rs, err := NewStore(ctx, st, "https://sb.test/", time.Hour, 0, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(rs.Close)
	rs.Routes(mux)
	r, err := rs.Begin(ctx, "call-1", "op-1")
	if err != nil {
		f.Fatal(err)
	}
	frames := toneFrames(440, 0.5, 0.5)
	pacedWrite(r, frames)
	location, token, err := r.Finish(ctx)
	if err != nil {
		f.Fatal(err)
	}
	id := location[strings.LastIndex(location, "/")+1:]
	// Stored as µ-law, served as 16-bit PCM.
	pcm := concat(frames)
	ulaw := make([]byte, len(pcm))
	g711.EncodeUlaw(ulaw, pcm)
	g711.DecodeUlaw(pcm, ulaw)
	whole := wavHeader(int64(2 * len(pcm)))
	want := append([]byte{}, whole[:]...)
	for _, v := range pcm {
		want = append(want, byte(v), byte(uint16(v)>>8))
	}

	f.Add("GET /recordings/{id} HTTP/1.1\r\nHost: sb.test\r\nAuthorization: Bearer {token}\r\nRange: bytes=0-43\r\n\r\n")
	f.Fuzz(func(t *testing.T, raw string) {
		raw = strings.NewReplacer("{id}", id, "{token}", token).Replace(raw)
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return // Go's server answers 400 before any handler runs
		}
		if _, p := mux.Handler(req); p == "" {
			return // no route: the node's other handlers' business
		}
		req = req.WithContext(ctx)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		res := w.Result()
		body, _ := io.ReadAll(res.Body)
		switch res.StatusCode {
		case http.StatusOK:
			if req.Method == http.MethodHead {
				body = want // the length is what Content-Length says
			}
			if !bytes.Equal(body, want) {
				t.Fatalf("200 with %d bytes, not the recording's %d", len(body), len(want))
			}
			if res.Header.Get("Content-Range") != "" {
				t.Fatalf("a range answered with status 200")
			}
		case http.StatusUnauthorized:
			if res.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
			graphBody(t, res, body)
		case http.StatusNotFound:
			graphBody(t, res, body)
		case http.StatusMethodNotAllowed:
		default:
			t.Fatalf("answered %d: %s", res.StatusCode, body)
		}
	})
}

// graphBody checks that an answer, whose body was read, is a Graph error.
func graphBody(t *testing.T, res *http.Response, body []byte) {
	t.Helper()
	res.Body = io.NopCloser(bytes.NewReader(body))
	if code, msg := graphError(t, res); code == "" || msg == "" {
		t.Fatalf("not a Graph error: %s", body)
	}
}
