// Package sample is what every sample bot's main does alike: the flags
// that say where Switchboard is and who the bot is (defaulting to the dev
// node of `switchboard serve --dev`), and serving the bot's webhook and
// prompts on loopback.
//
// Like the samples, it uses only the standard library and the SDK: a bot
// author can copy it.
package sample

import (
	"context"
	"flag"
	"net"
	"net/http"
	"time"

	"github.com/switchboard-voice/switchboard/examples/internal/prompts"
	"github.com/switchboard-voice/switchboard/sdk"
)

// The dev node's tenant, bot and secret (switchboard serve --dev).
const (
	DevGraphURL = "http://127.0.0.1:8080/v1.0"
	DevTenantID = "8f6e4b1a-0c2d-4e5f-9a1b-2c3d4e5f6a70"
	DevAppID    = "b07ab07a-0000-4000-8000-00000000b07a"
	DevSecret   = "dev-secret-change-me"
)

// Conn is where a bot finds Switchboard and where it listens.
type Conn struct {
	BaseURL, TenantID, AppID, Secret string
	// Listen is the webhook's listening address; CallbackURL the webhook's
	// URL as the platform reaches it.
	Listen, CallbackURL string
	// Prompts is where the bot serves its prompts ("" for a bot without).
	Prompts string
}

// Flags registers -graph, -tenant, -app, -secret, -listen, -callback and,
// when withPrompts, -prompts on fs, with the dev node's values as defaults.
func Flags(fs *flag.FlagSet, withPrompts bool) *Conn {
	c := &Conn{}
	fs.StringVar(&c.BaseURL, "graph", DevGraphURL, "Switchboard's (or Graph's) base URL")
	fs.StringVar(&c.TenantID, "tenant", DevTenantID, "tenant id")
	fs.StringVar(&c.AppID, "app", DevAppID, "the bot's app id")
	fs.StringVar(&c.Secret, "secret", DevSecret, "the bot's client secret")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:9000", "where the bot's webhook listens")
	fs.StringVar(&c.CallbackURL, "callback", "http://127.0.0.1:9000/callback", "the webhook's URL as the platform reaches it")
	if withPrompts {
		fs.StringVar(&c.Prompts, "prompts", "127.0.0.1:9001", "where the bot serves its prompts")
	}
	return c
}

// ServePrompts serves a prompts.Server on c.Prompts in the background,
// with the base URL the platform fetches its prompts from.
func (c *Conn) ServePrompts() (*prompts.Server, error) {
	l, err := net.Listen("tcp", c.Prompts)
	if err != nil {
		return nil, err
	}
	srv := prompts.NewServer("http://" + l.Addr().String())
	go func() { _ = http.Serve(l, srv) }()
	return srv, nil
}

// ServeWebhook serves h on c.Listen in the background. stop shuts h down,
// letting the calls it is handling finish for up to five seconds.
func (c *Conn) ServeWebhook(h *sdk.Handler) (stop func(), err error) {
	l, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
		_ = srv.Shutdown(ctx)
	}, nil
}
