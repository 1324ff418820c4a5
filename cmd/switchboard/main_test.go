package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets a test run this binary's main as a child process: with
// SWITCHBOARD_TEST_MAIN set, the test binary is the switchboard command.
func TestMain(m *testing.M) {
	if os.Getenv("SWITCHBOARD_TEST_MAIN") != "" {
		os.Args = append([]string{"switchboard"}, strings.Fields(os.Getenv("SWITCHBOARD_TEST_MAIN"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A node configured with a NATS cluster none of whose servers answers
// exits non-zero, soon, naming the cluster: no silent embedded fallback.
func TestServeExitsWhenNATSClusterUnreachable(t *testing.T) {
	dead := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	url := "nats://" + dead() + ",nats://" + dead() + ",nats://" + dead()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "switchboard.yaml")
	yaml := "dataDir: " + filepath.Join(dir, "data") + "\n" +
		"http:\n  listen: 127.0.0.1:0\n  publicUrl: http://127.0.0.1:1\n" +
		"sip:\n  listen: 127.0.0.1:0\n" +
		"nats:\n  url: " + url + "\n  replicas: 3\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SWITCHBOARD_TEST_MAIN=serve --config "+cfg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("serve: %v (want exit status 1); output:\n%s", err, out.String())
	}
	if took > 15*time.Second {
		t.Errorf("serve took %s to give up", took)
	}
	if s := out.String(); !strings.Contains(s, "cannot reach NATS at "+url) {
		t.Errorf("output does not name the cluster it could not reach:\n%s", s)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "jetstream")); err == nil {
		t.Error("an embedded JetStream store was created: the node fell back to an embedded server")
	}
}
