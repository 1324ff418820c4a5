package mixer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// speechLike returns frames of a voice-like signal: a 140 Hz buzz with
// formant-ish harmonics, its loudness shaped into syllables of about
// 200 ms with pauses, averaging about −20 dBov while it talks.
func speechLike(rate, frames int, seed uint64) [][]int16 {
	rng := rand.New(rand.NewPCG(seed, 1))
	n := rate / 50
	out := make([][]int16, frames)
	f0 := 120 + 40*rng.Float64()
	for i := range out {
		out[i] = make([]int16, n)
		for j := range out[i] {
			t := float64(i*n+j) / float64(rate)
			env := math.Max(0, math.Sin(2*math.Pi*2.5*t)) // syllables and gaps
			var v float64
			for h, a := range []float64{1, 0.6, 0.8, 0.3, 0.2} {
				v += a * math.Sin(2*math.Pi*f0*float64(h+1)*t)
			}
			out[i][j] = int16(env*v*0.1*32767/1.5 + rng.NormFloat64()*20)
		}
	}
	return out
}

// lineNoise returns frames of noise at about −65 dBov: an open line
// that nobody speaks on.
func lineNoise(rate, frames int, seed uint64) [][]int16 {
	rng := rand.New(rand.NewPCG(seed, 2))
	out := make([][]int16, frames)
	for i := range out {
		out[i] = make([]int16, rate/50)
		for j := range out[i] {
			out[i][j] = int16(rng.NormFloat64() * 18)
		}
	}
	return out
}

// BenchmarkTick is one 20 ms tick of a whole conference, everything the
// mixer costs: every participant's Write (its frame's energy), the
// conference's Tick (selection, upsampling the mixed 8 kHz inputs,
// summing, limiting, downsampling and encoding each distinct mix) and
// every participant's Read. Three participants talk (voice-like
// signals), the rest send line noise; nine in ten are 8 kHz legs taking
// PCMU or PCMA, one in ten is wideband (16 kHz in and out), and there are
// listeners and a prompt as in mixedConference.
//
// Metrics: ns/op is the cost of one tick of the conference; %core is that
// as a share of one core (ns/op over the 20 ms period); ns/party is per
// participant; tick-ns and tick-%core are the conference's own Tick
// alone, the part on the conference's goroutine (Write and Read run on
// the sessions' workers).
func BenchmarkTick(b *testing.B) {
	for _, n := range []int{3, 10, 100, 500} {
		b.Run(fmt.Sprintf("parties=%d", n), func(b *testing.B) {
			c, ps, _ := mixedConference(b, n)
			const frames = 50
			ins := make([][][]int16, n)
			noise8, noise16 := lineNoise(8000, 16, 7), lineNoise(16000, 16, 8)
			for i, p := range ps {
				rate := p.Input().samples() * 50
				switch {
				case i < 3:
					ins[i] = speechLike(rate, frames, uint64(i))
				case rate == 8000:
					ins[i] = noise8
				default:
					ins[i] = noise16
				}
			}
			var f Frame
			var tick time.Duration
			k := 0
			b.ReportAllocs()
			for b.Loop() {
				for i, p := range ps {
					in := ins[i]
					p.Write(in[(k+i)%len(in)])
				}
				start := time.Now()
				c.Tick()
				tick += time.Since(start)
				for _, p := range ps {
					p.Read(&f)
				}
				k++
			}
			per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(per/float64(n), "ns/party")
			b.ReportMetric(per/float64(Period.Nanoseconds())*100, "%core")
			b.ReportMetric(float64(tick.Nanoseconds())/float64(b.N), "tick-ns")
			b.ReportMetric(float64(tick.Nanoseconds())/float64(b.N)/float64(Period.Nanoseconds())*100, "tick-%core")
		})
	}
}

// BenchmarkWrite is a producer's share per frame: copy and energy.
func BenchmarkWrite(b *testing.B) {
	c, _ := New(Options{})
	p, _ := c.Add(ParticipantOptions{})
	in := sine(1000, 0.1, 8000, Samples8k)
	b.ReportAllocs()
	for b.Loop() {
		p.Write(in)
		p.in.tail.Store(p.in.head.Load()) // the tick's share, elsewhere
	}
}

// BenchmarkPublishRead is the per-hearer cost of a mix already made and
// encoded: the tick queues it, the consumer reads it.
func BenchmarkPublishRead(b *testing.B) {
	c, _ := New(Options{})
	p, _ := c.Add(ParticipantOptions{Output: PCMU})
	c.Tick()
	var f Frame
	b.ReportAllocs()
	for b.Loop() {
		c.publish(p, &c.full)
		p.Read(&f)
	}
}
