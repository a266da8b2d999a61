package cli_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/cli"
	"github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/servertest"
)

// withStdin runs fn with standard input reading body, as "scangate login
// URL < token" gives it.
func withStdin(t *testing.T, body string, fn func()) {
	t.Helper()
	f := tempFile(t, "stdin", body)
	fh, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	old := os.Stdin
	os.Stdin = fh
	defer func() { os.Stdin = old }()
	fn()
}

// login runs scangate login with token on standard input.
func login(t *testing.T, dir, token string, a ...string) (r result) {
	t.Helper()
	withStdin(t, token+"\n", func() { r = run(t, dir, append([]string{"login"}, a...)...) })
	return r
}

// A user logs in to two servers' worth of contexts: the token is read
// from standard input (never an argument), checked with the server, and
// stored 0600 with the server as the current context, so that client
// commands need no flags; context list never shows tokens; context use
// switches; a context's token goes to its own server only; --token-file
// and SCANGATE_TOKEN win over the context; a token the server refuses is
// not stored.
func TestLoginContexts(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "conf", "config.yaml")
	t.Setenv(cli.ConfigEnv, cfgPath)
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	url := "http://" + s.Addr
	dir := filepath.Join(t.TempDir(), "nothing-here")
	reader := apiToken(t, s, "viewer", "reader")
	readerSecret := strings.TrimSpace(readFile(t, reader))

	if r := login(t, dir, "sgt_"+strings.Repeat("0", 64), url); r.code != cli.ExitBadInput || !strings.Contains(r.stderr, "server "+url+": 401:") {
		t.Errorf("login with an unknown token: exit %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(cfgPath); !os.IsNotExist(err) {
		t.Errorf("a refused login wrote the configuration: %v", err)
	}
	r := login(t, dir, s.Token, url).must(t)
	if !strings.Contains(r.stdout, "logged in to "+url+" as token test-admin (admin); context "+s.Addr+" is current") {
		t.Errorf("login said %q", r.stdout)
	}
	fi, err := os.Stat(cfgPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the configuration: %v, mode %v; want 0600", err, fi.Mode())
	}
	if di, err := os.Stat(filepath.Dir(cfgPath)); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("the configuration's folder: %v %v; want 0700", err, di.Mode())
	}
	if !strings.Contains(readFile(t, cfgPath), s.Token) {
		t.Errorf("the token is not stored")
	}
	// No flags: the current context's server and token.
	if out := run(t, dir, "whoami").must(t).stdout; !strings.Contains(out, "server "+url+": token test-admin, role admin") || !strings.Contains(out, "context "+s.Addr) {
		t.Errorf("whoami said %q", out)
	}
	// git asks scangate for the token of the server (a credential
	// helper), and gets nothing for another host.
	var cred result
	withStdin(t, "protocol=http\nhost="+s.Addr+"\npath=git/app.git\n\n", func() { cred = run(t, dir, "git-credential", "get").must(t) })
	if cred.stdout != "username=scangate\npassword="+s.Token+"\n" {
		t.Errorf("git-credential get for the server answered %q", cred.stdout)
	}
	withStdin(t, "protocol=https\nhost=example.com\n\n", func() { cred = run(t, dir, "git-credential", "get").must(t) })
	if cred.stdout != "" {
		t.Errorf("git-credential get for another host answered %q", cred.stdout)
	}
	run(t, dir, "token", "create", "--name", "made-remotely", "--role", "pusher").must(t)
	if out := run(t, dir, "token", "list").must(t).stdout; !strings.Contains(out, "made-remotely") {
		t.Errorf("token list through the context:\n%s", out)
	}
	// A second context for the same server, with the reader token.
	login(t, dir, readerSecret, url, "--name", "ro").must(t)
	for _, format := range []string{"table", "json", "yaml"} {
		out := run(t, dir, "--format", format, "context", "list").must(t).stdout
		if strings.Contains(out, s.Token) || strings.Contains(out, readerSecret) || !strings.Contains(out, "ro") || !strings.Contains(out, s.Addr) {
			t.Errorf("context list --format %s:\n%s", format, out)
		}
	}
	if r := run(t, dir, "rules", "delete", "x"); r.code != cli.ExitBadInput || !strings.Contains(r.stderr, "this needs the admin role; token viewer is a reader") {
		t.Errorf("a reader's context deletes a rule: exit %d %s", r.code, r.stderr)
	}
	run(t, dir, "context", "use", s.Addr).must(t)
	if out := run(t, dir, "whoami").must(t).stdout; !strings.Contains(out, "role admin") {
		t.Errorf("after context use: %s", out)
	}
	if out := run(t, dir, "whoami", "--context", "ro").must(t).stdout; !strings.Contains(out, "role reader") {
		t.Errorf("whoami --context ro: %s", out)
	}
	if out := run(t, dir, "whoami", "--token-file", reader).must(t).stdout; !strings.Contains(out, "role reader") {
		t.Errorf("--token-file over the context: %s", out)
	}
	t.Setenv("SCANGATE_TOKEN", readerSecret)
	if out := run(t, dir, "whoami").must(t).stdout; !strings.Contains(out, "role reader") || !strings.Contains(out, "from SCANGATE_TOKEN") {
		t.Errorf("SCANGATE_TOKEN over the context: %s", out)
	}
	t.Setenv("SCANGATE_TOKEN", "")
	// Another server gets no token of this one's context.
	other := "127.0.0.1:1"
	if r := run(t, dir, "whoami", "--server", other); r.code != cli.ExitBadInput || !strings.Contains(r.stderr, "no token for server http://"+other) {
		t.Errorf("whoami --server %s: exit %d %s", other, r.code, r.stderr)
	}
	if r := run(t, dir, "context", "use", "nope"); r.code != cli.ExitBadInput {
		t.Errorf("context use nope: exit %d", r.code)
	}
	run(t, dir, "context", "delete", s.Addr).must(t)
	if out := run(t, dir, "context", "list").must(t).stdout; strings.Contains(out, "*") || strings.Contains(readFile(t, cfgPath), s.Token) {
		t.Errorf("after context delete:\n%s", out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the client commands made a data folder: %v", err)
	}
	// The token is never an argument.
	if r := run(t, dir, "login", url, s.Token); r.code != cli.ExitBadInput {
		t.Errorf("login URL TOKEN: exit %d, want 2", r.code)
	}
}

// A server that speaks HTTPS with a private CA's certificate: the client
// refuses it until --ca-file names the CA, at login and after (the context
// keeps the file).
func TestLoginTLS(t *testing.T) {
	t.Setenv(cli.ConfigEnv, filepath.Join(t.TempDir(), "config.yaml"))
	certFile, keyFile := selfSigned(t)
	s := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: server.Config{TLSCert: certFile, TLSKey: keyFile}})
	url := "https://" + s.Addr
	dir := t.TempDir()
	if r := login(t, dir, s.Token, url); r.code != cli.ExitInternal || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("login without the CA: exit %d %s; want a refusal naming the certificate", r.code, r.stderr)
	}
	login(t, dir, s.Token, url, "--ca-file", certFile).must(t)
	if out := run(t, dir, "whoami").must(t).stdout; !strings.Contains(out, "server "+url+": token test-admin") {
		t.Errorf("whoami over TLS: %s", out)
	}
	if r := run(t, dir, "whoami", "--ca-file", filepath.Join(dir, "none.pem")); r.code != cli.ExitBadInput || !strings.Contains(r.stderr, "--ca-file") {
		t.Errorf("a missing --ca-file: exit %d %s", r.code, r.stderr)
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1, which is its
// own CA, and its key.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scangate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
