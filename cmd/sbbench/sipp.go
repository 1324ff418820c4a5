package main

import (
	"bufio"
	"context"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The SIPp scenarios: ivr_load.xml is shared/bench/ivr_load.xml, the load
// the peers' figures were taken with; ivr_load_dtmf.xml adds one RFC 4733
// press; setup.xml has no audio, for setup-rate runs; conf_uas.xml is the
// other way round, the phones behind the trunk that group calls dial, which
// answer and speak until hung up.
//
//go:embed testdata/*.xml
var scenarios embed.FS

// alawFromPcap returns the RTP payloads of a pcap of one RTP stream over
// UDP/IPv4 on Ethernet (libpcap format, either byte order), end to end:
// g711a.pcap's speech as the raw A-law rtp_stream plays.
func alawFromPcap(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 {
		return nil, fmt.Errorf("%s: not a pcap file", path)
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4:
		bo = binary.LittleEndian
	case 0xd4c3b2a1:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("%s: not a pcap file", path)
	}
	if link := bo.Uint32(b[20:]); link != 1 {
		return nil, fmt.Errorf("%s: link type %d, not Ethernet", path, link)
	}
	var out []byte
	for off := 24; off+16 <= len(b); {
		n := int(bo.Uint32(b[off+8:]))
		if off+16+n > len(b) {
			break
		}
		pkt := b[off+16 : off+16+n]
		off += 16 + n
		if len(pkt) < 14+20 || binary.BigEndian.Uint16(pkt[12:]) != 0x0800 || pkt[14+9] != 17 {
			continue // not IPv4/UDP
		}
		ip := int(pkt[14]&0x0f) * 4
		rtp := pkt[14+ip+8:]
		if len(rtp) < 12 || rtp[0]>>6 != 2 {
			continue
		}
		h := 12 + int(rtp[0]&0x0f)*4
		if len(rtp) > h {
			out = append(out, rtp[h:]...)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no RTP payload", path)
	}
	return out, nil
}

// dtmfAt is when ivr_load_dtmf.xml presses its key, after the ACK; the
// hold that SIPp's -d sets follows it.
const dtmfAt = 7500 * time.Millisecond

// sippRun is one SIPp invocation: a UAC calling the node through the trunk,
// or with uas a UAS answering the node's calls as the trunk.
type sippRun struct {
	uas               bool // answer calls (rate, limit, pause and target unused)
	bin, dir, pcapDir string
	scenario          string // file name in testdata
	target            string // the node's SIP host:port
	localIP           string
	port, ctrlPort    int
	mediaPort         int
	rate              float64
	limit, calls      int
	pause             time.Duration // SIPp's -d
	timeout           time.Duration
	name              string        // prefix of the files it writes
	started           func(pid int) // told SIPp's pid, then 0 once it has exited
	// stop, when closed, asks SIPp to finish (SIGUSR1: no new calls, exit
	// when the calls in progress end), then ends it; its statistics are
	// read all the same. A UAS run that is missing some of its -m calls
	// needs it.
	stop <-chan struct{}
	// stopGrace is how long SIPp may take to end its calls once stopped
	// (default 10 s).
	stopGrace time.Duration
}

// sippResult is what SIPp reported.
type sippResult struct {
	Rows       []sippRow
	RTT        []time.Duration // INVITE → 200 of every call (rtd)
	Created    int
	Successful int
	Failed     int
	FailedBy   map[string]int
	Retrans    int
	ExitCode   int
	Dir        string
	Files      []string
}

// sippRow is one line of SIPp's -trace_stat file.
type sippRow struct {
	At                          time.Time
	Created, Current            int
	Successful, Failed, Retrans int
	FailedBy                    map[string]int
}

func (r *sippRun) args() []string {
	if r.uas {
		// No -trace_err: SIPp would log every turn of the speech loop
		// (a receive timeout taken on purpose), 70 lines/s at 500 legs.
		a := []string{"-sf", r.scenario, "-i", r.localIP, "-p", strconv.Itoa(r.port),
			"-cp", strconv.Itoa(r.ctrlPort), "-mp", strconv.Itoa(r.mediaPort), "-m", strconv.Itoa(r.calls),
			"-trace_stat", "-stf", r.name + "_stat.csv", "-fd", "1",
			"-nostdin"}
		if r.timeout > 0 {
			a = append(a, "-timeout", fmt.Sprintf("%ds", int(r.timeout.Seconds())), "-timeout_error")
		}
		return a
	}
	a := []string{"-sf", r.scenario, r.target, "-s", benchNumber, "-i", r.localIP, "-p", strconv.Itoa(r.port),
		"-cp", strconv.Itoa(r.ctrlPort), "-mp", strconv.Itoa(r.mediaPort),
		"-r", strconv.FormatFloat(r.rate, 'f', -1, 64), "-l", strconv.Itoa(r.limit), "-m", strconv.Itoa(r.calls),
		"-d", strconv.FormatInt(r.pause.Milliseconds(), 10),
		"-trace_stat", "-stf", r.name + "_stat.csv", "-fd", "1",
		"-trace_rtt", "-rtt_freq", "1", // SIPp writes only whole batches of rtt_freq calls
		"-trace_err", "-error_file", r.name + "_errors.log",
		"-nostdin"}
	if r.timeout > 0 {
		a = append(a, "-timeout", fmt.Sprintf("%ds", int(r.timeout.Seconds())), "-timeout_error")
	}
	return a
}

// prepare writes the scenario and the ./pcap link into the run's folder.
func (r *sippRun) prepare() error {
	b, err := scenarios.ReadFile("testdata/" + r.scenario)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.dir, r.scenario), b, 0o644); err != nil {
		return err
	}
	if r.scenario == "conf_uas_stream.xml" {
		// rtp_stream plays a raw file of the payload type's samples.
		a, err := alawFromPcap(filepath.Join(r.pcapDir, "g711a.pcap"))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(r.dir, "speech.alaw"), a, 0o644); err != nil {
			return err
		}
	}
	link := filepath.Join(r.dir, "pcap")
	if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
		if err := os.Symlink(r.pcapDir, link); err != nil {
			return err
		}
	}
	return nil
}

