package egress

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewPolicyRejectsBadEntries(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "a b", "host:80", "http://x", "", "exa mple.com", "*."} {
		if _, err := NewPolicy([]string{"127.0.0.1", bad}); err == nil {
			t.Errorf("NewPolicy(%q): no error", bad)
		}
	}
}

func TestCheck(t *testing.T) {
	p, err := NewPolicy([]string{"127.0.0.1", "10.0.0.0/8", "fd00::/8", "::ffff:192.168.0.0/112", "bot.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ip    string
		allow bool
	}{
		{"127.0.0.1", true},
		{"127.0.0.2", false},
		{"10.1.2.3", true},
		{"11.0.0.1", false},
		{"::ffff:10.9.9.9", true}, // IPv4-mapped matches the IPv4 CIDR
		{"192.168.3.4", true},     // IPv4 matches the IPv4-mapped CIDR
		{"192.169.0.1", false},
		{"fd12::1", true},
		{"fe80::1", false},
		{"::1", false},
	} {
		err := p.Check(net.ParseIP(tc.ip))
		if tc.allow && err != nil {
			t.Errorf("Check(%s) = %v, want allowed", tc.ip, err)
		}
		if !tc.allow {
			if !errors.Is(err, ErrDenied) || errs.KindOf(err) != errs.Forbidden {
				t.Errorf("Check(%s) = %v, want a Forbidden ErrDenied", tc.ip, err)
				continue
			}
			if want := net.ParseIP(tc.ip).String(); !contains(err.Error(), want) {
				t.Errorf("Check(%s) error %q does not name the address", tc.ip, err)
			}
		}
	}
	if err := p.Check(nil); !errors.Is(err, ErrDenied) {
		t.Errorf("Check(nil) = %v, want ErrDenied", err)
	}
}

func TestEmptyPolicyAllowsEverything(t *testing.T) {
	p, err := NewPolicy(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"127.0.0.2", "8.8.8.8", "::1"} {
		if err := p.Check(net.ParseIP(ip)); err != nil {
			t.Errorf("Check(%s) = %v", ip, err)
		}
	}
	var nilPolicy *Policy
	if err := nilPolicy.Check(net.ParseIP("1.2.3.4")); err != nil {
		t.Errorf("nil policy Check = %v", err)
	}
}

func TestHostNames(t *testing.T) {
	p, err := NewPolicy([]string{"Bot.Example.com.", "*.bots.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"bot.example.com":      true,
		"BOT.example.com.":     true,
		"evil.example.com":     false,
		"a.bots.example.org":   true,
		"a.b.bots.example.org": true,
		"bots.example.org":     false,
		"xbots.example.org":    false,
	} {
		if got := p.allowsHost(host); got != want {
			t.Errorf("allowsHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func get(c *http.Client, u string) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

func TestClientChecksDialedAddress(t *testing.T) {
	srv := newServer(t) // listens on 127.0.0.1
	port := mustURL(t, srv.URL).Port()
	p, err := NewPolicy([]string{"127.0.0.1/32"})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Client(5 * time.Second)
	defer c.CloseIdleConnections()

	if err := get(c, srv.URL); err != nil {
		t.Fatalf("allowed address: %v", err)
	}
	err = get(c, fmt.Sprintf("http://127.0.0.2:%s/", port))
	if !errors.Is(err, ErrDenied) || errs.KindOf(err) != errs.Forbidden {
		t.Fatalf("denied address: %v, want ErrDenied", err)
	}
	if !contains(err.Error(), "127.0.0.2") {
		t.Errorf("error %q does not name the address", err)
	}
	// A host name resolving to an allowed address passes: the dialed
	// address is what counts.
	if err := get(c, fmt.Sprintf("http://localhost:%s/", port)); err != nil {
		t.Fatalf("host name resolving to an allowed address: %v", err)
	}
}

func TestClientHostNameEntry(t *testing.T) {
	srv := newServer(t)
	port := mustURL(t, srv.URL).Port()
	p, err := NewPolicy([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Client(5 * time.Second)
	defer c.CloseIdleConnections()
	if err := get(c, fmt.Sprintf("http://localhost:%s/", port)); err != nil {
		t.Fatalf("allowed host name: %v", err)
	}
	// The same server by address is not covered by the name entry.
	if err := get(c, srv.URL); !errors.Is(err, ErrDenied) {
		t.Fatalf("address of an allowed host: %v, want ErrDenied", err)
	}
}

func TestClientRedirectToForbiddenAddress(t *testing.T) {
	target := newServer(t)
	port := mustURL(t, target.URL).Port()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, fmt.Sprintf("http://127.0.0.2:%s/", port), http.StatusFound)
	}))
	defer redirector.Close()
	p, err := NewPolicy([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Client(5 * time.Second)
	defer c.CloseIdleConnections()
	if err := get(c, redirector.URL); !errors.Is(err, ErrDenied) {
		t.Fatalf("redirect to a forbidden address: %v, want ErrDenied", err)
	}
}

func TestClientIgnoresEnvironmentProxy(t *testing.T) {
	// net/http never proxies loopback, so a live request cannot show this;
	// check the transport instead.
	p, _ := NewPolicy(nil)
	c := p.Client(time.Second)
	if tr, ok := c.Transport.(*http.Transport); !ok || tr.Proxy != nil {
		t.Fatalf("transport %T uses a proxy function", c.Transport)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
