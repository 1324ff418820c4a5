package sipgw

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus collectors.
type metrics struct {
	invites   *prometheus.CounterVec // by direction and final status
	registers *prometheus.CounterVec // by result
	legs      *prometheus.GaugeVec   // live legs by direction
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		invites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "switchboard", Subsystem: "sip", Name: "invites_total",
			Help: "INVITE transactions by direction (in, out) and final SIP status (0: no final response).",
		}, []string{"direction", "status"}),
		registers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "switchboard", Subsystem: "sip", Name: "registers_total",
			Help: "REGISTER requests by result (registered, unregistered, queried, challenged, forbidden, not_found, bad_request, error).",
		}, []string{"result"}),
		legs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "switchboard", Subsystem: "sip", Name: "legs",
			Help: "Live SIP legs by direction (in, out).",
		}, []string{"direction"}),
	}
	if reg != nil {
		reg.MustRegister(m.invites, m.registers, m.legs)
	}
	return m
}

func (m *metrics) invite(dir string, status int) {
	m.invites.WithLabelValues(dir, strconv.Itoa(status)).Inc()
}

func (m *metrics) register(result string) { m.registers.WithLabelValues(result).Inc() }
