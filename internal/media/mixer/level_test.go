package mixer

import "testing"

// TestAudioLevel checks RFC 6464 levels against signals of known level.
func TestAudioLevel(t *testing.T) {
	square := make([]int16, Samples8k)
	for i := range square {
		square[i] = 32767
		if i%2 == 1 {
			square[i] = -32767
		}
	}
	for _, c := range []struct {
		name string
		pcm  []int16
		want uint8
	}{
		{"full-scale square", square, 0},
		{"full-scale sine", sine(1000, 1, 8000, Samples8k), 3},
		{"sine at -20 dBFS", sine(1000, 0.1, 8000, Samples8k), 23},
		{"sine at -40 dBFS, wideband", sine(1000, 0.01, 16000, Samples16k), 43},
		{"digital silence", make([]int16, Samples8k), 127},
		{"one LSB", []int16{1, -1, 1, -1}, 90},
	} {
		if got := AudioLevel(c.pcm); got != c.want {
			t.Errorf("%s: level %d, want %d", c.name, got, c.want)
		}
	}
	if got := levelOf(meanSquareAt(-45)); got != 45 {
		t.Errorf("meanSquareAt(-45) has level %d", got)
	}
}

func BenchmarkAudioLevel(b *testing.B) {
	pcm := sine(1000, 0.1, 8000, Samples8k)
	b.ReportAllocs()
	for b.Loop() {
		AudioLevel(pcm)
	}
}
