package cluster

import "net/http"

// ServeBalancer serves l's HTTP front (l.FrontHTTP) as Run does: round
// robin over the nodes' HTTP ports, skipping a node that does not accept
// connections. The caller closes the server. sbbench cluster uses it.
func ServeBalancer(l Layout) (*http.Server, error) { return serveBalancer(l) }
