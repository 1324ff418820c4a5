package graphapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// bodyTypes is every request type a Graph body is decoded into: each
// action's of the table (callctl.Actions), a new call's, an online
// meeting's, and a meeting PATCH's.
func bodyTypes() []func() any {
	var out []func() any
	for _, x := range callctl.Actions() {
		out = append(out, x.NewRequest)
	}
	return append(out,
		func() any { return new(graph.Call) },
		func() any { return new(graph.OnlineMeeting) },
		func() any { return new(map[string]json.RawMessage) })
}

// FuzzDecode feeds a request's Content-Type and body to decode, for every
// request type a Graph body is decoded into. Nothing may panic; a refusal
// is a Graph error of status 400 (415 for another Content-Type), with a
// code and a message; what decodes encodes again, and that decodes to
// the same (the wire types of sdk/graph read what they write).
func FuzzDecode(f *testing.F) {
	types := bodyTypes()
	f.Add("application/json", []byte(`{"clientContext":"c","prompts":[{"@odata.type":"#microsoft.graph.mediaPrompt","mediaInfo":{"uri":"https://x/y.wav"}}]}`))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		for _, newReq := range types {
			r := httptest.NewRequest(http.MethodPost, "/v1.0/communications/calls/x/playPrompt", bytes.NewReader(body))
			if contentType != "" {
				r.Header.Set("Content-Type", contentType)
			}
			v := newReq()
			err := decode(r, v)
			if err != nil {
				w := httptest.NewRecorder()
				errs.WriteGraph(w, err, time.Unix(0, 0), nil)
				want := http.StatusBadRequest
				if errs.KindOf(err) == errs.UnsupportedMedia {
					want = http.StatusUnsupportedMediaType
				}
				var e graph.ErrorResponse
				if w.Code != want || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error.Code == "" || e.Error.Message == "" {
					t.Fatalf("%T: refused with %d %s (%v)", v, w.Code, w.Body, err)
				}
				continue
			}
			once, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%T decoded from %q does not encode: %v", v, body, err)
			}
			again := newReq()
			if err := json.Unmarshal(once, again); err != nil {
				t.Fatalf("%T: what it encodes does not decode: %v\n%s", v, err, once)
			}
			twice, err := json.Marshal(again)
			if err != nil || !bytes.Equal(once, twice) {
				t.Fatalf("%T does not read what it writes:\n%s\n%s", v, once, twice)
			}
		}
	})
}
