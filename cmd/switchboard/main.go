// Command switchboard runs a Switchboard node (serve) and a small webhook
// that prints the notifications a bot would receive (webhook).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/switchboard-voice/switchboard/internal/cluster"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/platform"
	"github.com/switchboard-voice/switchboard/sdk"
)

const usage = `switchboard: a self-hosted calling platform speaking the Microsoft Graph calls API.

Usage:
  switchboard serve --dev                 run with a demo tenant, users and bot (./data-dev)
  switchboard serve --config FILE         run with a configuration file
  switchboard check --config FILE         validate a configuration file and exit
  switchboard cluster [--nodes 3]         run a cluster on loopback: 3 NATS servers, the nodes
                                          (demo configuration), Kamailio in front (make cluster)
  switchboard webhook [--listen ADDR] [--openid URL] [--app ID]
                                          print verified notifications a bot would receive
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "check":
		err = check(os.Args[2:])
	case "cluster":
		err = runCluster(os.Args[2:])
	case "webhook":
		err = webhook(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "switchboard: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchboard:", err)
		os.Exit(1)
	}
}

func load(fs *flag.FlagSet, args []string) (*config.Config, bool, error) {
	path := fs.String("config", "", "configuration file (YAML)")
	dev := fs.Bool("dev", false, "run with the demo configuration (tenant, simulated users, a bot)")
	dataDir := fs.String("data", "", "override dataDir")
	if err := fs.Parse(args); err != nil {
		return nil, false, err
	}
	var cfg config.Config
	switch {
	case *dev && *path != "":
		return nil, false, errors.New("use --dev or --config, not both")
	case *dev:
		cfg = config.Dev()
	case *path != "":
		c, err := config.Load(*path)
		if err != nil {
			return nil, false, err
		}
		cfg = c
	default:
		return nil, false, errors.New("serve needs --dev or --config FILE")
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	return &cfg, *dev, cfg.Validate()
}

func check(args []string) error {
	cfg, _, err := load(flag.NewFlagSet("check", flag.ExitOnError), args)
	if err != nil {
		return err
	}
	fmt.Printf("configuration is valid: %d tenant(s), %d application(s)\n", len(cfg.Tenants), len(cfg.Applications))
	return nil
}

func newLogger(cfg *config.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func serve(args []string) error {
	cfg, dev, err := load(flag.NewFlagSet("serve", flag.ExitOnError), args)
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	tuneRuntime(cfg.Runtime, log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	node, err := platform.Start(startCtx, cfg, platform.Options{Logger: log, Simulator: cfg.Simulator.Enabled})
	cancel()
	if err != nil {
		return err
	}
	if dev {
		printDev(cfg)
	}
	if v, set := os.LookupEnv("GOMAXPROCS"); set {
		log.Debug("go runtime: GOMAXPROCS from the environment", "GOMAXPROCS", v)
	} else if cfg.Runtime.AdaptiveProcs {
		go adaptProcs(ctx, log)
	}
	select {
	case <-ctx.Done():
	case <-node.Lost():
		// Another node took this one for lost and ended its calls: it
		// has stopped; exit so that a supervisor restarts it, and it
		// waits for that takeover to finish (platform/takeover.go).
		stop()
		return errors.New("this node was taken for lost by another node, which ended its calls; restart it")
	}
	stop()
	drain := cfg.Calls.DrainTimeout.D()
	log.Info("shutting down: letting calls finish, then ending them (a second signal ends them at once)", "drain", drain)
	sctx, cancel := context.WithTimeout(context.Background(), drain+15*time.Second)
	defer cancel()
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		cancel()
	}()
	return node.Shutdown(sctx, time.Now().Add(drain))
}

// tuneRuntime applies runtime.gcPercent and runtime.memoryLimit, unless
// the operator set GOGC or GOMEMLIMIT, which the Go runtime has already
// applied.
func tuneRuntime(rt config.Runtime, log *slog.Logger) {
	if v, set := os.LookupEnv("GOGC"); set {
		log.Debug("go runtime: GOGC from the environment", "GOGC", v)
	} else {
		debug.SetGCPercent(rt.GCPercent)
	}
	if v, set := os.LookupEnv("GOMEMLIMIT"); set {
		log.Debug("go runtime: GOMEMLIMIT from the environment", "GOMEMLIMIT", v)
	} else if rt.MemoryLimit > 0 {
		debug.SetMemoryLimit(rt.MemoryLimit)
	}
}

func printDev(cfg *config.Config) {
	u := cfg.HTTP.PublicURL
	fmt.Printf(`
