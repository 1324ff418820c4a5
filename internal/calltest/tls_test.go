package calltest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/platform"
	"github.com/switchboard-voice/switchboard/internal/sipgw"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// loopbackCert writes a self-signed certificate for 127.0.0.1 (and
// localhost) and its key as PEM files, and returns them with a pool that
// trusts it.
func loopbackCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        true, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// With http.tlsCert and http.tlsKey the node serves its whole HTTP face
// over TLS only: the token endpoint and the Graph API answer a client
// that trusts the certificate, a plain-HTTP request to the same port gets
// no answer of the API, and a client that does not trust it is stopped by
// its own verification.
func TestHTTPS(t *testing.T) {
	certFile, keyFile, pool := loopbackCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := "https://" + ln.Addr().String()
	cfg := calltest.Config(t.TempDir(), public, "http://127.0.0.1:1/hook", "http://127.0.0.1:1/hook")
	cfg.HTTP.TLSCert, cfg.HTTP.TLSKey = certFile, keyFile
	cfg.SIP.Listen = ""
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := platform.Start(ctx, cfg, platform.Options{Listener: ln, Logger: bottest.Logger(t, false)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Kill)
	if n.URL != public {
		t.Fatalf("node URL %s, want %s", n.URL, public)
	}

	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {calltest.BotID}, "client_secret": {calltest.Secret},
		"scope": {"https://graph.microsoft.com/.default"}}
	res, err := c.PostForm(public+"/"+calltest.TenantID+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok graph.TokenResponse
	err = json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || tok.AccessToken == "" || res.TLS == nil || res.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("token over HTTPS: %v %v %+v", res.Status, err, res.TLS)
	}
	t.Logf("token over %s, %s", tls.VersionName(res.TLS.Version), tls.CipherSuiteName(res.TLS.CipherSuite))
	// An authenticated Graph request: a call that does not exist is a
	// Graph 404, not a 401.
	req, _ := http.NewRequest("GET", public+"/v1.0/communications/calls/0a1b2c3d-0000-4000-8000-000000000000", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	res, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 404 || !strings.Contains(string(body), `"itemNotFound"`) {
		t.Fatalf("GET calls over HTTPS: %s %s", res.Status, body)
	}
	// The JWKS a bot validates notification tokens with, as it fetches it.
	if res, err := c.Get(public + "/common/discovery/v2.0/keys"); err != nil || res.StatusCode != 200 {
		t.Fatalf("JWKS over HTTPS: %v %v", res, err)
	} else {
		res.Body.Close()
	}

	// Plain HTTP to the HTTPS port: Go's TLS server answers 400 and the
	// API never sees the request.
	plain := &http.Client{Timeout: 5 * time.Second}
	if res, err := plain.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Fatalf("plain HTTP was served: %s %s", res.Status, b)
		}
	}
	// A client that does not trust the certificate stops at its own check.
	untrusting := &http.Client{Timeout: 5 * time.Second}
	if _, err := untrusting.Get(public + "/healthz"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an untrusted certificate was accepted: %v", err)
	}
}

// SIP over TLS with a real phone: baresip registers with the node's TLS
// listener (sip.tlsListen, the certificate made here) and answers a bot's
// call that reaches it back over the same transport; the bot's prompt is
// heard. baresip 1.0 does not check the server's certificate (it
// registers as well given another one to trust), so a Go client checks
// that the listener presents the configured one.
func TestBaresipOverSIPTLS(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	certFile, keyFile, pool := loopbackCert(t)
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.SIP.TLSListen, c.SIP.TLSCert, c.SIP.TLSKey = "127.0.0.1:0", certFile, keyFile
	}})
	if p.Node.SIP.TLSPort() == 0 {
		t.Fatal("no SIP TLS listener")
	}
	tlsAddr := "127.0.0.1:" + strconv.Itoa(p.Node.SIP.TLSPort())
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tlsAddr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("a client trusting the configured certificate: %v", err)
	}
	t.Logf("SIP TLS listener: %s, %s", tls.VersionName(conn.ConnectionState().Version), tls.CipherSuiteName(conn.ConnectionState().CipherSuite))
	conn.Close()
	if _, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tlsAddr, &tls.Config{}); err == nil {
		t.Fatal("a client that does not trust the certificate completed the handshake")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src.wav")
	if err := calltest.WriteWAV(src, calltest.Pattern(700, 20, 1), 8000); err != nil {
		t.Fatal(err)
	}
	bs := calltest.StartBaresip(t, calltest.BaresipOptions{User: "eve", Password: calltest.EvePassword,
		Registrar: tlsAddr, Source: src, TLS: true, CAFile: certFile})
	if !strings.Contains(bs.Output(), "/TLS/") {
		t.Fatalf("baresip did not register over TLS:\n%s", bs.Output())
	}
	// The node keeps the binding as one over TLS: calls to Eve go back on it.
	regs, err := p.Node.Store.Bucket(context.Background(), sipgw.RegistrationsBucket, 0)
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := regs.Get(context.Background(), "aor."+hex.EncodeToString([]byte("eve")))
	if err != nil || !strings.Contains(string(data), `"transport":"TLS"`) {
		t.Fatalf("eve's binding: %s %v", data, err)
	}

	call := p.CreateCall(calltest.EveID)
	p.Hook.WaitState(t, call.ID, graph.StateEstablished)
	c := calls + "/" + call.ID
	promptPCM := calltest.Pattern(1100, 3, 2)
	base := wavServer(t, map[string][]byte{"/prompt.wav": calltest.WAV(promptPCM, 8000)})
	op := opDone(t, p, call.ID, p.Bot("POST", c+"/playPrompt", prompts(base+"/prompt.wav")))
	if op.Status != graph.OperationCompleted {
		t.Fatalf("playPrompt: %+v %+v", op, op.ResultInfo)
	}
	if r := p.Bot("DELETE", c, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
	p.Hook.WaitState(t, call.ID, graph.StateTerminated)
	bs.WaitOutput(t, "terminated", 10*time.Second)
	heardEnv := calltest.Envelope(bs.Heard(t))
	if corr, _ := calltest.BestCorrelation(calltest.Envelope(promptPCM), heardEnv, len(heardEnv), 100); corr < 0.8 {
		t.Fatalf("the phone did not hear the prompt over the TLS call: correlation %.2f", corr)
	}
}
