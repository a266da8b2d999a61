package e2e

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The deployment files of deploy/ (compose, Kubernetes, systemd) are
// checked without the systems they are for: no cluster, no systemd as PID
// 1, no PostgreSQL, Redis or S3 images. What is checked: that each parses
// as its tool parses it, that every SCANGATE_ variable names a real server
// flag, and the security settings the README promises.

// serverFlags lists `scangate server`'s flags, as its help prints them,
// from a binary built now.
func serverFlags(t *testing.T) []string {
	t.Helper()
	root := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "scangate")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "./cmd/scangate")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	help := run(t, bin, "server", "--help")
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`).FindAllStringSubmatch(help, -1) {
		flags = append(flags, m[1])
	}
	if !slices.Contains(flags, "addr") || !slices.Contains(flags, "data-dir") {
		t.Fatalf("server --help lists %v: want addr and data-dir among them", flags)
	}
	return flags
}

// checkEnvNames fails the test for each SCANGATE_ variable in text that
// is no flag of the server's.
func checkEnvNames(t *testing.T, file, text string, flags []string) {
	t.Helper()
	seen := 0
	for _, m := range regexp.MustCompile(`SCANGATE_([A-Z0-9_]+)`).FindAllStringSubmatch(text, -1) {
		flag := strings.ToLower(strings.ReplaceAll(m[1], "_", "-"))
		if strings.HasPrefix(flag, "image") || strings.HasPrefix(flag, "publish") || strings.HasPrefix(flag, "tls-dir") {
			continue // the compose file's own settings, not the server's
		}
		seen++
		if !slices.Contains(flags, flag) {
			t.Errorf("%s: %s names no server flag (--%s)", file, m[0], flag)
		}
	}
	if seen == 0 {
		t.Errorf("%s: no SCANGATE_ variable", file)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestComposeFile(t *testing.T) {
	compose, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("this test needs docker-compose (Debian: apt-get install docker-compose; .ci/run installs it): ", err)
	}
	dir := filepath.Join(repoRoot(t), "deploy", "compose")
	// Compose's own parser, with the example settings: the file is valid,
	// and every ${…:?} it needs is in example.env.
	cmd := exec.Command(compose, "--project-directory", dir, "-f", filepath.Join(dir, "compose.yaml"),
		"--env-file", filepath.Join(dir, "example.env"), "config")
	cmd.Env = envWithout("SCANGATE_", "POSTGRES_", "S3_")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, stderr.String())
	}
	var cfg struct {
		Services map[string]struct {
			Image       string
			User        string
			Scale       int
			Ports       []any
			Environment map[string]string
		}
	}
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("compose config's output: %v", err)
	}
	want := map[string]string{"postgres": "postgres:15", "redis": "redis:7", "s3": "versity/versitygw",
		"scangate": "scangate:latest", "init": "scangate:latest", "proxy": "nginx:1.27"}
	for name, image := range want {
		if got := cfg.Services[name].Image; got != image {
			t.Errorf("service %s: image %q, want %q", name, got, image)
		}
	}
	sg := cfg.Services["scangate"]
	if sg.Scale != 3 {
		t.Errorf("scangate: scale %d, want 3 replicas", sg.Scale)
	}
	for name, s := range cfg.Services {
		if len(s.Ports) > 0 && name != "proxy" {
			t.Errorf("service %s publishes a port: only the TLS proxy should", name)
		}
	}
	for _, k := range []string{"SCANGATE_DATABASE", "SCANGATE_REGISTRY_STORAGE", "SCANGATE_REGISTRY_CACHE", "SCANGATE_REGISTRY_SECRET"} {
		if sg.Environment[k] == "" {
			t.Errorf("scangate: %s not set", k)
		}
	}
	if !strings.HasPrefix(sg.Environment["SCANGATE_REGISTRY_STORAGE"], "s3://") ||
		!strings.HasPrefix(sg.Environment["SCANGATE_DATABASE"], "postgres://") {
		t.Errorf("scangate: storage %q, database %q: want S3 and PostgreSQL",
			sg.Environment["SCANGATE_REGISTRY_STORAGE"], sg.Environment["SCANGATE_DATABASE"])
	}
	// A secret left out of .env stops compose with the variable's name.
	empty := filepath.Join(t.TempDir(), "empty.env")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(compose, "--project-directory", dir, "-f", filepath.Join(dir, "compose.yaml"),
		"--env-file", empty, "config", "-q")
	cmd.Env = envWithout("SCANGATE_", "POSTGRES_", "S3_")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "POSTGRES_PASSWORD") {
		t.Errorf("compose without .env: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	checkEnvNames(t, "compose.yaml", string(raw), serverFlags(t))
}

// envWithout is the environment without the variables of these prefixes,
// which would override the env file.
func envWithout(prefixes ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		keep := true
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				keep = false
			}
		}
		if keep {
			env = append(env, kv)
		}
	}
	return env
}

// k8sObject is the part of a Kubernetes object the test reads.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string
	Metadata   struct{ Name string }
	Type       string
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Replicas int
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		}
		Template struct {
			Metadata struct{ Labels map[string]string }
			Spec     k8sPod
		}
		Ports []struct {
			Name       string
			Port       int
			TargetPort string `yaml:"targetPort"`
		}
		AccessModes []string `yaml:"accessModes"`
	}
}

type k8sPod struct {
	AutomountServiceAccountToken *bool `yaml:"automountServiceAccountToken"`
	SecurityContext              struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    int   `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	InitContainers []k8sContainer `yaml:"initContainers"`
	Containers     []k8sContainer
	Volumes        []struct {
		Name   string
		Secret *struct {
			SecretName string `yaml:"secretName"`
		}
		EmptyDir              *struct{} `yaml:"emptyDir"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
	}
}

type k8sProbe struct {
	HTTPGet struct {
		Path, Port, Scheme string
	} `yaml:"httpGet"`
}

type k8sContainer struct {
	Name, Image   string
	Command, Args []string
	Ports         []struct {
		Name          string
		ContainerPort int `yaml:"containerPort"`
	}
	Env []struct {
		Name, Value string
		ValueFrom   *struct {
			SecretKeyRef struct{ Name, Key string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	StartupProbe    *k8sProbe `yaml:"startupProbe"`
	LivenessProbe   *k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe  *k8sProbe `yaml:"readinessProbe"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct{ Drop []string }
	} `yaml:"securityContext"`
	Resources struct {
		Requests, Limits map[string]string
	}
	VolumeMounts []struct {
		Name      string
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

func TestKubernetesManifests(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "deploy", "kubernetes")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", dir, err)
	}
	byKind := map[string][]k8sObject{}
	var all strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(data)
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var node yaml.Node
			if err := dec.Decode(&node); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", filepath.Base(f), err)
			}
			var o k8sObject
			if err := node.Decode(&o); err != nil {
				t.Fatalf("%s: %v", filepath.Base(f), err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Errorf("%s: an object without apiVersion, kind or metadata.name", filepath.Base(f))
			}
			byKind[o.Kind] = append(byKind[o.Kind], o)
		}
	}
	if len(byKind["Deployment"]) != 1 || len(byKind["Service"]) != 1 || len(byKind["Secret"]) != 1 {
		t.Fatalf("want one Deployment, Service and Secret; have %v", kinds(byKind))
	}
	// One claim: the hosted git repositories, which every replica must
	// see (the rest is in PostgreSQL, S3 or a Secret).
	claims := byKind["PersistentVolumeClaim"]
	if len(claims) != 1 || !slices.Equal(claims[0].Spec.AccessModes, []string{"ReadWriteMany"}) {
		t.Errorf("want one ReadWriteMany PersistentVolumeClaim (hosted git); have %+v", claims)
	}
	d := byKind["Deployment"][0]
	pod := d.Spec.Template.Spec
	if d.Spec.Replicas < 2 {
		t.Errorf("replicas %d: want several", d.Spec.Replicas)
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("the Deployment's selector %s=%s does not select its pods", k, v)
		}
	}
	if pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.RunAsUser != 10001 {
		t.Error("pods: want runAsNonRoot and runAsUser 10001 (the image's user)")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("pods: want automountServiceAccountToken: false")
	}
	volumes := map[string]bool{}
	secrets := map[string]bool{}
	claimed := map[string]string{} // volume → claim
	for _, v := range pod.Volumes {
		volumes[v.Name] = true
		if v.Secret != nil {
			secrets[v.Secret.SecretName] = true
		}
		if v.PersistentVolumeClaim != nil {
			claimed[v.Name] = v.PersistentVolumeClaim.ClaimName
		}
	}
	secret := byKind["Secret"][0]
	for _, c := range append(pod.InitContainers, pod.Containers...) {
		sc := c.SecurityContext
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil ||
			*sc.AllowPrivilegeEscalation || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
			t.Errorf("container %s: want readOnlyRootFilesystem, no privilege escalation, all capabilities dropped", c.Name)
		}
		if c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
			t.Errorf("container %s: want memory requests and limits", c.Name)
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				t.Errorf("container %s mounts %s, which is no volume", c.Name, m.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil {
				ref := e.ValueFrom.SecretKeyRef
				if ref.Name != secret.Metadata.Name || secret.StringData[ref.Key] == "" {
					t.Errorf("container %s: %s from %s/%s, which secret.example.yaml does not have", c.Name, e.Name, ref.Name, ref.Key)
				}
				continue
			}
			if regexp.MustCompile(`DATABASE|SECRET|ACCESS_KEY|TOKEN|PASSWORD`).MatchString(e.Name) {
				t.Errorf("container %s: %s in the manifest, not from a Secret", c.Name, e.Name)
			}
		}
	}
	c := pod.Containers[0]
	gitMounted := false
	for _, m := range c.VolumeMounts {
		if len(claims) == 1 && claimed[m.Name] == claims[0].Metadata.Name && m.MountPath == "/data/scangate/git" {
			gitMounted = true
		}
	}
	if !gitMounted {
		t.Error("the server does not mount the shared git claim at DATA_DIR/git (/data/scangate/git)")
	}
	ports := map[string]bool{}
	for _, p := range c.Ports {
		ports[p.Name] = true
	}
	for what, p := range map[string]*k8sProbe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		want := "/healthz"
		if what == "readiness" {
			want = "/readyz"
		}
		if p == nil || p.HTTPGet.Path != want || !ports[p.HTTPGet.Port] {
			t.Errorf("%s probe %+v: want GET %s on a container port", what, p, want)
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["SCANGATE_TLS_CERT"] == "" || env["SCANGATE_INSECURE_PLAINTEXT"] != "" {
		t.Error("the server off loopback: want TLS, not --insecure-plaintext")
	}
	for _, name := range []string{"scangate-keys", "scangate-tls"} {
		if !secrets[name] {
			t.Errorf("no volume of the Secret %s", name)
		}
	}
	svc := byKind["Service"][0]
	for _, p := range svc.Spec.Ports {
		if !ports[p.TargetPort] {
			t.Errorf("the Service's port %s targets %q, no port of the container", p.Name, p.TargetPort)
		}
	}
	checkEnvNames(t, "kubernetes/*.yaml", all.String(), serverFlags(t))
}

func kinds(m map[string][]k8sObject) []string {
	var ks []string
	for k, v := range m {
		for range v {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("this test needs systemd-analyze (Debian: apt-get install systemd; .ci/run installs it): ", err)
	}
	unit, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "systemd", "scangate.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=scangate", "ProtectSystem=strict", "NoNewPrivileges=yes",
		"CapabilityBoundingSet=\n", "PrivateTmp=yes", "EnvironmentFile=", "ExecStart=/usr/local/bin/scangate server"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	// verify wants ExecStart's program to exist: any executable will do.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "scangate.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/scangate"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	// verify exits 0 on an unknown key, a bad value or a misspelt section:
	// it says so, and anything it says is a failure here.
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	checkEnvNames(t, "scangate.service", string(unit), serverFlags(t))
}