Switchboard is running with the demo configuration (serve --dev).

  Graph API       %[1]s/v1.0/communications/calls
  Token endpoint  %[1]s/%[2]s/oauth2/v2.0/token
  Tenant id       %[2]s
  Bot app id      %[3]s
  Bot secret      %[4]s
  Bot webhook     %[5]s   (run: switchboard webhook)
  Bot number      %[6]s
  Users           Alice %[7]s  +15550100  answers
                  Bob   %[8]s  +15550101  answers, presses 1 2 3 #
                  Carol %[9]s  +15550102  always busy
                  Dan   %[12]s  +15550104  answers
                  (simulated)
                  Eve   %[10]s  +15550103  your SIP phone: register as eve / eve-secret
  SIP             %[11]s (UDP and TCP; the bot's number: sip:+15550199@%[11]s)
  Simulator API   %[1]s/simulator/v1/calls
  Phone           %[1]s/phone   (in a browser: sign in as eve / eve-secret, call %[6]s)
  Console         %[1]s/console   (operators: sign in as %[13]s / %[14]s)

`, u, config.DevTenantID, config.DevAppID, config.DevAppSecret, cfg.Applications[0].CallbackURI, config.DevAppNumber,
		config.DevAliceID, config.DevBobID, config.DevCarolID, config.DevEveID, cfg.SIP.Listen, config.DevDanID,
		config.DevOperator, config.DevOperatorPassword)
}

// runCluster runs a loopback cluster until Ctrl-C (internal/cluster).
func runCluster(args []string) error {
	fs := flag.NewFlagSet("cluster", flag.ExitOnError)
	nodes := fs.Int("nodes", 3, "how many Switchboard nodes")
	dir := fs.String("dir", "./data-cluster", "the processes' data and logs")
	natsServer := fs.String("nats-server", "bin/nats-server", "the nats-server binary (make bin/nats-server)")
	kamCfg := fs.String("kamailio-config", "deploy/kamailio/kamailio.cfg", "Kamailio's configuration")
	if err := fs.Parse(args); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cluster.Run(ctx, cluster.RunOptions{Nodes: *nodes, Dir: *dir, Switchboard: self, NATSServer: *natsServer,
		KamailioConfig: *kamCfg, Out: os.Stdout})
}

// webhook runs a bot's callback endpoint that verifies each notification's
// token against the platform's OpenID configuration and prints it.
func webhook(args []string) error {
	fs := flag.NewFlagSet("webhook", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:9000", "address to listen on; notifications are accepted on any path")
	openid := fs.String("openid", "http://127.0.0.1:8080/v1/.well-known/openidconfiguration", "the platform's OpenID configuration")
	app := fs.String("app", config.DevAppID, "the bot's app id (the audience of notification tokens)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	v := &sdk.Validator{OpenIDConfigURL: *openid, AppID: *app}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, err := v.Validate(r.Context(), r)
		if err != nil {
			fmt.Printf("REJECTED %s %s: %v\n", r.Method, r.URL.Path, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var pretty any
		if json.Unmarshal(body, &pretty) == nil {
			body, _ = json.MarshalIndent(pretty, "", "  ")
		}
		fmt.Printf("--- %s notification (token verified: iss=%s aud=%s tid=%s)\n%s\n",
			time.Now().Format(time.TimeOnly), claims.Issuer, *app, claims.TenantID, body)
		w.WriteHeader(http.StatusAccepted)
	})
	fmt.Printf("webhook listening on http://%s (verifying against %s)\n", *listen, *openid)
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}
