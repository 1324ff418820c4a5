package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Options configure a Bot.
type Options struct {
	BaseURL, TenantID, AppID, Secret string
	// CallbackURL is the bot's webhook as the platform reaches it.
	CallbackURL string
	// User is the user the bot creates the meeting for (its organizer);
	// with JoinURL, the user the meeting is looked up for.
	User string
	// Subject is the subject of the meeting the bot creates.
	Subject string
	// JoinURL, when set, is an existing meeting's join link: the bot joins
	// it instead of creating one.
	JoinURL string
	// Invite are users the bot invites into the meeting once it is in it.
	Invite []string
	// Admit lets in everyone who waits in the meeting's lobby.
	Admit bool
	// Dir is the folder the WAV files are written to, one per participant.
	Dir string
	// Hold is how long Run stays in the meeting; it leaves sooner when
	// everyone who came has left. Zero: until Run's context ends.
	Hold time.Duration
	// Out gets what happens, one line per event: meeting, link, dial-in,
	// joined, left, wav (a participant's file), spoke (a stretch of speech
	// ended), dominant (the platform's dominant speaker changed). Nil
	// discards it.
	Out    io.Writer
	Logger *slog.Logger
}

// Bot joins a meeting with application-hosted media and writes each
// participant's audio to a WAV file of its own. It is safe for concurrent
// use.
type Bot struct {
	o       Options
	client  *sdk.Client
	handler *sdk.Handler
	log     *slog.Logger
	outMu   sync.Mutex
}

