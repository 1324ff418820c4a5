package webhook

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/store"
)

// crashChildEnv makes the test binary act as a node that enqueues, starts
// delivering to a webhook that is down, and waits to be killed (see
// TestSurvivesSIGKILL). Its value is "<data dir> <callback URL>".
const crashChildEnv = "SWITCHBOARD_WEBHOOK_CRASH_CHILD"

const crashCalls, crashPerCall = 4, 10

// crashChild runs in the child process, from TestMain.
func crashChild() {
	dir, url, _ := strings.Cut(os.Getenv(crashChildEnv), " ")
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{DataDir: dir, Name: "t"})
	if err != nil {
		fail(err)
	}
	called := make(chan struct{}, 1)
	o := fastOptions()
	ob, err := Open(ctx, st, &tokens{called: called}, o)
	if err != nil {
		fail(err)
	}
	go func() { _ = ob.Run(ctx) }()
	for i := range crashPerCall {
		for c := range crashCalls {
			if err := ob.Enqueue(ctx, note(url, fmt.Sprintf("call-%d", c), i)); err != nil {
				fail(err)
			}
		}
	}
	<-called // a delivery attempt is under way
	fmt.Println("ready")
	select {} // until SIGKILL
}

// TestSurvivesSIGKILL kills (SIGKILL) a process that enqueued notifications
// its webhook could not take yet; a new process on the same data directory
// delivers all of them, in order per call.
func TestSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	addr, url := reservePort(t)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir+" "+url)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child: %q, %v", line, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	var (
		mu   sync.Mutex
		next = map[string]int{}
	)
	srv := serveOn(t, addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := readBody(t, r)
		mu.Lock()
		if b.Seq != next[b.Call] {
			t.Errorf("call %s: got %d after the crash, want %d", b.Call, b.Seq, next[b.Call])
		}
		next[b.Call] = b.Seq + 1
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	st := openStore(t, dir)
	defer st.Close()
	h := start(t, st, &tokens{}, fastOptions())
	for _, r := range h.wait(t, crashCalls*crashPerCall) {
		if !r.Delivered {
			t.Errorf("result %+v, want delivered", r)
		}
		if r.Finished.Sub(r.Enqueued) > 30*time.Second {
			t.Errorf("result %+v: took longer than the ack wait", r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for c := range crashCalls {
		if got := next[fmt.Sprintf("call-%d", c)]; got != crashPerCall {
			t.Errorf("call-%d: %d delivered, want %d", c, got, crashPerCall)
		}
	}
}
