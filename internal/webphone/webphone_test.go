package webphone

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The page names the SIP domain and loads only its own assets; the assets
// are served with their types; anything else under /phone/ is 404.
func TestRoutes(t *testing.T) {
	mux := http.NewServeMux()
	Routes(mux, "pbx.example.com")
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (*http.Response, string) {
		t.Helper()
		r, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r, string(b)
	}
	r, body := get("/phone")
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/phone: %s %s", r.Status, r.Header.Get("Content-Type"))
	}
	for _, want := range []string{`content="pbx.example.com"`, `src="/phone/sip.js"`, `src="/phone/phone.js"`, `role="status"`, `<label for="user">`} {
		if !strings.Contains(body, want) {
			t.Errorf("/phone lacks %q", want)
		}
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	for path, ct := range map[string]string{"/phone/sip.js": "text/javascript", "/phone/phone.js": "text/javascript", "/phone/phone.css": "text/css"} {
		if r, body := get(path); r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), ct) || len(body) < 100 {
			t.Errorf("%s: %s %s, %d bytes", path, r.Status, r.Header.Get("Content-Type"), len(body))
		}
	}
	for _, path := range []string{"/phone/index.html", "/phone/nothing.js", "/phone/..%2fwebphone.go", "/phone/"} {
		if r, _ := get(path); r.StatusCode != 404 {
			t.Errorf("%s: %s, want 404", path, r.Status)
		}
	}
}
