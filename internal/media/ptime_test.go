package media

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/media/g711"
)

// Packets of 10, 30 and 40 ms (sipp's pcaps and many carriers send 30 ms)
// are cut into 20 ms frames by timestamp: the recording is the audio sent,
// with no gaps.
func TestPtimeOtherThan20ms(t *testing.T) {
	for _, ms := range []int{10, 30, 40} {
		t.Run(time.Duration(ms*int(time.Millisecond)).String(), func(t *testing.T) {
			t.Parallel()
			e := startEngine(t, EngineOptions{})
			b, _ := newSession(t, e)
			conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			b.SetRemote(conn.LocalAddr().(*net.UDPAddr).AddrPort(), PCMA, 101)
			src := speechLike(1500*time.Millisecond, 7)
			per := ms * 8
			rec := newRecorder(len(src)/SamplesPerFrame + 5)
			b.Record(RecordOptions{}, rec.sink, rec.done)
			dst := net.UDPAddrFromAddrPort(b.LocalAddr())
			pkt := make([]byte, 12+per)
			start := time.Now()
			for i, seq := 0, uint16(100); i+per <= len(src); i, seq = i+per, seq+1 {
				pkt[0], pkt[1] = 0x80, 8
				binary.BigEndian.PutUint16(pkt[2:], seq)
				binary.BigEndian.PutUint32(pkt[4:], uint32(5000+i))
				binary.BigEndian.PutUint32(pkt[8:], 0x1234)
				g711.EncodeAlaw(pkt[12:], src[i:i+per])
				// Real-time pacing: the receiver plays out on its own clock.
				time.Sleep(time.Until(start.Add(time.Duration(i/8) * time.Millisecond)))
				if _, err := conn.WriteToUDP(pkt, dst); err != nil {
					t.Fatal(err)
				}
			}
			rec.waitFull(t)
			b.StopRecord()
			got := rec.samples()
			lag, corr := align(got, src, 20*SamplesPerFrame)
			if corr < 0.9 {
				t.Fatalf("ptime %d ms: correlation %.3f at lag %d", ms, corr, lag)
			}
			// No frame of the sent audio came out silent.
			for f := 0; f < len(src)/SamplesPerFrame-1; f++ {
				w := rms(src[f*SamplesPerFrame : (f+1)*SamplesPerFrame])
				g := rms(got[lag+f*SamplesPerFrame : lag+(f+1)*SamplesPerFrame])
				if w > 300 && g < w*0.5 {
					t.Fatalf("ptime %d ms: frame %d rms %.0f, want about %.0f", ms, f, g, w)
				}
			}
		})
	}
}