// New builds the bot: an SDK client and its webhook handler.
func New(o Options) (*Bot, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.User == "" {
		return nil, errors.New("speakers: no user to organize (or look up) the meeting")
	}
	if o.Dir == "" {
		o.Dir = "."
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	client, err := sdk.NewClient(sdk.ClientOptions{BaseURL: o.BaseURL, TenantID: o.TenantID, ClientID: o.AppID, ClientSecret: o.Secret})
	if err != nil {
		return nil, err
	}
	h, err := sdk.NewHandler(sdk.HandlerOptions{Client: client, CallbackURL: o.CallbackURL, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	b := &Bot{o: o, client: client, handler: h, log: o.Logger}
	if o.Admit {
		h.OnParticipants(b.admit)
	}
	return b, nil
}

// Handler is the bot's webhook; serve it at Options.CallbackURL.
func (b *Bot) Handler() *sdk.Handler { return b.handler }

func (b *Bot) printf(event, format string, args ...any) {
	b.outMu.Lock()
	defer b.outMu.Unlock()
	fmt.Fprintf(b.o.Out, "%-9s %s\n", event, fmt.Sprintf(format, args...))
}

// admit lets in whoever waits in the lobby.
func (b *Bot) admit(ctx context.Context, c *sdk.Call, ch sdk.ParticipantsChange) {
	for _, p := range slices.Concat(ch.Added, ch.Updated) {
		if !p.IsInLobby {
			continue
		}
		if err := c.Admit(ctx, p.ID); err != nil {
			b.log.Warn("admit", "participant", p.ID, "err", err)
		}
	}
}

// Speaker is one participant in the report.
type Speaker struct {
	Name, ParticipantID string
	// SourceID is the participant's sourceId: its streams' and frames'.
	SourceID uint32
	// File is the participant's WAV file.
	File string
	// Speech are the stretches the participant spoke, from their level.
	Speech []Segment
	// Spoke is the sum of Speech.
	Spoke time.Duration
	// Dominant is how long the platform named them dominant speaker.
	Dominant time.Duration
}

// Report is who spoke in the meeting, in the order they were first heard.
type Report struct{ Speakers []Speaker }

// Find returns the speaker named name.
func (r Report) Find(name string) (Speaker, bool) {
	for _, s := range r.Speakers {
		if s.Name == name {
			return s, true
		}
	}
	return Speaker{}, false
}

// Write prints the report as a table.
func (r Report) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "speaker\tspoke\tdominant\tfile\tspeech")
	for _, s := range r.Speakers {
		segs := make([]string, len(s.Speech))
		for i, x := range s.Speech {
			segs[i] = x.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Spoke.Round(10*time.Millisecond), s.Dominant.Round(10*time.Millisecond), s.File, strings.Join(segs, " "))
	}
	return tw.Flush()
}

// Run creates the meeting (or finds the one at Options.JoinURL), prints
// how to join it, joins it with application-hosted media, subscribes to
// everyone's own audio and invites Options.Invite. It stays until
// everyone who came has left, Options.Hold has passed, or ctx ends, then
// leaves and returns who spoke.
func (b *Bot) Run(ctx context.Context) (Report, error) {
	var info *graph.OnlineMeeting
	var err error
	if b.o.JoinURL != "" {
		if info, err = b.client.FindMeetingByJoinURL(ctx, b.o.User, b.o.JoinURL); err != nil {
			b.log.Warn("the meeting's details are unknown", "user", b.o.User, "err", err)
			info = &graph.OnlineMeeting{JoinWebURL: b.o.JoinURL}
		}
	} else if info, err = b.client.CreateMeeting(ctx, b.o.User, &graph.OnlineMeeting{Subject: b.o.Subject}); err != nil {
		return Report{}, fmt.Errorf("speakers: %w", err)
	}
	if info.Subject != "" {
		b.printf("meeting", "%s", info.Subject)
	}
	b.printf("link", "%s", info.JoinWebURL)
	if a := info.AudioConferencing; a != nil && a.ConferenceID != "" {
		if a.TollNumber != "" {
			b.printf("dial-in", "%s, conference id %s#", a.TollNumber, a.ConferenceID)
		} else {
			b.printf("dial-in", "conference id %s# (the tenant has no dial-in number)", a.ConferenceID)
		}
	}

	call, err := b.handler.JoinMeetingByURL(ctx, info.JoinWebURL,
		&graph.MediaConfig{ODataType: graph.TypeAppHostedMediaConfig, Blob: "examples/speakers"})
	if err != nil {
		return Report{}, fmt.Errorf("speakers: %w", err)
	}
	leave := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := call.HangUp(ctx); err != nil && !errors.Is(err, sdk.ErrCallEnded) {
			b.log.Warn("leave", "err", err)
		}
	}
	// The socket opens while the call is being set up: nothing is missed.
	m, err := call.OpenMedia(ctx, nil)
	if err != nil {
		leave()
		return Report{}, fmt.Errorf("speakers: %w", err)
	}
	defer m.Close()
	if err := m.SubscribeAll(); err != nil {
		leave()
		return Report{}, fmt.Errorf("speakers: %w", err)
	}
	r := &recording{b: b, m: m, tracks: map[uint32]*track{}, taken: map[string]bool{}, dominant: map[uint32]time.Duration{},
		alone: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(r.events)
	wg.Go(r.read)

	if len(b.o.Invite) > 0 {
		if err := call.WaitState(ctx, graph.StateEstablished); err != nil {
			b.log.Warn("the meeting call did not come up", "err", err)
		}
	}
	for _, id := range b.o.Invite {
		if _, err := call.Invite(ctx, sdk.UserTarget(id, "")); err != nil {
			b.log.Warn("invite", "user", id, "err", err)
		}
	}
	var hold <-chan time.Time
	if b.o.Hold > 0 {
		t := time.NewTimer(b.o.Hold)
		defer t.Stop()
		hold = t.C
	}
	select {
	case <-r.alone:
		b.log.Info("everyone who came has left")
	case <-hold:
	case <-call.Done():
	case <-ctx.Done():
	}
	leave() // the socket's bye ends the reader, which closes the files
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // no bye: the call may be gone already
		_ = m.Close()
		<-done
	}
	return r.report(), r.err
}

// recording is the bot's side of the media socket while it is in the
// meeting.
type recording struct {
	b *Bot
	m *sdk.MediaSocket

	t0     atomic.Uint64 // the first frame's timestamp
	now    atomic.Int64  // the last frame's time since t0, ms
	tracks map[uint32]*track
	taken  map[string]bool
	order  []*track
	err    error // the first file error

	mu        sync.Mutex // what follows, shared by the two goroutines
	present   map[uint32]string
	came      bool
	alone     chan struct{}
	closed    bool // alone is
	domSource uint32
	domSince  time.Duration
	dominant  map[uint32]time.Duration
}

