package media

import (
	"math"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/media/dtmf"
	"github.com/switchboard-voice/switchboard/internal/media/g711"
)

// The built-in hold music is a soft chime that loops cleanly and that no
// DTMF receiver mistakes for a key, through either codec.
func TestHoldChime(t *testing.T) {
	a := HoldChime()
	if HoldChime() != a {
		t.Fatal("HoldChime is made more than once")
	}
	if d := a.Duration(); d != 4*time.Second {
		t.Fatalf("duration %v", d)
	}
	pcm := a.PCM()
	var peak int16
	for _, v := range pcm {
		peak = max(peak, v, -v)
	}
	if db := 20 * math.Log10(float64(peak)/32767); db > -6 || db < -20 {
		t.Errorf("peak %.1f dBFS, want a soft -20..-6", db)
	}
	// Audible chimes, then quiet before the loop starts again (no click
	// at the seam).
	if r := rms(pcm[:SampleRate/2]); r < 1000 {
		t.Errorf("first note rms %.0f", r)
	}
	if r := rms(pcm[len(pcm)-SampleRate/2:]); r > 30 {
		t.Errorf("tail rms %.0f, want quiet before the loop", r)
	}
	for _, c := range []Codec{PCMU, PCMA} {
		dec := make([]int16, len(pcm))
		if c == PCMU {
			g711.DecodeUlaw(dec, a.Payload(c))
		} else {
			g711.DecodeAlaw(dec, a.Payload(c))
		}
		var d dtmf.Detector
		for f := 0; f+SamplesPerFrame <= len(dec); f += SamplesPerFrame {
			if tone, ok := d.Process(dec[f : f+SamplesPerFrame]); ok {
				t.Fatalf("%s: DTMF %q detected at %v", c.Name, tone, time.Duration(f)*time.Second/SampleRate)
			}
		}
	}
}
