package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"time"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/platform"
)

// With -inprocess the node runs inside sbbench (platform.Start, as
// cmd/switchboard does) so that Go's own profiles can be taken: CPU and
// heap profiles and a short execution trace at the plateau, an allocation
// profile at the end. The process's CPU and RSS then include the bot's,
// so the figures of such a run are not the node's alone: it is a profiling
// mode, not a measurement.

// startNodeInProcess starts the node in this process.
func startNodeInProcess(ctx context.Context, out string, nc nodeConfig) (*node, error) {
	n := &node{dir: nc.dataDir, cfgPath: filepath.Join(out, "switchboard.yaml"),
		logPath: filepath.Join(out, "switchboard.log"), exited: make(chan struct{}),
		httpURL: fmt.Sprintf("http://127.0.0.1:%d", nc.httpPort), sipAddr: fmt.Sprintf("127.0.0.1:%d", nc.sipPort)}
	b, err := nc.yaml()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(n.cfgPath, b, 0o644); err != nil {
		return nil, err
	}
	cfg, err := config.Parse(b)
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(n.logPath)
	if err != nil {
		return nil, err
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: lvl}))
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	p, err := platform.Start(sctx, &cfg, platform.Options{Logger: log})
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("start the node in-process: %w", err)
	}
	n.inproc, n.inprocLog = p, logf
	return n, nil
}

// profiles are the Go profiles of an in-process run.
type profiles struct {
	out   string
	cpu   *os.File
	trace *os.File
	files []string
}

// startProfiles starts the CPU profile and an execution trace of traceFor,
// and writes the heap profile (after a GC: what is live at the plateau).
func startProfiles(out string, traceFor time.Duration) (*profiles, error) {
	p := &profiles{out: out}
	var err error
	if p.cpu, err = os.Create(filepath.Join(out, "cpu.pprof")); err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(p.cpu); err != nil {
		return nil, err
	}
	p.files = append(p.files, p.cpu.Name())
	runtime.GC()
	if err := p.write("heap.pprof", "heap"); err != nil {
		return nil, err
	}
	if traceFor > 0 {
		if p.trace, err = os.Create(filepath.Join(out, "trace.out")); err != nil {
			return nil, err
		}
		if err := trace.Start(p.trace); err != nil {
			return nil, err
		}
		p.files = append(p.files, p.trace.Name())
		time.AfterFunc(traceFor, func() { trace.Stop(); p.trace.Close() })
	}
	return p, nil
}

func (p *profiles) write(name, profile string) error {
	f, err := os.Create(filepath.Join(p.out, name))
	if err != nil {
		return err
	}
	defer f.Close()
	p.files = append(p.files, f.Name())
	return pprof.Lookup(profile).WriteTo(f, 0)
}

// stop ends the CPU profile and writes the allocation profile.
func (p *profiles) stop() error {
	pprof.StopCPUProfile()
	p.cpu.Close()
	return p.write("allocs.pprof", "allocs")
}

// finishProfiles stops the in-process profiles started at the plateau and
// returns their files; p is nil when they could not start (startErr,
// logged) or were not asked for.
func finishProfiles(p *profiles, startErr error) []string {
	if p == nil {
		if startErr != nil {
			logf("profiles: %v", startErr)
		}
		return nil
	}
	if err := p.stop(); err != nil {
		logf("profiles: %v", err)
	}
	return p.files
}
