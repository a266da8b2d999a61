package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	cryptotls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.yaml.in/yaml/v3"

	"github.com/scangate/scangate/internal/imagetest"
)

// scangate's own image, as the README's "Running at scale" runs it: the
// base made by deploy/base.sh, deploy/Dockerfile built by the real Docker
// Engine over a freshly built binary, a non-root user, then `docker run`
// with a read-only root, the data folder on a volume and the port
// published on 127.0.0.1,
// the first admin's token made with `docker exec`, an image pushed and its
// scan read through the API.
func TestContainerImage(t *testing.T) {
	docker := requireDocker(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])

	// The base: made once per engine, a no-op while deploy/base.sh is
	// unchanged.
	run(t, "bash", filepath.Join(root, "deploy", "base.sh"))

	// The context is what `make image` sends: bin/scangate alone.
	ctx := t.TempDir()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	args := []string{"build", "-trimpath", "-o", filepath.Join(ctx, "bin", "scangate")}
	isal := fileExists("/usr/include/isa-l/igzip_lib.h") // as the Makefile decides
	if isal {
		args = append(args, "-tags", "isal")
	}
	build := exec.Command(goBin, append(args, "./cmd/scangate")...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tag := "scangate-e2e:" + id
	t.Cleanup(func() { _ = exec.Command(docker, "rmi", "-f", tag).Run() })
	run(t, docker, "build", "-q", "-f", filepath.Join(root, "deploy", "Dockerfile"), "-t", tag, ctx)

	// Non-root, by number (Kubernetes' runAsNonRoot checks the number),
	// git and CA certificates there, no compiler.
	if u := strings.TrimSpace(run(t, docker, "image", "inspect", "-f", "{{.Config.User}}", tag)); u != "10001:10001" {
		t.Errorf("image user %q, want 10001:10001", u)
	}
	if out := run(t, docker, "run", "--rm", "--entrypoint", "id", tag, "-u"); strings.TrimSpace(out) == "0" {
		t.Error("the image runs as root")
	}
	tools := run(t, docker, "run", "--rm", "--entrypoint", "sh", tag, "-c",
		`git --version; test -s /etc/ssl/certs/ca-certificates.crt && echo ca-ok; for c in gcc cc make go; do command -v $c; done; ldd /usr/local/bin/scangate`)
	for _, want := range []string{"git version", "ca-ok"} {
		if !strings.Contains(tools, want) {
			t.Errorf("image lacks %q:\n%s", want, tools)
		}
	}
	for _, c := range []string{"/gcc", "/cc\n", "/make", "/go\n"} {
		if strings.Contains(tools, c) {
			t.Errorf("image has a build tool (%s):\n%s", strings.Trim(c, "/\n"), tools)
		}
	}
	if isal && !strings.Contains(tools, "libisal.so.2 => /") {
		t.Errorf("the isal build does not find ISA-L in the image:\n%s", tools)
	}

	// Without TLS or an explicit opt-in, plain HTTP off loopback is refused.
	if out, err := exec.Command(docker, "run", "--rm", tag).CombinedOutput(); err == nil || !strings.Contains(string(out), "refusing to serve plain HTTP") {
		t.Errorf("the image served plain HTTP without being told to (err %v):\n%s", err, out)
	}

	// The data folder on a volume; the feeds imported as an air-gapped
	// server's are, by the image's own `db import`.
	vol := "scangate-e2e-" + id
	t.Cleanup(func() { _ = exec.Command(docker, "volume", "rm", "-f", vol).Run() })
	run(t, docker, "volume", "create", vol)
	run(t, docker, "run", "--rm", "-v", vol+":/var/lib/scangate",
		"-v", filepath.Join(root, "testdata", "vulndata")+":/feeds:ro", tag, "db", "import", "/feeds/debian", "/feeds/ghsa")

	ctr := "scangate-e2e-" + id
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command(docker, "logs", "--tail", "30", ctr).CombinedOutput()
			t.Logf("container log:\n%s", out)
		}
		_ = exec.Command(docker, "rm", "-f", "-v", ctr).Run()
	})
	// As the README's line: a read-only root filesystem (the server
	// writes only its data folder and /tmp), published on loopback alone.
	run(t, docker, "run", "-d", "--name", ctr, "--read-only", "--tmpfs", "/tmp", "-v", vol+":/var/lib/scangate",
		"-p", "127.0.0.1::5000", "-e", "SCANGATE_INSECURE_PLAINTEXT=true", tag)
	port := strings.TrimSpace(run(t, docker, "port", ctr, "5000/tcp"))
	if i := strings.LastIndex(port, "\n"); i >= 0 { // one line per address family
		port = port[:i]
	}
	addr := "127.0.0.1:" + port[strings.LastIndex(port, ":")+1:]
	waitReady(t, "http://"+addr+"/readyz", 60*time.Second)
	if s, err := get("http://" + addr + "/healthz"); err != nil {
		t.Fatalf("/healthz: %v (%s)", err, s)
	}

	// The first admin's token, as the README says: the local command in
	// the container, over the data folder.
	out := run(t, docker, "exec", ctr, "scangate", "token", "create", "--name", "admin", "--role", "admin")
	token := strings.TrimSpace(strings.SplitN(out, "token admin created", 2)[0])
	if !strings.HasPrefix(token, "sgt_") {
		t.Fatalf("token create printed %q", out)
	}

	img, _ := imagetest.BookwormApp(t)
	ref, err := name.ParseReference(addr+"/shop/api:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "ci", Password: token})); err != nil {
		t.Fatalf("push: %v", err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}

	// The scan, through the API.
	var report struct {
		Findings []struct{ ID string }
		Summary  struct{ HIGH, TOTAL int }
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/findings?image=shop/api@"+digest.String(), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK {
			err := json.NewDecoder(resp.Body).Decode(&report)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no scan report of shop/api@%s within 60 s (last answer %d)", digest, resp.StatusCode)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if report.Summary.HIGH == 0 || len(report.Findings) != report.Summary.TOTAL {
		t.Errorf("report summary %+v with %d findings: want the fixture's (lodash 4.17.15 has HIGH advisories)", report.Summary, len(report.Findings))
	}

	// The data folder is the volume's, owned by the image's user.
	owner := run(t, docker, "exec", ctr, "stat", "-c", "%u %a", "/var/lib/scangate")
	if strings.TrimSpace(owner) != "10001 700" {
		t.Errorf("data folder owner and mode %q, want 10001 700", owner)
	}

	t.Run("kubernetes pod", func(t *testing.T) { podLikeRun(t, docker, tag, id) })
	t.Run("compose replicas", func(t *testing.T) { composeLikeRun(t, docker, tag, id) })
}

