package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/scanner"
	sgserver "github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/servertest"
)

// testCA is a certificate authority made for one test, and the server
// certificates it issues for 127.0.0.1 and localhost.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	file string // the CA certificate, PEM
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scangate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pool: x509.NewCertPool()}
	ca.pool.AddCert(cert)
	ca.file = filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca.file, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue writes a server certificate of serial for 127.0.0.1 and localhost,
// and its key, to certFile and keyFile.
func (ca *testCA) issue(t *testing.T, serial int64, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "scangate test server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// client trusts the CA only, and speaks HTTP/2 when the server offers it.
func (ca *testCA) client() *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.pool}, ForceAttemptHTTP2: true, DisableKeepAlives: true,
	}}
}

// startTLS starts a test server on a certificate of ca.
func startTLS(t *testing.T, ca *testCA, cfg sgserver.Config) *servertest.Server {
	t.Helper()
	dir := t.TempDir()
	cfg.TLSCert, cfg.TLSKey = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	ca.issue(t, 2, cfg.TLSCert, cfg.TLSKey)
	return servertest.Start(t, servertest.Options{Feeds: []string{}, Config: cfg})
}

// do sends a request with a Bearer token ("" for none) and returns the
// response with its body read.
func do(t *testing.T, c *http.Client, method, url, token string, body []byte, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the body: %v", method, url, err)
	}
	return resp, data
}

// Over TLS the server speaks HTTP/2, refuses plain HTTP on its port, and
// git and the Docker Engine work against it with the test CA: a clone and
// a push over HTTPS, and docker login and push.
func TestTLSWithGitAndDocker(t *testing.T) {
	ca := newTestCA(t)
	s := startTLS(t, ca, sgserver.Config{})
	c := ca.client()
	base := "https://" + s.Addr

	resp, _ := do(t, c, http.MethodGet, base+"/healthz", "", nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/2.0" {
		t.Errorf("GET /healthz over TLS: %d %s, want 200 over HTTP/2.0", resp.StatusCode, resp.Proto)
	}
	if resp, body := do(t, http.DefaultClient, http.MethodGet, "http://"+s.Addr+"/healthz", "", nil, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS port: %d %s, want 400", resp.StatusCode, body)
	}

	// git: a hosted repository, cloned and pushed to over HTTPS.
	if resp, body := do(t, c, http.MethodPost, base+"/api/v1/repositories", s.Token, []byte(`{"name": "tls-app"}`), nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create a repository: %d %s", resp.StatusCode, body)
	}
	home := t.TempDir()
	env := append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Dev", "GIT_AUTHOR_EMAIL=dev@example.com", "GIT_COMMITTER_NAME=Dev", "GIT_COMMITTER_EMAIL=dev@example.com")
	git := func(dir string, extraEnv []string, args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = dir, append(append([]string{}, env...), extraEnv...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	remoteURL := fmt.Sprintf("https://ci:%s@%s/git/tls-app.git", s.Token, s.Addr)
	withCA := []string{"GIT_SSL_CAINFO=" + ca.file}
	if out, err := git(home, nil, "clone", remoteURL, "untrusted"); err == nil || !strings.Contains(out, "certificate") {
		t.Errorf("git clone without the CA: %v, want a certificate error:\n%s", err, out)
	}
	if out, err := git(home, withCA, "clone", remoteURL, "work"); err != nil {
		t.Fatalf("git clone over HTTPS: %v\n%s", err, out)
	}
	work := filepath.Join(home, "work")
	if err := os.WriteFile(filepath.Join(work, "README"), []byte("over TLS\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"checkout", "-b", "main"}, {"add", "README"}, {"commit", "-m", "first"}, {"push", "origin", "main"}} {
		if out, err := git(work, withCA, args...); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if out, err := git(home, withCA, "clone", "--branch", "main", remoteURL, "again"); err != nil {
		t.Fatalf("git clone of the pushed branch: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(filepath.Join(home, "again", "README")); err != nil || string(got) != "over TLS\n" {
		t.Errorf("the pushed file cloned back: %q, %v", got, err)
	}

	// Docker: the engine reads a registry's CA from certs.d at each
	// request; it needs no restart.
	certs := filepath.Join("/etc/docker/certs.d", s.Addr)
	if err := os.MkdirAll(certs, 0o755); err != nil {
		t.Fatalf("the Docker Engine's certs.d: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(certs) })
	if err := os.WriteFile(filepath.Join(certs, "ca.crt"), ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	d := newDockerCLI(t)
	run := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	local, ref := "scangate-tls-test:"+run, s.Addr+"/tls/app:"+run
	t.Cleanup(func() {
		for _, r := range []string{local, ref} {
			_, _ = d.run("", "rmi", "--force", r)
		}
	})
	img := imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "etc/os-release", Body: "ID=scangate-tls-test\n"}),
		imagetest.Layer(t, imagetest.Entry{Name: "app/run-id", Body: run}))
	d.must("", "load", "--input", imagetest.WriteDockerArchive(t, filepath.Join(t.TempDir(), "image.tar"), local, img))
	d.must("", "tag", local, ref)
	d.must(s.Token+"\n", "login", s.Addr, "--username", "ci", "--password-stdin")
	d.must("", "push", ref)
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	// The manifest Docker pushed is the one go-containerregistry reads
	// back over TLS with the CA.
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(r, remote.WithAuth(&authn.Basic{Username: "ci", Password: s.Token}), remote.WithTransport(c.Transport))
	if err != nil {
		t.Fatalf("the image Docker pushed over TLS: %v", err)
	}
	if desc.Digest != want {
		t.Logf("docker pushed %s (it rewrites the manifest), go-containerregistry built %s", desc.Digest, want)
	}
	imgs, err := scanner.NewResults(s.Store).ListImages(context.Background(), "tls/app")
	if err != nil || len(imgs) != 1 || imgs[0].Digest != desc.Digest.String() {
		t.Errorf("the push recorded: %+v, %v; want %s", imgs, err, desc.Digest)
	}
}

// dockerCLI runs the docker CLI with a configuration folder of its own,
// so that a login neither reads nor changes the user's credentials.
type dockerCLI struct {
	t      *testing.T
	config string
}

func newDockerCLI(t *testing.T) *dockerCLI {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatalf("the docker CLI is needed: %v", err)
	}
	d := &dockerCLI{t: t, config: t.TempDir()}
	if out, err := d.run("", "version", "--format", "{{.Server.Version}}"); err != nil {
		t.Fatalf("the Docker Engine is needed: docker version: %v\n%s", err, out)
	}
	return d
}

func (d *dockerCLI) run(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"--config", d.config}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *dockerCLI) must(stdin string, args ...string) string {
	d.t.Helper()
	out, err := d.run(stdin, args...)
	if err != nil {
		d.t.Fatalf("docker %s: %v\n%s", args[0], err, out)
	}
	return out
}

// The server binary reads its certificate again on SIGHUP: new
// connections get the new one, and a file that cannot be read keeps the
// one served. Its log names the address it bound.
func TestSIGHUPReloadsTheCertificate(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	ca.issue(t, 100, certFile, keyFile)
	logFile := filepath.Join(dir, "server.log")
	logf, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(scangateBinary(t), "--data-dir", filepath.Join(dir, "data"), "server", "--addr", "127.0.0.1:0",
		"--tls-cert", certFile, "--tls-key", keyFile, "--shutdown-timeout", "5s")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			data, _ := os.ReadFile(logFile)
			t.Logf("server log:\n%s", data)
		}
	})
	// The port is in the log: the address actually bound, not the :0
	// asked for.
	var addr string
	waitUntil(t, time.Minute, "the server's log to name the address it listens on", func() bool {
		data, _ := os.ReadFile(logFile)
		for _, line := range strings.Split(string(data), "\n") {
			if i := strings.Index(line, "listening=127.0.0.1:"); i >= 0 && strings.Contains(line, "scheme=https") {
				addr = strings.Fields(line[i+len("listening="):])[0]
				return !strings.HasSuffix(addr, ":0")
			}
		}
		select {
		case err := <-done:
			t.Fatalf("the server exited: %v", err)
		default:
		}
		return false
	})
	serial := func() int64 {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool})
		if err != nil {
			t.Fatalf("TLS to %s: %v", addr, err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := serial(); got != 100 {
		t.Fatalf("serial %d served, want 100", got)
	}
	ca.issue(t, 101, certFile, keyFile)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Minute, "the new certificate to be served after SIGHUP", func() bool { return serial() == 101 })

	// A key that does not match: the reload fails and 101 stays.
	ca.issue(t, 102, certFile, filepath.Join(dir, "other.key"))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Minute, "the failed reload to be logged", func() bool {
		data, _ := os.ReadFile(logFile)
		return strings.Contains(string(data), "could not be read again")
	})
	if got := serial(); got != 101 {
		t.Errorf("after a failed reload serial %d is served, want 101 still", got)
	}
	resp, _ := do(t, ca.client(), http.MethodGet, "https://"+addr+"/readyz", "", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /readyz after the reloads: %d", resp.StatusCode)
	}
}