// Command returns the command line, for the report.
func (r *sippRun) Command() string {
	return "sipp " + strings.Join(r.args(), " ")
}

// run runs SIPp in the foreground, in its own process group, until it ends
// or ctx is done (then it is killed, with everything it started).
func (r *sippRun) run(ctx context.Context) (*sippResult, error) {
	if err := r.prepare(); err != nil {
		return nil, err
	}
	out, err := os.Create(filepath.Join(r.dir, r.name+"_screen.txt"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(r.bin, r.args()...)
	cmd.Dir = r.dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sipp: %w", err)
	}
	if r.started != nil {
		r.started(cmd.Process.Pid)
		defer r.started(0)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	stopped := false
	select {
	case werr = <-done:
	case <-r.stop:
		stopped = true
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGUSR1)
		grace := r.stopGrace
		if grace == 0 {
			grace = 10 * time.Second
		}
		select {
		case werr = <-done:
		case <-time.After(grace):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			werr = <-done
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			return nil, fmt.Errorf("sipp stopped: %w", context.Cause(ctx))
		}
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		return nil, fmt.Errorf("sipp stopped: %w", context.Cause(ctx))
	}
	res := &sippResult{ExitCode: cmd.ProcessState.ExitCode(), Dir: r.dir, FailedBy: map[string]int{}}
	// 0: every call succeeded; 1: some failed. Anything else is SIPp's own
	// failure, unless it was asked to stop.
	if res.ExitCode != 0 && res.ExitCode != 1 && !stopped {
		return nil, fmt.Errorf("sipp exited with %v; see %s:\n%s", werr, out.Name(), tail(out.Name(), 15))
	}
	f, err := os.Open(filepath.Join(r.dir, r.name+"_stat.csv"))
	if err != nil {
		return nil, fmt.Errorf("sipp statistics: %w", err)
	}
	defer f.Close()
	if res.Rows, err = parseSippStat(f); err != nil {
		return nil, err
	}
	if n := len(res.Rows); n > 0 {
		last := res.Rows[n-1]
		res.Created, res.Successful, res.Failed, res.Retrans, res.FailedBy = last.Created, last.Successful, last.Failed, last.Retrans, last.FailedBy
	}
	// -trace_rtt writes <scenario>_<pid>_rtt.csv.
	base := strings.TrimSuffix(r.scenario, ".xml")
	rtt := filepath.Join(r.dir, fmt.Sprintf("%s_%d_rtt.csv", base, cmd.Process.Pid))
	if rf, err := os.Open(rtt); err == nil {
		res.RTT, err = parseSippRTT(rf)
		rf.Close()
		if err != nil {
			return nil, err
		}
		_ = os.Rename(rtt, filepath.Join(r.dir, r.name+"_rtt.csv"))
	}
	return res, nil
}

// sippOut is how a SIPp run started in the background ended.
type sippOut struct {
	res *sippResult
	err error
}

// start runs SIPp in the background: the channel gets its result.
func (r *sippRun) start(ctx context.Context) <-chan sippOut {
	done := make(chan sippOut, 1)
	go func() {
		res, err := r.run(ctx)
		done <- sippOut{res, err}
	}()
	return done
}

// parseSippStat reads SIPp's -trace_stat CSV (';'-separated, one header
// line; times are "date<TAB>time<TAB>epoch").
func parseSippStat(r io.Reader) ([]sippRow, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() {
		return nil, errors.New("sipp statistics: empty file")
	}
	col := map[string]int{}
	header := strings.Split(strings.TrimRight(sc.Text(), ";"), ";")
	for i, h := range header {
		col[h] = i
	}
	for _, need := range []string{"CurrentTime", "TotalCallCreated", "CurrentCall", "SuccessfulCall(C)", "FailedCall(C)"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("sipp statistics: no %s column", need)
		}
	}
	var rows []sippRow
	for sc.Scan() {
		f := strings.Split(sc.Text(), ";")
		if len(f) < len(header) {
			continue
		}
		num := func(name string) int {
			i, ok := col[name]
			if !ok {
				return 0
			}
			v, _ := strconv.Atoi(strings.TrimSpace(f[i]))
			return v
		}
		ts := f[col["CurrentTime"]]
		if i := strings.LastIndexByte(ts, '\t'); i >= 0 {
			ts = ts[i+1:]
		}
		sec, err := strconv.ParseFloat(strings.TrimSpace(ts), 64)
		if err != nil {
			return nil, fmt.Errorf("sipp statistics: CurrentTime %q", f[col["CurrentTime"]])
		}
		row := sippRow{At: time.Unix(0, int64(sec*1e9)), Created: num("TotalCallCreated"), Current: num("CurrentCall"),
			Successful: num("SuccessfulCall(C)"), Failed: num("FailedCall(C)"), Retrans: num("Retransmissions(C)"),
			FailedBy: map[string]int{}}
		for name := range col {
			if k, ok := strings.CutPrefix(name, "Failed"); ok && strings.HasSuffix(k, "(C)") && k != "Call(C)" {
				if v := num(name); v > 0 {
					row.FailedBy[strings.TrimSuffix(k, "(C)")] = v
				}
			}
		}
		rows = append(rows, row)
	}
	return rows, sc.Err()
}