// requireDocker fails the test without a Docker CLI and a running engine.
func requireDocker(t *testing.T) string {
	t.Helper()
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Fatal("this test needs a Docker Engine and its CLI (docker): ", err)
	}
	if out, err := exec.Command(docker, "version", "--format", "{{.Server.APIVersion}}").CombinedOutput(); err != nil {
		t.Fatalf("this test needs a running Docker Engine: %v\n%s", err, out)
	}
	return docker
}

// run runs a command and returns its standard output, failing the test
// (with its standard error) if it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func waitReady(t *testing.T, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %s (last: %v)", url, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// The Kubernetes Deployment's pod, played on the Docker Engine with the
// image just built: the init container's own command (read from
// deployment.yaml) copies keys from a folder laid out as a Secret's
// volume (symbolic links into ..data) into a data folder inside a
// world-writable volume (as an emptyDir is), then the server starts as the
// manifest starts it (its environment, HTTPS, read-only root, no
// capabilities) and uses those keys, not keys of its own.
func podLikeRun(t *testing.T, docker, tag, id string) {
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "kubernetes", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var d k8sObject
	if err := yaml.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	pod := d.Spec.Template.Spec
	if len(pod.InitContainers) != 1 || len(pod.InitContainers[0].Command) == 0 || len(pod.Containers) != 1 {
		t.Fatalf("deployment.yaml: want one init container with a command and one container")
	}
	var env []string
	for _, e := range pod.Containers[0].Env {
		if e.ValueFrom == nil && !sharedPart(e.Name) {
			env = append(env, "-e", e.Name+"="+e.Value)
		}
	}

	// The Secret's volume: files in ..data, linked from their names.
	keys := t.TempDir()
	if err := os.Chmod(keys, 0o755); err != nil {
		t.Fatal(err)
	}
	sealing := make([]byte, 32)
	approval := make([]byte, 32)
	_, _ = rand.Read(sealing)
	_, _ = rand.Read(approval)
	files := map[string][]byte{"1.key": []byte(hex.EncodeToString(sealing) + "\n"), "approval.key": approval}
	if err := os.Mkdir(filepath.Join(keys, "..data"), 0o755); err != nil {
		t.Fatal(err)
	}
	for n, b := range files {
		// 0444: as fsGroup makes the manifest's 0440 readable to uid 10001.
		if err := os.WriteFile(filepath.Join(keys, "..data", n), b, 0o444); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", n), filepath.Join(keys, n)); err != nil {
			t.Fatal(err)
		}
	}
	tls := t.TempDir()
	writeSelfSigned(t, filepath.Join(tls, "tls.crt"), filepath.Join(tls, "tls.key"))
	if err := os.Chmod(tls, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(tls, "tls.key"), 0o444); err != nil {
		t.Fatal(err)
	}

	vol := "scangate-e2e-pod-" + id
	t.Cleanup(func() { _ = exec.Command(docker, "volume", "rm", "-f", vol).Run() })
	run(t, docker, "volume", "create", vol)
	run(t, docker, "run", "--rm", "--user", "0", "-v", vol+":/data", "--entrypoint", "chmod", tag, "0777", "/data")
	ic := pod.InitContainers[0]
	initArgs := []string{"run", "--rm", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"-v", vol + ":/data", "-v", keys + ":/keys:ro", "--entrypoint", ic.Command[0], ic.Image}
	initArgs[len(initArgs)-1] = tag
	run(t, docker, append(initArgs, ic.Command[1:]...)...)

	ctr := "scangate-e2e-pod-" + id
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command(docker, "logs", "--tail", "30", ctr).CombinedOutput()
			t.Logf("pod-like container log:\n%s", out)
		}
		_ = exec.Command(docker, "rm", "-f", "-v", ctr).Run()
	})
	args := []string{"run", "-d", "--name", ctr, "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
		"--security-opt", "no-new-privileges", "-v", vol + ":/data", "-v", tls + ":/etc/scangate/tls:ro",
		"-p", "127.0.0.1::5000"}
	args = append(append(args, env...), tag)
	run(t, docker, append(args, pod.Containers[0].Args...)...)
	port := strings.Fields(run(t, docker, "port", ctr, "5000/tcp"))[0]
	url := "https://127.0.0.1:" + port[strings.LastIndex(port, ":")+1:] + "/readyz"
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &cryptotls.Config{InsecureSkipVerify: true}}} // the test's own certificate
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if state, _ := exec.Command(docker, "inspect", "-f", "{{.State.Running}}", ctr).Output(); strings.TrimSpace(string(state)) != "true" {
			t.Fatalf("the server stopped before it was ready")
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 60 s: %v", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The server's keys are the Secret's: regular files, 0600, no other.
	got := run(t, docker, "exec", ctr, "sh", "-c",
		"cd /data/scangate && ls keys && stat -c '%n %F %a %u' keys/1.key approval.key && sha256sum keys/1.key approval.key")
	for n, b := range files {
		sum := sha256.Sum256(b)
		if !strings.Contains(got, hex.EncodeToString(sum[:])) {
			t.Errorf("%s is not the Secret's:\n%s", n, got)
		}
	}
	for _, want := range []string{"keys/1.key regular file 600 10001", "approval.key regular file 600 10001"} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q:\n%s", want, got)
		}
	}
	if ls := strings.Fields(strings.SplitN(got, "keys/1.key regular", 2)[0]); !slices.Equal(ls, []string{"1.key"}) {
		t.Errorf("keys folder holds %v, want the Secret's 1.key alone", ls)
	}
}

