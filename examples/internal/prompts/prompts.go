// Package prompts is the sample bots' prompt server. A bot on
// service-hosted media hands playPrompt the URL of a WAV file, which the
// platform fetches; the samples make their prompts themselves (spoken by
// espeak-ng when it is installed, else tone patterns as long as the text)
// and serve them, together with files they make during calls such as
// recordings, from a Server.
//
// Like the samples, it uses only the standard library: a bot author can
// copy it.
package prompts

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net/http"
	"os/exec"
	"strings"
	"sync"

	"github.com/switchboard-voice/switchboard/sdk"
)

// Server serves named WAV files at {BaseURL}/{name}. It is an
// http.Handler; files can be added while it serves. A Server is safe for
// concurrent use.
type Server struct {
	base string

	mu    sync.RWMutex
	files map[string][]byte
}

var _ http.Handler = (*Server)(nil)

// NewServer returns an empty Server whose files the platform reaches under
// baseURL (e.g. http://127.0.0.1:9001).
func NewServer(baseURL string) *Server {
	return &Server{base: strings.TrimSuffix(baseURL, "/"), files: map[string][]byte{}}
}

// Add serves wav as name, replacing any file of that name.
func (s *Server) Add(name string, wav []byte) {
	s.mu.Lock()
	s.files[name] = wav
	s.mu.Unlock()
}

// Say serves text, spoken (see Speak), as name.
func (s *Server) Say(name, text string) { s.Add(name, Speak(text)) }

// Remove stops serving name.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	delete(s.files, name)
	s.mu.Unlock()
}

// File returns the WAV served as name.
func (s *Server) File(name string) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.files[name]
	return b, ok
}

// URL is where the platform fetches name.
func (s *Server) URL(name string) string { return s.base + "/" + name }

// URLs are the URLs of names, in order.
func (s *Server) URLs(names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = s.URL(n)
	}
	return out
}

// Play plays the files names on call c, one after the other, and returns
// once they have played. A prompt the platform could not play (it could
// not fetch or decode it) is an error, as is the call ending first.
func (s *Server) Play(ctx context.Context, c *sdk.Call, names ...string) error {
	op, err := c.PlayPrompt(ctx, s.URLs(names...)...)
	if err != nil {
		return fmt.Errorf("play %v: %w", names, err)
	}
	if _, err := c.Await(ctx, op); err != nil { // a failed operation is an *sdk.OperationError
		return fmt.Errorf("play %v: %w", names, err)
	}
	return nil
}

// ServeHTTP answers GET and HEAD /{name} with the file, 404 otherwise.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	data, ok := s.File(strings.TrimPrefix(r.URL.Path, "/"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "audio/wav")
	if r.Method == http.MethodGet {
		_, _ = w.Write(data)
	}
}

// Speak renders text as a WAV file with espeak-ng when it is installed
// (the platform resamples any rate), else as a 16 kHz tone pattern as long
// as the text would take to say, so that a caller still hears something.
func Speak(text string) []byte {
	if bin, err := exec.LookPath("espeak-ng"); err == nil {
		if out, err := exec.Command(bin, "--stdout", "-s", "150", text).Output(); err == nil && len(out) > 44 {
			return out
		}
	}
	n := 16000 * len(strings.Fields(text)) * 2 / 5 // ~2.5 words a second
	pcm := make([]int16, n)
	for i := range pcm {
		if (i/1600)%3 != 2 { // 100 ms on, 100 ms on, 100 ms off
			pcm[i] = int16(6000 * math.Sin(2*math.Pi*float64(440+40*((i/1600)%5))*float64(i)/16000))
		}
	}
	return WAV(pcm, 16000)
}

// WAV encodes 16-bit mono PCM at rate as a WAV file.
func WAV(pcm []int16, rate int) []byte {
	b := make([]byte, 44+2*len(pcm))
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*len(pcm)))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16) // fmt chunk size
	binary.LittleEndian.PutUint16(b[20:], 1)  // PCM
	binary.LittleEndian.PutUint16(b[22:], 1)  // mono
	binary.LittleEndian.PutUint32(b[24:], uint32(rate))
	binary.LittleEndian.PutUint32(b[28:], uint32(2*rate))
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*len(pcm)))
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(v))
	}
	return b
}

// Phrases serves spoken phrases, each rendered once and served under a
// name of its own (a file keeps its content: the platform may cache a
// prompt by its URL). It is safe for concurrent use.
type Phrases struct {
	Server *Server
	// Prefix names the files: Prefix-1.wav, Prefix-2.wav, …
	Prefix string
	// Voice renders a text as a WAV file; Speak when nil.
	Voice func(text string) []byte

	mu    sync.Mutex
	names map[string]string // file by text
}

// Name returns the name of the file saying text, rendering it the first
// time (outside the lock: espeak-ng takes a while).
func (p *Phrases) Name(text string) string {
	p.mu.Lock()
	name, ok := p.names[text]
	p.mu.Unlock()
	if ok {
		return name
	}
	voice := p.Voice
	if voice == nil {
		voice = Speak
	}
	wav := voice(text)
	p.mu.Lock()
	defer p.mu.Unlock()
	if name, ok := p.names[text]; ok {
		return name
	}
	if p.names == nil {
		p.names = map[string]string{}
	}
	name = fmt.Sprintf("%s-%d.wav", p.Prefix, len(p.names)+1)
	p.Server.Add(name, wav)
	p.names[text] = name
	return name
}
