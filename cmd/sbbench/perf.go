package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// perfRecording is linux-perf sampling the node's CPU (user and kernel
// stacks, frame-pointer unwinding, which Go binaries support) for a while.
type perfRecording struct {
	data string
	cmd  *exec.Cmd
	done chan error
}

// startPerf runs `perf record -F 499 -g -p PID -- sleep D`.
func startPerf(pid int, d time.Duration, out string) (*perfRecording, error) {
	if _, err := exec.LookPath("perf"); err != nil {
		return nil, fmt.Errorf("perf not found (Debian package linux-perf): %w", err)
	}
	p := &perfRecording{data: filepath.Join(out, "perf.data"), done: make(chan error, 1)}
	p.cmd = exec.Command("perf", "record", "-F", "499", "-g", "-p", strconv.Itoa(pid), "-o", p.data,
		"--", "sleep", strconv.Itoa(int(d.Seconds())))
	log, err := os.Create(filepath.Join(out, "perf-record.log"))
	if err != nil {
		return nil, err
	}
	p.cmd.Stdout, p.cmd.Stderr = log, log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	go func() { p.done <- p.cmd.Wait(); log.Close() }()
	return p, nil
}

// wait waits for the recording to end (or stops it when ctx is done).
func (p *perfRecording) wait(ctx context.Context) error {
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT)
		select {
		case err := <-p.done:
			return err
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			return <-p.done
		}
	}
}

// perfSummary is what the profile says.
type perfSummary struct {
	Self     []perfLine // by symbol, self time
	Children []perfLine // by symbol, inclusive time
	DSO      []perfLine // kernel versus the binary
	Files    []string
}

type perfLine struct {
	Percent float64
	What    string
}

// perfIPC is the "IPC [IPC Coverage]" columns newer perf reports add after
// the symbol, "-      -" where the CPU gives no branch data.
var perfIPC = regexp.MustCompile(`\s+(-|[0-9.]+)\s+(-|[0-9.]+%?)\s*$`)

var perfLineRE = regexp.MustCompile(`^\s+([0-9.]+)%\s+(?:([0-9.]+)%\s+)?(.*)$`)

// report writes perf's reports next to perf.data and summarises them.
func (p *perfRecording) report(out string) (*perfSummary, error) {
	s := &perfSummary{}
	run := func(name string, args ...string) (string, error) {
		cmd := exec.Command("perf", append([]string{"report", "-i", p.data, "--stdio"}, args...)...)
		b, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("perf report %s: %w", strings.Join(args, " "), err)
		}
		path := filepath.Join(out, name)
		s.Files = append(s.Files, path)
		return string(b), os.WriteFile(path, b, 0o644)
	}
	self, err := run("perf-self.txt", "--no-children", "--sort", "symbol", "-g", "none", "--percent-limit", "0.3")
	if err != nil {
		return nil, err
	}
	children, err := run("perf-children.txt", "--children", "--sort", "symbol", "-g", "none", "--percent-limit", "1")
	if err != nil {
		return nil, err
	}
	dso, err := run("perf-dso.txt", "--no-children", "--sort", "dso", "-g", "none")
	if err != nil {
		return nil, err
	}
	// A call-graph view of the top self costs, for reading, not parsing.
	if _, err := run("perf-callers.txt", "--no-children", "--sort", "symbol", "-g", "caller,0.5,callee,function,percent", "--percent-limit", "2"); err != nil {
		return nil, err
	}
	s.Self = parsePerf(self)
	s.Children = parsePerf(children)
	s.DSO = parsePerf(dso)
	return s, nil
}

// parsePerf reads `perf report --stdio -g none` lines: "  12.34%  sym" or,
// with --children, "  50.00%  1.00%  sym" (inclusive first).
func parsePerf(text string) []perfLine {
	var out []perfLine
	for l := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		m := perfLineRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		pct, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			continue
		}
		what := strings.TrimSpace(perfIPC.ReplaceAllString(m[3], ""))
		what = strings.TrimPrefix(strings.TrimPrefix(what, "[k] "), "[.] ")
		out = append(out, perfLine{Percent: pct, What: what})
	}
	return out
}

// finishPerf ends the perf recording started at the plateau and returns
// its summary; rec is nil when it could not start (startErr, logged) or
// was not asked for. Failures are logged: a run's figures stand without
// its profile.
func finishPerf(ctx context.Context, rec *perfRecording, startErr error, out string) *perfSummary {
	if rec == nil {
		if startErr != nil {
			logf("perf: %v", startErr)
		}
		return nil
	}
	if err := rec.wait(ctx); err != nil {
		logf("perf record: %v", err)
	}
	sum, err := rec.report(out)
	if err != nil {
		logf("perf report: %v", err)
	}
	return sum
}
