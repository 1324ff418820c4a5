package media

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// mediaPort is call control's MediaPort (callctl.MediaPort), which a
// conference's ports, the conference itself and a session all are.
// callctl imports this package, so the guards live here.
type mediaPort interface {
	Play(a *Audio, loop bool, done func(completed bool))
	StopPlay()
	Record(o RecordOptions, sink func(pcm []int16), done func(RecordResult))
	StopRecord()
	DetectTones(on bool)
	SetMuted(m bool)
}

var (
	_ mediaPort = (*ConferencePort)(nil)
	_ mediaPort = (*Conference)(nil)
	_ mediaPort = (*Session)(nil)
)

// The two bots' prompts: A's is the conference tests' promptFreq, B's
// is clear of the members' tones and of their low-order products.
var portFreqs = []float64{promptFreq, 2850}

// ports adds two ports, A and B, to r's conference, each playing
// its tone of portFreqs in a loop.
func (r *confRig) ports() (a, b *ConferencePort) {
	r.t.Helper()
	var ps [2]*ConferencePort
	for i, name := range []string{"A", "B"} {
		p, err := r.conf.NewPort(name)
		if err != nil {
			r.t.Fatal(err)
		}
		r.t.Cleanup(p.Close)
		p.Play(NewAudio(sine(portFreqs[i], toneAmp, time.Second)), true, nil)
		ps[i] = p
	}
	return ps[0], ps[1]
}

// listenAll records, at the same time, what each of ports records.
func listenAll(t *testing.T, ports ...mediaPort) [][]int16 {
	t.Helper()
	pcms := make([][]int16, len(ports))
	var wg sync.WaitGroup
	for i, p := range ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pcms[i] = listen(t, p, 25)
		}()
	}
	wg.Wait()
	return pcms
}

// Two bots share a conference: every member hears both bots' prompts
// (and everyone but itself); each bot's recording holds the members and
// the other bot's prompt, not its own; the conference's own recording
// holds everything.
func TestConferencePortsHeardByAll(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU, PCMA, PCMU}, nil)
	a, b := r.ports()
	r.expectPrompts(func(l, k int) bool { return l != k }, portFreqs, []bool{true, true})

	freqs := append(slices.Clone(memberFreqs), portFreqs...)
	pcms := listenAll(t, a, b, r.conf)
	heard(t, "A's recording", pcms[0], freqs, []bool{true, true, true, false, true})
	heard(t, "B's recording", pcms[1], freqs, []bool{true, true, true, true, false})
	heard(t, "the conference's recording", pcms[2], freqs, []bool{true, true, true, true, true})
	if st := r.conf.Stats(); st.Missing != 0 || st.Dropped != 0 {
		t.Errorf("mixer stats %+v: frames missing or dropped", st)
	}
	if n, p := r.conf.Members(), r.conf.Ports(); n != 3 || p != 2 {
		t.Errorf("Members() = %d, Ports() = %d; want 3 and 2", n, p)
	}
	if a.Name() != "A" {
		t.Errorf("Name() = %q", a.Name())
	}
}

// A port's SetMuted silences its prompts alone, for the members and for
// the other port's recording; its play keeps time, and unmuted it is
// heard again.
func TestConferencePortMuted(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU, PCMA}, nil)
	a, b := r.ports()
	a.SetMuted(true)
	r.expectPrompts(func(l, k int) bool { return l != k }, portFreqs, []bool{false, true})
	freqs := append(slices.Clone(memberFreqs[:2]), portFreqs...)
	pcms := listenAll(t, a, b)
	heard(t, "muted A's recording", pcms[0], freqs, []bool{true, true, false, true})
	heard(t, "B's recording", pcms[1], freqs, []bool{true, true, false, false})

	a.SetMuted(false)
	r.expectPrompts(func(l, k int) bool { return l != k }, portFreqs, []bool{true, true})
	heard(t, "B's recording, A unmuted", listen(t, b, 25), freqs, []bool{true, true, true, false})
}

// Each port's Play, StopPlay and Record are its own: replacing or
// stopping one port's prompt or recording leaves the other's running,
// and a port's prompt completes as a session's does.
func TestConferencePortsIndependent(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU, PCMU}, nil)
	a, b := r.ports()
	recB := newRecorder(1 << 30)
	b.Record(RecordOptions{}, recB.sink, recB.done)
	recA := newRecorder(1 << 30)
	a.Record(RecordOptions{}, recA.sink, recA.done)
	a.StopRecord()
	if res := recA.waitResult(t); res.Reason != RecordStopped {
		t.Errorf("A's stopped recording: %+v", res)
	}
	done, waitDone := playDone(t)
	a.Play(NewAudio(sine(portFreqs[0], toneAmp, 200*time.Millisecond)), false, done)
	if !waitDone() {
		t.Error("A's prompt that played to its end: done(false)")
	}
	a.StopPlay()
	r.expectPrompts(func(l, k int) bool { return l != k }, portFreqs, []bool{false, true})
	select {
	case res := <-recB.result:
		t.Errorf("B's recording ended by A's: %+v", res)
	default:
	}
	b.StopRecord()
	recB.waitResult(t)
}

