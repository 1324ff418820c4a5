package prompts

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Files are served by name while others are added and removed, as a bot
// does when it plays back a recording during other calls.
func TestServerServesFilesAddedWhileServing(t *testing.T) {
	srv := httptest.NewServer(nil)
	defer srv.Close()
	s := NewServer(srv.URL + "/")
	srv.Config.Handler = s
	s.Say("hello.wav", "Hello there.")
	if got := s.URL("hello.wav"); got != srv.URL+"/hello.wav" {
		t.Fatalf("URL %q", got)
	}
	get := func(name string) (int, []byte) {
		resp, err := http.Get(s.URL(name))
		if err != nil {
			t.Error(err)
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := get("hello.wav"); code != 200 || !bytes.HasPrefix(b, []byte("RIFF")) || len(b) <= 44 {
		t.Fatalf("hello.wav: %d, %d bytes", code, len(b))
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				get("hello.wav")
			}
		})
	}
	for i := range 20 {
		s.Add("rec.wav", WAV(make([]int16, 80*i), 8000))
		s.Remove("rec.wav")
	}
	wg.Wait()
	if code, _ := get("rec.wav"); code != 404 {
		t.Fatalf("removed file: %d", code)
	}
	resp, err := http.Post(s.URL("hello.wav"), "audio/wav", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
}

func TestPhrasesRenderEachTextOnce(t *testing.T) {
	srv := NewServer("http://127.0.0.1:1")
	renders := 0
	p := &Phrases{Server: srv, Prefix: "hello", Voice: func(text string) []byte {
		renders++
		return WAV(make([]int16, 800), 8000)
	}}
	a, b, a2 := p.Name("Hello Ann."), p.Name("Hello Bo."), p.Name("Hello Ann.")
	if a != "hello-1.wav" || b != "hello-2.wav" || a2 != a || renders != 2 {
		t.Fatalf("names %q %q %q after %d renders", a, b, a2, renders)
	}
	if _, ok := srv.File(a); !ok {
		t.Fatal("the phrase is not served")
	}
}