// logBuffer is a slog destination tests read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the JSON records logged with msg.
func (b *logBuffer) records(msg string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(b.buf.Bytes(), []byte("\n")) {
		var rec map[string]any
		if json.Unmarshal(line, &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Plain HTTP is refused on an address other than loopback unless
// --insecure-plaintext says so, and then the log says so loudly and names
// the address bound.
func TestPlaintextOnlyOnLoopback(t *testing.T) {
	err := sgserver.Run(context.Background(), sgserver.Config{Addr: "0.0.0.0:0", DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "--insecure-plaintext") {
		t.Fatalf("plain HTTP on 0.0.0.0: %v, want a refusal naming --insecure-plaintext", err)
	}

	var logs logBuffer
	ready := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- sgserver.Run(ctx, sgserver.Config{Addr: "0.0.0.0:0", DataDir: t.TempDir(), InsecurePlaintext: true,
			Logger: logs.logger(), Ready: ready, ShutdownTimeout: 5 * time.Second})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("with --insecure-plaintext: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the server did not start in 60 s")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("stop: %v", err)
	}
	if len(logs.records("INSECURE: serving plain HTTP on a non-loopback address (--insecure-plaintext); "+
		"tokens and images cross the network unencrypted and can be read or changed by anyone on the path")) != 1 {
		t.Errorf("no INSECURE warning logged:\n%s", logs.String())
	}
	recs := logs.records("scangate server ready")
	if len(recs) != 1 {
		t.Fatalf("ready logged %d times:\n%s", len(recs), logs.String())
	}
	bound, _ := recs[0]["listening"].(string)
	host, port, err := net.SplitHostPort(bound)
	if err != nil || net.ParseIP(host) == nil || !net.ParseIP(host).IsUnspecified() || port == "0" || recs[0]["scheme"] != "http" {
		t.Errorf("logged listening=%q scheme=%v; want the unspecified address with the port bound, over http", bound, recs[0]["scheme"])
	}
}
