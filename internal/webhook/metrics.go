package webhook

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons, the values of switchboard_webhook_dropped_total's reason
// label.
const (
	reasonExpired      = "expired"      // MaxAge passed while retrying
	reasonRejected     = "rejected"     // a 4xx other than 401, 408, 429
	reasonUnauthorized = "unauthorized" // 401: the bot rejected the token
	reasonRedirect     = "redirect"     // a 3xx that is not followed
	reasonForbidden    = "forbidden"    // the egress policy forbids the address
	reasonToken        = "token"        // no token can be issued for the app
	reasonMalformed    = "malformed"    // the stored message cannot be read
)

type metrics struct {
	delivered prometheus.Counter
	dropped   *prometheus.CounterVec
	attempts  *prometheus.CounterVec
	latency   prometheus.Histogram
	pending   prometheus.Gauge
	parked    prometheus.Gauge
}

// newMetrics builds the outbox's collectors and registers them with r, if
// not nil. Collectors already registered by an earlier outbox are reused.
func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_webhook_delivered_total",
			Help: "Notifications a bot accepted.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_webhook_dropped_total",
			Help: "Notifications given up on, by reason.",
		}, []string{"reason"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_webhook_attempts_total",
			Help: "POSTs to bots, by result: 2xx, 3xx, 4xx, 5xx or error (no answer).",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_webhook_delivery_seconds",
			Help:    "Time from enqueue to the bot's 2xx.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12), // 5ms .. ~2min
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_webhook_pending",
			Help: "Notifications held in memory for delivery.",
		}),
		parked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_webhook_parked",
			Help: "Notifications of parked calls: waiting in the stream SB_NOTIFY_PARKED for a retry, or for a webhook host that is failing or busy.",
		}),
	}
	if r == nil {
		return m, nil
	}
	var err error
	if m.delivered, err = register(r, m.delivered); err != nil {
		return nil, err
	}
	if m.dropped, err = register(r, m.dropped); err != nil {
		return nil, err
	}
	if m.attempts, err = register(r, m.attempts); err != nil {
		return nil, err
	}
	if m.latency, err = register(r, m.latency); err != nil {
		return nil, err
	}
	if m.pending, err = register(r, m.pending); err != nil {
		return nil, err
	}
	if m.parked, err = register(r, m.parked); err != nil {
		return nil, err
	}
	return m, nil
}

func register[C prometheus.Collector](r prometheus.Registerer, c C) (C, error) {
	err := r.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("webhook: register metrics: %w", err)
}

func statusClass(status int) string {
	switch {
	case status >= 200 && status < 300:
		return "2xx"
	case status >= 300 && status < 400:
		return "3xx"
	case status >= 400 && status < 500:
		return "4xx"
	case status >= 500:
		return "5xx"
	}
	return "error"
}
