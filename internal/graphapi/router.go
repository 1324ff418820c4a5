package graphapi

import (
	"net/http"
	"sync"
)

// Router is the node's route table: an http.ServeMux that also remembers
// every pattern registered on it, in order, so that a test can walk every
// route the node serves (internal/calltest's authorisation table fails on a
// route it does not classify). It is safe for concurrent use.
type Router struct {
	mux *http.ServeMux

	mu       sync.Mutex
	patterns []string
}

// NewRouter returns an empty Router.
func NewRouter() *Router { return &Router{mux: http.NewServeMux()} }

// Handle registers h for pattern, as http.ServeMux.Handle does.
func (r *Router) Handle(pattern string, h http.Handler) {
	r.mux.Handle(pattern, h)
	r.mu.Lock()
	r.patterns = append(r.patterns, pattern)
	r.mu.Unlock()
}

// HandleFunc registers h for pattern, as http.ServeMux.HandleFunc does.
func (r *Router) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	r.Handle(pattern, http.HandlerFunc(h))
}

// ServeHTTP dispatches req to the handler whose pattern matches it best.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.mux.ServeHTTP(w, req) }

// Patterns returns every pattern registered so far, in registration order.
func (r *Router) Patterns() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.patterns...)
}