// The ports' wishes for tones are counted: while one still wants them,
// another's DetectTones(false) leaves the members detecting; once none
// does, they stop; the conference's own DetectTones is one of them, and
// a port closed no longer counts.
func TestConferencePortDetectTones(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU, PCMA}, []bool{false, true})
	a, b := r.ports()
	detecting := func() []bool {
		var on []bool
		for _, m := range r.members {
			m.s.mu.Lock()
			on = append(on, m.s.st.detect)
			m.s.mu.Unlock()
		}
		return on
	}
	a.DetectTones(true)
	b.DetectTones(true)
	b.DetectTones(true) // counted once
	a.DetectTones(false)
	r.members[0].phone.SendTones("12#", 40*time.Millisecond, nil)
	if got := r.members[0].sev.tones(t, '#'); got != "12#" {
		t.Errorf("RFC 4733 member, one port still detecting, reported %q, want 12#", got)
	}
	r.members[1].phone.SendTones("47#", 0, nil)
	if got := r.members[1].sev.tones(t, '#'); got != "47#" {
		t.Errorf("in-band member, one port still detecting, reported %q, want 47#", got)
	}
	a.DetectTones(false) // already off: does not count down B's
	if on := detecting(); !slices.Equal(on, []bool{true, true}) {
		t.Errorf("members detecting %v with B on, want all", on)
	}
	b.DetectTones(false)
	if on := detecting(); !slices.Equal(on, []bool{false, false}) {
		t.Errorf("members detecting %v with no port on, want none", on)
	}

	r.conf.DetectTones(true)
	a.DetectTones(true)
	r.conf.DetectTones(false)
	if on := detecting(); !slices.Equal(on, []bool{true, true}) {
		t.Errorf("members detecting %v with A on, the conference off, want all", on)
	}
	a.Close()
	if on := detecting(); !slices.Equal(on, []bool{false, false}) {
		t.Errorf("members detecting %v once A, the last to want tones, closed; want none", on)
	}
}

// A member's key press ends the recording of the port that has it as a
// stop tone, not another port's.
func TestConferencePortStopTones(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU, PCMA}, []bool{false, true})
	a, b := r.ports()
	recA, recB := newRecorder(1<<30), newRecorder(1<<30)
	a.Record(RecordOptions{StopTones: "#"}, recA.sink, recA.done)
	b.Record(RecordOptions{StopTones: "5"}, recB.sink, recB.done)
	waitTicks(t, r.members[0].phone, 5)       // the recordings are running
	r.members[1].phone.SendTones("#", 0, nil) // in-band: the members look for it
	if res := recA.waitResult(t); res.Reason != RecordStopTone || res.Tone != '#' {
		t.Errorf("A's recording, # pressed: %+v", res)
	}
	r.members[0].phone.SendTones("5", 0, nil)
	if res := recB.waitResult(t); res.Reason != RecordStopTone || res.Tone != '5' {
		t.Errorf("B's recording, # then 5 pressed: %+v", res)
	}
}

// Closing a port ends its play and recording before Close returns and
// takes its prompt out of the mix; the other port goes on; the name may
// be used again. Closing the conference closes the ports left.
func TestConferencePortClose(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU, PCMA}, nil)
	a, b := r.ports()
	played := make(chan bool, 1)
	recorded := make(chan RecordResult, 1)
	a.Play(NewAudio(sine(portFreqs[0], toneAmp, time.Second)), true, func(ok bool) { played <- ok })
	a.Record(RecordOptions{}, func([]int16) {}, func(res RecordResult) { recorded <- res })
	waitTicks(t, r.members[0].s, 3)
	a.Close()
	select {
	case ok := <-played:
		if ok {
			t.Error("Play cancelled by Close: done(true)")
		}
	default:
		t.Error("Play's done had not run when Close returned")
	}
	select {
	case res := <-recorded:
		if res.Reason != RecordStopped {
			t.Errorf("Record cancelled by Close: %+v", res)
		}
	default:
		t.Error("Record's done had not run when Close returned")
	}
	a.Close() // idempotent
	done, waitDone := playDone(t)
	a.Play(Beep, false, done)
	if waitDone() {
		t.Error("Play on a closed port: done(true)")
	}
	a.Record(RecordOptions{}, nil, func(res RecordResult) { recorded <- res })
	if res := <-recorded; res.Reason != RecordStopped {
		t.Errorf("Record on a closed port: %+v", res)
	}
	a.DetectTones(true) // nothing
	a.SetMuted(true)

	r.expectPrompts(func(l, k int) bool { return l != k }, portFreqs, []bool{false, true})
	heard(t, "B's recording, A closed", listen(t, b, 25), append(slices.Clone(memberFreqs[:2]), portFreqs...), []bool{true, true, false, false})
	if n := r.conf.Ports(); n != 1 {
		t.Errorf("Ports() = %d after A closed, want 1", n)
	}

	// The name is free again; names are checked.
	a2, err := r.conf.NewPort("A")
	if err != nil {
		t.Fatalf("reopening A: %v", err)
	}
	if _, err := r.conf.NewPort("B"); err == nil {
		t.Error("a second port named B")
	}
	if _, err := r.conf.NewPort(""); err == nil {
		t.Error("a port without a name")
	}

	// The conference's Close closes the ports left, their done first.
	b.Play(NewAudio(sine(portFreqs[1], toneAmp, time.Second)), true, func(ok bool) { played <- ok })
	a2.Record(RecordOptions{}, nil, func(res RecordResult) { recorded <- res })
	r.conf.Close()
	select {
	case ok := <-played:
		if ok {
			t.Error("B's Play cancelled by the conference's Close: done(true)")
		}
	default:
		t.Error("B's Play's done had not run when the conference's Close returned")
	}
	select {
	case res := <-recorded:
		if res.Reason != RecordStopped {
			t.Errorf("A's Record cancelled by the conference's Close: %+v", res)
		}
	default:
		t.Error("A's Record's done had not run when the conference's Close returned")
	}
	b.Close() // closed with the conference: nothing
	if n := r.conf.Ports(); n != 0 {
		t.Errorf("Ports() = %d after the conference's Close, want 0", n)
	}
	if _, err := r.conf.NewPort("C"); !errors.Is(err, ErrConferenceClosed) {
		t.Errorf("NewPort after Close: %v", err)
	}
}
