// Package webphone serves /phone, a softphone in the browser: plain HTML,
// JavaScript and CSS embedded in the binary, no build step and no
// third-party code. The page signs in as a configured SIP user (REGISTER
// with digest over SIP over WebSocket at /sip/ws on the same origin),
// calls a bot, a user or a number, rings on incoming calls, and has a
// keypad (RFC 4733 or SIP INFO), mute, hold (re-INVITE), hang-up and level
// meters. Its SIP user agent, /phone/sip.js, is a small library of its own
// (SipUA) the tests load too.
package webphone

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"path"
)

// Path is where the page is served; its assets are under Path + "/".
const Path = "/phone"

//go:embed static
var static embed.FS

var page = template.Must(template.ParseFS(static, "static/index.html"))

// Routes mounts the page and its assets. domain is sip.domain, the host
// part of the users' SIP addresses.
func Routes(mux interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}, domain string) {
	var buf bytes.Buffer
	if err := page.Execute(&buf, struct{ Domain string }{domain}); err != nil {
		panic(err) // a fixed template and a string: cannot fail
	}
	index := buf.Bytes()
	mux.HandleFunc("GET "+Path, func(w http.ResponseWriter, r *http.Request) {
		headers(w, "text/html; charset=utf-8")
		_, _ = w.Write(index)
	})
	mux.HandleFunc("GET "+Path+"/{file}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
		ct, ok := types[path.Ext(name)]
		data, err := static.ReadFile("static/" + name)
		if !ok || err != nil {
			http.NotFound(w, r)
			return
		}
		headers(w, ct)
		// The assets may be loaded by other origins' pages (a test page, a
		// developer's own softphone): they hold no secret.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		_, _ = w.Write(data)
	})
}

func headers(w http.ResponseWriter, contentType string) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// Only this origin's scripts and styles, and WebSockets to it.
	h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; media-src 'self' blob: mediastream:; "+
		"img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'")
	h.Set("X-Frame-Options", "DENY")
}
