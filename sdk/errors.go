package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// GraphError is an error response from the Graph API: an HTTP status of 400
// or more, with Graph's error body (https://learn.microsoft.com/graph/errors)
// when the server sent one. Methods of Client wrap it with the operation that
// failed; reach it with errors.As.
type GraphError struct {
	// StatusCode is the HTTP status, e.g. 404 for an ended call.
	StatusCode int
	// Code is Graph's error code (error.code), e.g. "itemNotFound"; the
	// status text when the body was not a Graph error.
	Code string
	// Message is Graph's developer message (error.message).
	Message string
	// RequestID is the server's id of the request (innerError.request-id,
	// else the request-id header): quote it when asking for support.
	RequestID string
	// ClientRequestID is the client-request-id this client sent.
	ClientRequestID string
	// Date is innerError.date as the server wrote it.
	Date string
	// RetryAfter is the wait the Retry-After header asked for; zero when
	// there was none. Set on 429 and 503 responses the client gave up on.
	RetryAfter time.Duration
}

// Error describes the failure with the ids needed to trace it.
func (e *GraphError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph: %d %s", e.StatusCode, e.Code)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request-id %s)", e.RequestID)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// parseGraphError builds the error for a response with a failure status.
func parseGraphError(resp *http.Response, body []byte, clientRequestID string) *GraphError {
	e := &GraphError{
		StatusCode:      resp.StatusCode,
		RequestID:       resp.Header.Get("request-id"),
		ClientRequestID: clientRequestID,
		RetryAfter:      retryAfter(resp.Header, time.Now()),
	}
	var er graph.ErrorResponse
	if json.Unmarshal(body, &er) == nil && (er.Error.Code != "" || er.Error.Message != "") {
		e.Code, e.Message = er.Error.Code, er.Error.Message
		if in := er.Error.InnerError; in != nil {
			if in.RequestID != "" {
				e.RequestID = in.RequestID
			}
			if in.ClientRequestID != "" {
				e.ClientRequestID = in.ClientRequestID
			}
			e.Date = in.Date
		}
		return e
	}
	e.Code = http.StatusText(resp.StatusCode)
	e.Message = strings.TrimSpace(truncate(string(body), 512))
	return e
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// AuthError is a failure of the token endpoint, shaped as the Microsoft
// identity platform's error body (error, error_description;
// https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow):
// a wrong secret, an unknown client or tenant, an invalid scope.
type AuthError struct {
	// StatusCode is the HTTP status, usually 400 or 401.
	StatusCode int
	// Code is the OAuth2 error, e.g. "invalid_client".
	Code string
	// Description is error_description.
	Description string
	// TraceID and CorrelationID identify the request at the token endpoint.
	TraceID, CorrelationID string
}

// Error describes the failure.
func (e *AuthError) Error() string {
	s := fmt.Sprintf("token endpoint: %d %s", e.StatusCode, e.Code)
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// OperationError reports an operation that finished with status failed:
// a prompt that could not be fetched, media processing cancelled, the call
// ending while the operation ran. Await returns it with the final operation.
type OperationError struct {
	// CallID is the call the operation ran on, when known.
	CallID string
	// Operation is the operation as it finished.
	Operation graph.Operation
}

// Error describes the failure with Graph's result code and message.
func (e *OperationError) Error() string {
	typ := strings.TrimPrefix(e.Operation.ODataType, "#microsoft.graph.")
	if typ == "" {
		typ = "operation"
	}
	s := fmt.Sprintf("%s %s failed", typ, e.Operation.ID)
	if r := e.Operation.ResultInfo; r != nil {
		s += ": " + r.String()
	}
	return s
}

// ErrCallEnded is returned (wrapped) by waits on a call that terminated
// before what they waited for happened.
var ErrCallEnded = errors.New("call ended")

// ErrNoClient is returned by Handler and Call methods that send requests
// when the Handler was built without a Client.
var ErrNoClient = errors.New("handler has no client")

// ErrClosed is returned by Handler methods after Shutdown.
var ErrClosed = errors.New("handler shut down")