// read writes each participant's frames to their file until the call
// ends. It allocates nothing per frame, only for a new participant.
func (r *recording) read() {
	var f sdk.MediaFrame
	started := false
	for {
		if err := r.m.ReadFrame(&f); err != nil {
			if !errors.Is(err, sdk.ErrCallEnded) && !errors.Is(err, sdk.ErrMediaClosed) {
				r.b.log.Warn("media socket", "err", err)
			}
			break
		}
		if !started {
			r.t0.Store(f.Timestamp)
			started = true
		}
		n := int64(f.Timestamp-r.t0.Load()) / 20
		r.now.Store(n * 20)
		if f.SourceID == 0 {
			continue // the mix of everyone: each one's own stream is written
		}
		t := r.tracks[f.SourceID]
		if t == nil {
			src, known := r.m.Source(f.SourceID)
			if !known {
				// Not in the roster yet: its file is named once the
				// roster names it (a few frames later at most).
				continue
			}
			var err error
			if t, err = newTrack(r.b.o.Dir, src, f.SourceID, r.taken); err != nil {
				r.fail(err)
				continue
			}
			r.tracks[f.SourceID] = t
			r.order = append(r.order, t)
			r.b.printf("wav", "%s %s", t.name, t.path)
		}
		if s, ok := t.add(&f, n); ok {
			r.b.printf("spoke", "%s %s", t.name, s)
		}
	}
	for _, t := range r.order {
		s, ok, err := t.close()
		if ok {
			r.b.printf("spoke", "%s %s", t.name, s)
		}
		if err != nil {
			r.fail(err)
		}
	}
}

func (r *recording) fail(err error) {
	if r.err == nil {
		r.err = fmt.Errorf("speakers: %w", err)
	}
	r.b.log.Error("recording", "err", err)
}

// clock is the time since the bot's first frame, on the call's media clock.
func (r *recording) clock() time.Duration { return time.Duration(r.now.Load()) * time.Millisecond }

// events follows the roster (who is here, who has left) and the dominant
// speaker.
func (r *recording) events() {
	for ev := range r.m.Events() {
		switch ev := ev.(type) {
		case sdk.MediaHello:
			r.roster(ev.Roster)
		case sdk.MediaRoster:
			r.roster(ev.Roster)
		case sdk.MediaDominantSpeaker:
			r.dominantSpeaker(ev.SourceID)
		}
	}
	r.dominantSpeaker("") // the time of whoever was dominant at the end
}

func (r *recording) roster(roster []sdk.MediaSource) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.present == nil {
		r.present = map[uint32]string{}
	}
	now := map[uint32]string{}
	for _, s := range roster {
		name := s.DisplayName
		if name == "" {
			name = s.ParticipantID
		}
		now[s.ID] = name
		if _, ok := r.present[s.ID]; !ok {
			r.b.printf("joined", "%s (source %d)", name, s.ID)
			r.came = true
		}
	}
	for id, name := range r.present {
		if _, ok := now[id]; !ok {
			r.b.printf("left", "%s", name)
		}
	}
	r.present = now
	if r.came && len(now) == 0 && !r.closed {
		r.closed = true
		close(r.alone)
	}
}

func (r *recording) dominantSpeaker(sourceID string) {
	var id uint32
	if sourceID != "" {
		_, _ = fmt.Sscan(sourceID, &id)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	at := r.clock()
	if r.domSource != 0 {
		r.dominant[r.domSource] += at - r.domSince
	}
	same := id == r.domSource
	r.domSource, r.domSince = id, at
	if same || sourceID == "" {
		return
	}
	name := r.present[id]
	if name == "" {
		name = "source " + sourceID
	}
	r.b.printf("dominant", "%s %.2fs", name, at.Seconds())
}

// report is who spoke; called once read and events have ended.
func (r *recording) report() Report {
	var rep Report
	for _, t := range r.order {
		rep.Speakers = append(rep.Speakers, Speaker{Name: t.name, ParticipantID: t.pid, SourceID: t.source, File: t.path,
			Speech: t.speech, Spoke: t.spoken(), Dominant: r.dominant[t.source]})
	}
	return rep
}
