package calltest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/platform"
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
