package errs

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// WriteGraph writes err as a Graph error body
// (https://learn.microsoft.com/graph/errors): the status and error.code of
// its kind, its caller-safe message, and an innerError with the request
// ids of the response's request-id and client-request-id headers and the
// date. Every HTTP surface of Switchboard (the Graph API, recordings, the
// simulator) answers errors through it; headers a kind needs
// (WWW-Authenticate, Retry-After) are the caller's to set first. inner, if
// not nil, is the innerError to complete.
func WriteGraph(w http.ResponseWriter, err error, now time.Time, inner *graph.InnerError) {
	k := KindOf(err)
	if inner == nil {
		inner = &graph.InnerError{}
	}
	h := w.Header()
	inner.RequestID = h.Get("request-id")
	inner.ClientRequestID = h.Get("client-request-id")
	inner.Date = now.UTC().Format("2006-01-02T15:04:05")
	b, _ := json.Marshal(graph.ErrorResponse{Error: graph.ODataError{Code: k.GraphCode(), Message: Message(err), InnerError: inner}})
	b = append(b, '\n')
	h.Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(k.HTTPStatus())
	_, _ = w.Write(b)
}