// writeSelfSigned writes a certificate for 127.0.0.1 and its key.
func writeSelfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scangate-e2e"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The compose file's replicas, played on the Docker Engine with the image
// just built: its init service's command (from `docker-compose config`)
// makes the shared keys, run twice (the second changes nothing); two
// replicas start with the file's entrypoint and environment, its
// healthcheck passes in each, and both use the shared keys.
func composeLikeRun(t *testing.T, docker, tag, id string) {
	compose, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("this test needs docker-compose (Debian: apt-get install docker-compose; .ci/run installs it): ", err)
	}
	dir := filepath.Join(repoRoot(t), "deploy", "compose")
	cmd := exec.Command(compose, "--project-directory", dir, "-f", filepath.Join(dir, "compose.yaml"),
		"--env-file", filepath.Join(dir, "example.env"), "config")
	cmd.Env = envWithout("SCANGATE_", "POSTGRES_", "S3_")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker-compose config: %v", err)
	}
	type service struct {
		User        string
		Entrypoint  []string
		Environment map[string]string
		Healthcheck struct{ Test []string }
	}
	var cfg struct{ Services map[string]service }
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	initSvc, sg := cfg.Services["init"], cfg.Services["scangate"]
	if len(initSvc.Entrypoint) == 0 || len(sg.Entrypoint) == 0 || len(sg.Healthcheck.Test) < 2 || sg.Healthcheck.Test[0] != "CMD" {
		t.Fatalf("compose: want the init and scangate services' entrypoints and a CMD healthcheck: %+v %+v", initSvc, sg)
	}

	shared := "scangate-e2e-shared-" + id
	t.Cleanup(func() { _ = exec.Command(docker, "volume", "rm", "-f", shared).Run() })
	run(t, docker, "volume", "create", shared)
	initArgs := []string{"run", "--rm", "-v", shared + ":/shared", "--entrypoint", initSvc.Entrypoint[0]}
	if initSvc.User != "" {
		initArgs = append(initArgs, "--user", initSvc.User)
	}
	initArgs = append(append(initArgs, tag), initSvc.Entrypoint[1:]...)
	run(t, docker, initArgs...)
	sums := func(paths ...string) string {
		return run(t, docker, append([]string{"run", "--rm", "-v", shared + ":/shared", "--entrypoint", "sha256sum", tag}, paths...)...)
	}
	first := sums("/shared/approval.key", "/shared/keys/1.key")
	run(t, docker, initArgs...)
	if again := sums("/shared/approval.key", "/shared/keys/1.key"); again != first {
		t.Errorf("init made new keys on its second run:\n%s\n%s", first, again)
	}

	var replicas []string
	for i := range 2 {
		ctr := fmt.Sprintf("scangate-e2e-replica-%s-%d", id, i)
		replicas = append(replicas, ctr)
		t.Cleanup(func() {
			if t.Failed() {
				out, _ := exec.Command(docker, "logs", "--tail", "30", ctr).CombinedOutput()
				t.Logf("%s log:\n%s", ctr, out)
			}
			_ = exec.Command(docker, "rm", "-f", "-v", ctr).Run()
		})
		args := []string{"run", "-d", "--name", ctr, "--read-only", "--tmpfs", "/tmp", "-v", shared + ":/shared",
			"--entrypoint", sg.Entrypoint[0]}
		for k, v := range sg.Environment {
			if !sharedPart(k) {
				args = append(args, "-e", k+"="+v)
			}
		}
		run(t, docker, append(append(args, tag), sg.Entrypoint[1:]...)...)
	}
	for _, ctr := range replicas {
		deadline := time.Now().Add(60 * time.Second)
		for {
			// The file's own healthcheck: GET /readyz answered 200.
			err := exec.Command(docker, append([]string{"exec", ctr}, sg.Healthcheck.Test[1:]...)...).Run()
			if err == nil {
				break
			}
			if state, _ := exec.Command(docker, "inspect", "-f", "{{.State.Running}}", ctr).Output(); strings.TrimSpace(string(state)) != "true" {
				t.Fatalf("%s stopped before it was ready", ctr)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the healthcheck did not pass within 60 s: %v", ctr, err)
			}
			time.Sleep(300 * time.Millisecond)
		}
		got := run(t, docker, "exec", ctr, "sh", "-c", "cd /var/lib/scangate && sha256sum approval.key keys/1.key && ls keys")
		for _, line := range strings.Split(strings.TrimSpace(first), "\n") {
			if !strings.Contains(got, strings.Fields(line)[0]) {
				t.Errorf("%s does not use the shared %s:\n%s", ctr, strings.Fields(line)[1], got)
			}
		}
		if !strings.HasSuffix(strings.TrimSpace(got), "keys/1.key\n1.key") {
			t.Errorf("%s: the keys folder holds more than the shared 1.key:\n%s", ctr, got)
		}
	}
	// Hosted git is the shared volume's: what one replica writes there,
	// the other reads.
	run(t, docker, "exec", replicas[0], "mkdir", "/var/lib/scangate/git/from-replica-0")
	if out, err := exec.Command(docker, "exec", replicas[1], "test", "-d", "/var/lib/scangate/git/from-replica-0").CombinedOutput(); err != nil {
		t.Errorf("%s does not see the git folder %s wrote: %v %s", replicas[1], replicas[0], err, out)
	}
}

// sharedPart reports whether an environment variable points the server at
// PostgreSQL, S3 or Redis: the played runs have none of them, and keep
// SQLite and the registry in the data folder.
func sharedPart(name string) bool {
	if strings.HasPrefix(name, "AWS_") {
		return true
	}
	flag := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, "SCANGATE_"), "_", "-"))
	return strings.HasPrefix(name, "SCANGATE_") && slices.Contains(sharedFlags, flag)
}

// sharedFlags are the server's flags that name PostgreSQL, S3 or Redis.
var sharedFlags = []string{"database", "registry-storage", "registry-secret", "registry-cache"}
