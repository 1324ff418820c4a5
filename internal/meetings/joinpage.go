package meetings

import (
	"bytes"
	"html/template"
	"net/http"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
)

// JoinPath is the path of join links under http.publicUrl; the thread id
// and the message id follow it.
const JoinPath = "/l/meetup-join/"

// Routes mounts the join page: GET /l/meetup-join/{threadId}/{messageId},
// the page a meeting's joinWebUrl opens. It needs no token (a join link is
// meant to be opened by whoever was sent it) and says how to join: from
// the browser (when EnableBrowserJoin was called: browser.go), by phone,
// by SIP, with the meeting id and passcode, or as a bot.
func (s *Store) Routes(mux interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}) {
	mux.HandleFunc("GET "+JoinPath+"{thread}/{message}", s.joinPage)
	s.browserRoutes(mux)
}

// joinPageData is what the page shows.
type joinPageData struct {
	Subject, Organizer, Start, End        string
	ThreadID, OrganizerID, TenantID       string
	JoinMeetingID, Passcode, ConferenceID string
	TollNumber                            string
	// SIPURI and TelURI are typed URLs: html/template would otherwise
	// refuse the sip: and tel: schemes in an href.
	SIPURI, TelURI template.URL
	// Browser: the page can join from the browser (browser.go).
	Browser bool
}

var joinPageTmpl = template.Must(template.New("join").Funcs(template.FuncMap{"spaced": spaced}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Join: {{.Subject}}</title>
{{if .Browser}}<link rel="stylesheet" href="/l/meetup-join/join.css">
<script src="/phone/sip.js" defer></script>
<script src="/l/meetup-join/join.js" defer></script>
{{end}}<style>
body { font-family: system-ui, sans-serif; line-height: 1.5; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; color: #1b1b1b; background: #fff; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
dt { font-weight: bold; } dd { margin: 0 0 .5rem 0; } code { overflow-wrap: anywhere; }
a { color: #0645ad; }
</style>
</head>
<body>
<main>
<h1>{{.Subject}}</h1>
<p>Organized by {{.Organizer}}, from <time datetime="{{.Start}}">{{.Start}}</time> to <time datetime="{{.End}}">{{.End}}</time>.</p>

{{if .Browser}}<section aria-labelledby="browser" id="browser-join">
<h2 id="browser">Join from this browser</h2>
<form id="join-form">
<label for="name">Your name</label>
<input id="name" name="name" autocomplete="name" maxlength="64" required autofocus>
<button id="join" type="submit">Join with microphone</button>
</form>
<p id="status" role="status" aria-live="polite">Type your name, then join. You will be asked to allow the microphone.</p>
<div id="in-call" hidden>
<div class="controls">
<button id="mute" type="button" aria-pressed="false">Mute microphone</button>
<button id="leave" type="button">Leave</button>
</div>
<h3 id="roster-title">In the meeting</h3>
<ul id="roster" aria-labelledby="roster-title"></ul>
<p id="roster-news" class="visually-hidden" aria-live="polite"></p>
</div>
<audio id="remote-audio" autoplay></audio>
</section>

{{end}}<section aria-labelledby="dial-in">
<h2 id="dial-in">Join by phone</h2>
{{if .TollNumber}}<p>Call <a href="{{.TelURI}}">{{.TollNumber}}</a> and enter the conference ID <strong>{{spaced .ConferenceID}}#</strong> when asked.</p>
{{else}}<p>This meeting's organization has no dial-in number. The conference ID is <strong>{{spaced .ConferenceID}}</strong>.</p>
{{end}}{{if .SIPURI}}<p>From a SIP phone, call <a href="{{.SIPURI}}">{{.SIPURI}}</a> and enter the conference ID the same way.</p>
{{end}}</section>

<section aria-labelledby="meeting-id">
<h2 id="meeting-id">Join with the meeting ID</h2>
<dl>
<dt>Meeting ID</dt><dd>{{spaced .JoinMeetingID}}</dd>
{{if .Passcode}}<dt>Passcode</dt><dd>{{.Passcode}}</dd>
{{end}}</dl>
</section>

<section aria-labelledby="bot">
<h2 id="bot">Join as a bot</h2>
<p>Create a call (<code>POST /communications/calls</code>) with <code>joinMeetingIdMeetingInfo</code> and the meeting ID{{if .Passcode}} and passcode{{end}} above, or with this <code>chatInfo</code> and <code>organizerMeetingInfo</code>:</p>
<dl>
<dt>Thread ID</dt><dd><code>{{.ThreadID}}</code></dd>
<dt>Message ID</dt><dd><code>0</code></dd>
<dt>Organizer</dt><dd><code>{{.OrganizerID}}</code></dd>
<dt>Tenant</dt><dd><code>{{.TenantID}}</code></dd>
</dl>
</section>
</main>
</body>
</html>
`))

var notFoundPage = []byte(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Meeting not found</title></head>
<body><main><h1>Meeting not found</h1><p>This meeting does not exist, or it has been deleted. Ask its organizer for a new link.</p></main></body>
</html>
`)

func (s *Store) joinPage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if s.browser != nil {
		// This origin's scripts, its WebSocket (SIP) and fetches, and the
		// call's audio.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "+
			"media-src 'self' blob: mediastream:; base-uri 'none'; frame-ancestors 'none'; form-action 'none'")
	} else {
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	}

	m, err := s.linkMeeting(r)
	switch {
	case errs.KindOf(err) == errs.NotFound:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write(notFoundPage)
		return
	case err != nil:
		s.log.Warn("join page", "thread", r.PathValue("thread"), "err", err)
		h.Set("Retry-After", "5")
		http.Error(w, "The meeting could not be read; try again in a moment.", http.StatusServiceUnavailable)
		return
	}
	d := joinPageData{
		Subject: m.Subject, Organizer: m.OrganizerName,
		Start: m.Start.UTC().Format(time.RFC3339), End: m.End.UTC().Format(time.RFC3339),
		ThreadID: m.ThreadID, OrganizerID: m.OrganizerID, TenantID: m.TenantID,
		JoinMeetingID: m.JoinMeetingID, Passcode: m.Passcode, ConferenceID: m.ConferenceID,
		Browser: s.browser != nil,
	}
	if d.Subject == "" {
		d.Subject = "Online meeting"
	}
	if _, u, ok := s.dir.UserByID(m.OrganizerID); ok {
		d.Organizer = u.DisplayName
	}
	toll, sipURI := s.dialIn(m)
	d.TollNumber, d.SIPURI = toll, template.URL(sipURI) // made here from validated config: E.164 and a domain
	if toll != "" {
		d.TelURI = template.URL("tel:" + toll + ",," + m.ConferenceID + "%23") // RFC 3966: pause, then the id and '#'
	}
	var b bytes.Buffer
	if err := joinPageTmpl.Execute(&b, d); err != nil {
		s.log.Error("join page", "meeting", m.ID, "err", err)
		http.Error(w, "The page could not be written.", http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(b.Bytes())
}