// parseSippRTT reads -trace_rtt's "date_ms;response_time_ms;rtd_no" lines.
func parseSippRTT(r io.Reader) ([]time.Duration, error) {
	var out []time.Duration
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ";")
		if len(f) < 2 {
			continue
		}
		ms, err := strconv.ParseFloat(strings.TrimSpace(f[1]), 64)
		if err != nil {
			continue // the header
		}
		out = append(out, time.Duration(ms*float64(time.Millisecond)))
	}
	return out, sc.Err()
}

// callSeconds integrates SIPp's CurrentCall over time (trapezoids between
// its one-second rows): the call-seconds the peers' figures divide by.
func callSeconds(rows []sippRow) float64 {
	var s float64
	for i := 1; i < len(rows); i++ {
		dt := rows[i].At.Sub(rows[i-1].At).Seconds()
		s += dt * float64(rows[i].Current+rows[i-1].Current) / 2
	}
	return s
}

// creationWindow is how long SIPp took to create its calls: from the first
// row to the first row at the final TotalCallCreated, interpolated within
// the last second.
func creationWindow(rows []sippRow) time.Duration {
	if len(rows) < 2 {
		return 0
	}
	total := rows[len(rows)-1].Created
	for i := 1; i < len(rows); i++ {
		if rows[i].Created >= total {
			prev := rows[i-1]
			frac := 1.0
			if d := rows[i].Created - prev.Created; d > 0 {
				frac = float64(total-prev.Created) / float64(d)
			}
			return prev.At.Sub(rows[0].At) + time.Duration(frac*float64(rows[i].At.Sub(prev.At)))
		}
	}
	return rows[len(rows)-1].At.Sub(rows[0].At)
}

// percentile returns the p-quantile (0..1) of d, nearest rank.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}
