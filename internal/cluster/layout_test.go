package cluster_test

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/switchboard-voice/switchboard/internal/cluster"
	"github.com/switchboard-voice/switchboard/internal/config"
)

// The nodes `switchboard cluster` starts read the configuration it writes
// as YAML: each a valid configuration with its own addresses, on the
// cluster's NATS with three replicas, behind the front.
func TestNodeConfigsRoundTrip(t *testing.T) {
	l := cluster.Loopback(3, 3)
	seen := map[string]bool{}
	for i := range l.Nodes {
		data, err := yaml.Marshal(l.NodeConfig(config.Dev(), i, t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		c, err := config.Parse(data)
		if err != nil {
			t.Fatalf("node %d: %v\n%s", i+1, err, data)
		}
		if c.NATS.URL != "nats://127.0.0.21:4222,nats://127.0.0.22:4222,nats://127.0.0.23:4222" || c.NATS.Replicas != 3 {
			t.Errorf("node %d: nats %+v", i+1, c.NATS)
		}
		if c.HTTP.PublicURL != "http://127.0.0.10:8080" || c.SIP.Domain != "127.0.0.10" || len(c.SIP.Proxies) != 1 || c.SIP.Proxies[0] != "127.0.0.10" {
			t.Errorf("node %d: not behind the front: publicUrl %s, sip %+v", i+1, c.HTTP.PublicURL, c.SIP)
		}
		for _, a := range []string{c.HTTP.Listen, c.SIP.Listen, c.DataDir} {
			if seen[a] {
				t.Errorf("node %d shares %s with another node", i+1, a)
			}
			seen[a] = true
		}
		if len(c.Applications) != 1 || c.Applications[0].ID != config.DevAppID || len(c.Tenants) != 1 || len(c.Tenants[0].Users) != len(config.Dev().Tenants[0].Users) {
			t.Errorf("node %d: the demo directory did not survive YAML", i+1)
		}
	}
	if got := l.DispatcherList(); strings.Count(got, "\n1 sip:127.0.0.1") != 3 {
		t.Errorf("dispatcher list:\n%s", got)
	}
	if got := l.NATSConfig(0, "/d"); !strings.Contains(got, "nats-route://127.0.0.22:6222, nats-route://127.0.0.23:6222") || !strings.Contains(got, "listen: 127.0.0.21:4222") {
		t.Errorf("nats config:\n%s", got)
	}
}
