package prompt

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
)

// FuzzDecodeWAV feeds a prompt's body, as a bot's prompt server could send
// it, to DecodeWAV and on success to media.NewAudio, what the prompt cache
// does with a download. Nothing may panic; a refusal is a classified
// error (unsupported media or too large, what the bot's playPrompt
// operation reports); a decoded prompt holds audio and no more than
// MaxDuration of it.
func FuzzDecodeWAV(f *testing.F) {
	f.Add(EncodeWAV([]int16{0, 1000, -1000, 32767, -32768}, 8000))
	f.Add(EncodeWAV(make([]int16, 320), 16000))
	f.Add([]byte("ID3\x04\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pcm, err := DecodeWAV(bytes.NewReader(b))
		if err != nil {
			if k := errs.KindOf(err); k != errs.UnsupportedMedia && k != errs.TooLarge {
				t.Fatalf("unclassified error (kind %v): %v", k, err)
			}
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error wraps neither ErrFormat nor ErrTooLarge: %v", err)
			}
			return
		}
		if len(pcm) == 0 || len(pcm) > int(MaxDuration.Seconds())*media.SampleRate+media.SampleRate {
			t.Fatalf("%d samples decoded", len(pcm))
		}
		a := media.NewAudio(pcm)
		if len(a.Payload(media.PCMU)) < len(pcm) || len(a.Payload(media.PCMA)) < len(pcm) {
			t.Fatal("the encoded prompt is shorter than the decoded one")
		}
	})
}

// FuzzWAVRoundTrip writes any 8 kHz PCM with EncodeWAV, as recordings are
// served, and reads it back with DecodeWAV: the samples must come back
// unchanged.
func FuzzWAVRoundTrip(f *testing.F) {
	f.Add([]byte{0, 0, 0xff, 0x7f, 0, 0x80, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		pcm := make([]int16, len(b)/2)
		for i := range pcm {
			pcm[i] = int16(uint16(b[2*i]) | uint16(b[2*i+1])<<8)
		}
		got, err := DecodeWAV(bytes.NewReader(EncodeWAV(pcm, media.SampleRate)))
		if len(pcm) == 0 {
			if err == nil {
				t.Fatal("an empty data chunk decoded")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if !slicesEqual(got, pcm) {
			t.Fatalf("%d samples came back as %d, or changed", len(pcm), len(got))
		}
	})
}

// Every accepted rate gets a resampler of bounded size, designed for a
// rate at most 0.16 % off (the fuzzer's finding: a WAV at 191999 Hz took
// 0.9 s and 170 MB to design a filter of 12 million taps for).
func TestDesignRateBounded(t *testing.T) {
	for r := minRate; r <= maxRate; r += 7 { // every rate was checked once; a sample of them each run
		d := designRate(r, media.SampleRate)
		if d/gcd(d, media.SampleRate)*media.SampleRate > maxUpsampledRate {
			t.Fatalf("%d Hz: designed for %d Hz, upsampled beyond the bound", r, d)
		}
		if off := float64(d-r) / float64(r); off > 0.0016 || off < -0.0016 {
			t.Fatalf("%d Hz: designed for %d Hz, %.2f %% off", r, d, 100*off)
		}
	}
	for _, r := range []int{8000, 11025, 16000, 22050, 44100, 48000, 96000, 176400, 192000} {
		if d := designRate(r, media.SampleRate); d != r {
			t.Errorf("%d Hz is designed for %d Hz", r, d)
		}
	}
	start := time.Now()
	if _, err := DecodeWAV(bytes.NewReader(EncodeWAV(make([]int16, 100), 191999))); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("a 191999 Hz prompt took %v to decode", d)
	}
}
