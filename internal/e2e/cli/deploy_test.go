package cli_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/cli"
	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/nettest"
	"github.com/scangate/scangate/internal/servertest"
)

// tempFile writes a file in a fresh folder and returns its path.
func tempFile(t *testing.T, name, body string) string {
	t.Helper()
	return writeFile(t, t.TempDir(), name, body)
}

// apiToken makes a token on the server and returns a file holding it.
func apiToken(t *testing.T, s *servertest.Server, name, role string) string {
	t.Helper()
	status, body := s.API(t, "POST", "/api/v1/tokens", map[string]string{"name": name, "role": role})
	if status != http.StatusCreated {
		t.Fatalf("create token %s: %d %s", name, status, body)
	}
	var out struct{ Secret string }
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return tempFile(t, name+".token", out.Secret+"\n")
}

// The deploy commands as a user types them, against a real server: a
// cluster, a YAML task definition and an ECS one, a service at desired
// count 0 with a load balancer, its description, a new desired count
// whose tasks admission refuses (so no container runs), an admin's
// override; tokens without the role, missing and refused; a server that is
// not there.
func TestDeployCommands(t *testing.T) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	cluster, family := "web-"+id, "api-"+id
	t.Cleanup(func() { _ = exec.Command("docker", "network", "rm", "scangate-"+cluster).Run() })
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	server := "http://" + s.Addr
	deployer := apiToken(t, s, "ci", "deployer")
	reader := apiToken(t, s, "viewer", "reader")
	admin := tempFile(t, "admin.token", s.Token)
	t.Setenv("SCANGATE_TOKEN", "")
	t.Setenv("SCANGATE_SERVER", "")
	dir := t.TempDir()
	as := func(token string, a ...string) result {
		t.Helper()
		return run(t, dir, append(a, "--server", server, "--token-file", token)...)
	}

	img := imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "etc/motd", Body: "cli test " + id}))
	digest := s.Push(t, "shop/api:1", img)
	pinned := s.Addr + "/shop/api@" + digest

	if out := as(deployer, "cluster", "create", cluster).must(t).stdout; !strings.Contains(out, "cluster "+cluster+" created (docker, tasks on 127.0.0.1)") {
		t.Errorf("cluster create said %q", out)
	}
	var clusters []deploy.Cluster
	if err := json.Unmarshal([]byte(as(reader, "--format", "json", "cluster", "list").must(t).stdout), &clusters); err != nil || len(clusters) != 1 || clusters[0].Name != cluster {
		t.Errorf("cluster list --format json: %v %+v", err, clusters)
	}

	// A YAML task definition naming a tag: registered with its digest.
	yamlDef := tempFile(t, "api.yaml", fmt.Sprintf(`family: %s
containerDefinitions:
  - name: app
    image: %s/shop/api:1
    portMappings: [{containerPort: 8080}]
    environment: [{name: MESSAGE, value: "yes"}]
`, family, s.Addr))
	out := as(deployer, "taskdef", "register", "-f", yamlDef).must(t).stdout
	if !strings.Contains(out, "registered "+family+":1") || !strings.Contains(out, "app: "+pinned) {
		t.Errorf("taskdef register (YAML) said:\n%s", out)
	}
	// ECS's JSON, as describe-task-definition prints it: its ignored
	// fields are listed.
	ecsDef := tempFile(t, "api.json", fmt.Sprintf(`{"taskDefinition": {"family": %q, "revision": 4, "status": "ACTIVE",
		"executionRoleArn": "arn:aws:iam::012345678910:role/ecsTaskExecutionRole",
		"containerDefinitions": [{"name": "app", "image": %q, "portMappings": [{"containerPort": 8080}]}]}}`, family, pinned))
	out = as(deployer, "taskdef", "register", "-f", ecsDef).must(t).stdout
	if !strings.Contains(out, "registered "+family+":2") || !strings.Contains(out, "taskDefinition.executionRoleArn: ignored (no IAM in scangate)") {
		t.Errorf("taskdef register (ECS JSON) said:\n%s", out)
	}
	// describe writes YAML that register takes back.
	described := as(reader, "taskdef", "describe", family+":1").must(t).stdout
	if !strings.HasPrefix(described, "# "+family+":1 ACTIVE, registered ") || !strings.Contains(described, "image: "+pinned) ||
		!strings.Contains(described, `value: "yes"`) {
		t.Errorf("taskdef describe:\n%s", described)
	}
	out = as(deployer, "taskdef", "register", "-f", tempFile(t, "again.yaml", described)).must(t).stdout
	if !strings.Contains(out, "registered "+family+":3") {
		t.Errorf("describe's YAML registered again: %s", out)
	}
	out = as(deployer, "taskdef", "deregister", family+":3").must(t).stdout
	if !strings.Contains(out, family+":3 is INACTIVE") {
		t.Errorf("taskdef deregister: %s", out)
	}
	out = as(reader, "taskdef", "list", family).must(t).stdout
	if !servertest.HasLine(out, family+":3", "INACTIVE", "app=shop/api@sha256:", "token ci") || !servertest.HasLine(out, family+":1", "ACTIVE") {
		t.Errorf("taskdef list:\n%s", out)
	}

	// A service at desired count 0, with a configuration file.
	listener := nettest.FreePort(t)
	config := tempFile(t, "service.yaml", fmt.Sprintf(`deploymentConfiguration:
  minimumHealthyPercent: 50
  deploymentCircuitBreaker: {enable: true, rollback: true}
  deadline: 10m
healthCheckGracePeriod: 30s
loadBalancer: {listenerPort: %d, containerName: app, containerPort: 8080}
`, listener))
	out = as(deployer, "service", "create", "--cluster", cluster, "--name", "api", "--taskdef", family+":1", "-f", config).must(t).stdout
	if !strings.Contains(out, "service api in cluster "+cluster+": ACTIVE, "+family+":1") || !strings.Contains(out, "desired 0, running 0") {
		t.Errorf("service create said:\n%s", out)
	}
	out = as(reader, "service", "describe", "--cluster", cluster, "api").must(t).stdout
	for _, want := range []string{
		fmt.Sprintf("load balancer http://127.0.0.1:%d to app:8080", listener),
		"minimum healthy 50%, maximum 200%, circuit breaker on, with rollback, deadline 10m0s; health check grace period 30s",
		"DEPLOYMENT", "PRIMARY", "was created with " + family + ":1, desired count 0 by token ci",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("service describe lacks %q:\n%s", want, out)
		}
	}

	// A desired count of 2: the image was never approved, so each task is
	// refused before it starts, with the reason.
	out = as(deployer, "service", "update", "--cluster", cluster, "api", "--desired-count", "2").must(t).stdout
	if !strings.Contains(out, "desired 2") {
		t.Errorf("service update said:\n%s", out)
	}
	var stopped []deploy.Task
	for deadline := time.Now().Add(30 * time.Second); len(stopped) == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no refused task in 30 s")
		}
		r := as(reader, "--format", "json", "task", "list", "--cluster", cluster, "--service", "api", "--stopped").must(t)
		if err := json.Unmarshal([]byte(r.stdout), &stopped); err != nil {
			t.Fatalf("%v: %s", err, r.stdout)
		}
	}
	as(deployer, "service", "update", "--cluster", cluster, "api", "--desired-count", "0").must(t)
	out = as(reader, "task", "list", "--cluster", cluster, "--stopped").must(t).stdout
	if !servertest.HasLine(out, stopped[0].ID, "TaskFailedToStart", "admission refused") {
		t.Errorf("task list --stopped:\n%s", out)
	}
	out = as(reader, "task", "describe", stopped[0].ID).must(t).stdout
	if !strings.Contains(out, "stopped: TaskFailedToStart: CannotStartContainerError: admission refused") || !strings.Contains(out, "shop/api@sha256:") {
		t.Errorf("task describe:\n%s", out)
	}
	out = as(reader, "service", "describe", "--cluster", cluster, "api", "--events", "50").must(t).stdout
	if !strings.Contains(out, "was unable to start a task") || !strings.Contains(out, "desired count changed from 0 to 2 by token ci") {
		t.Errorf("service describe after the refusals:\n%s", out)
	}
	var services []deploy.Service
	if err := json.Unmarshal([]byte(as(reader, "--format", "json", "service", "list", "--cluster", cluster).must(t).stdout), &services); err != nil ||
		len(services) != 1 || services[0].DesiredCount != 0 {
		t.Errorf("service list --format json: %v %+v", err, services)
	}

	// Overrides are an admin's.
	expires := time.Now().AddDate(0, 0, 30).UTC().Format(time.DateOnly)
	override := []string{"service", "override", "--cluster", cluster, "api", "--digest", digest, "--reason", "no pipeline builds it yet", "--expires", expires}
	if r := as(deployer, override...); r.code != cli.ExitBadInput || !strings.Contains(r.stderr, "this needs the admin role; token ci is a deployer") {
		t.Errorf("override by a deployer: exit %d, %s", r.code, r.stderr)
	}
	out = as(admin, override...).must(t).stdout
	if !strings.Contains(out, digest+" may run in service api of cluster "+cluster+" until "+expires+"T00:00:00Z: no pipeline builds it yet") {
		t.Errorf("override said %q", out)
	}

	// Refusals, each with its exit code and a message that says what to do.
	noServer := fmt.Sprintf("http://127.0.0.1:%d", nettest.FreePort(t))
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"a reader creates", []string{"cluster", "create", "x", "--server", server, "--token-file", reader}, cli.ExitBadInput,
			[]string{"server " + server + ":", "this needs the deployer role; token viewer is a reader"}},
		{"no token", []string{"cluster", "list", "--server", server}, cli.ExitBadInput, []string{"no token for server " + server + ": run scangate login"}},
		{"an unknown token", []string{"cluster", "list", "--server", server, "--token-file", tempFile(t, "bad.token", "sgt_"+strings.Repeat("0", 64))}, cli.ExitBadInput,
			[]string{"server " + server + ": 401: the token (from --token-file"}},
		{"an empty token file", []string{"cluster", "list", "--server", server, "--token-file", tempFile(t, "empty.token", "\n")}, cli.ExitBadInput,
			[]string{"no token in it"}},
		{"no server", []string{"cluster", "list", "--server", noServer, "--token-file", reader}, cli.ExitInternal,
			[]string{"server " + noServer + " is unreachable", "connection refused"}},
		{"not a server URL", []string{"cluster", "list", "--server", "ftp://example.com", "--token-file", reader}, cli.ExitBadInput, []string{"--server"}},
		{"an unknown service", []string{"service", "describe", "--cluster", cluster, "nope", "--server", server, "--token-file", reader}, cli.ExitBadInput,
			[]string{"service nope in cluster " + cluster + ": not found"}},
		{"nothing to update", []string{"service", "update", "--cluster", cluster, "api", "--server", server, "--token-file", deployer}, cli.ExitBadInput,
			[]string{"nothing to change"}},
		{"no room to deploy", []string{"service", "create", "--cluster", cluster, "--name", "b", "--taskdef", family, "--server", server, "--token-file", deployer,
			"-f", tempFile(t, "tight.yaml", "deploymentConfiguration: {minimumHealthyPercent: 100, maximumPercent: 100}\n")}, cli.ExitBadInput,
			[]string{"leave no room to replace a task"}},
		{"an unknown config field", []string{"service", "create", "--cluster", cluster, "--name", "b", "--taskdef", family, "--server", server, "--token-file", deployer,
			"-f", tempFile(t, "typo.yaml", "loadbalancer: {listenerPort: 1}\n")}, cli.ExitBadInput, []string{"loadbalancer", "the fields are deploymentConfiguration"}},
		{"an absurd count", []string{"service", "update", "--cluster", cluster, "api", "--desired-count", "100000", "--server", server, "--token-file", deployer}, cli.ExitBadInput,
			[]string{"want 0 to 1000"}},
		{"a task definition past 64 KiB", []string{"taskdef", "register", "-f", tempFile(t, "big.yaml", "family: x\n#"+strings.Repeat("x", 65<<10)+"\n"),
			"--server", server, "--token-file", deployer}, cli.ExitBadInput, []string{"the most a task definition may have"}},
		{"not in the registry", []string{"taskdef", "register", "-f", tempFile(t, "hub.yaml", "family: x\ncontainerDefinitions: [{name: a, image: nginx:1.27}]\n"),
			"--server", server, "--token-file", deployer}, cli.ExitBadInput, []string{"is not in scangate's registry"}},
		{"a bad expiry", []string{"service", "override", "--cluster", cluster, "api", "--digest", digest, "--reason", "r", "--expires", "soon",
			"--server", server, "--token-file", admin}, cli.ExitBadInput, []string{"--expires", "is not a date"}},
		{"sarif", []string{"--format", "sarif", "cluster", "list", "--server", server, "--token-file", reader}, cli.ExitBadInput, []string{"table, wide, json or yaml"}},
	} {
		r := run(t, dir, tc.args...)
		for _, want := range tc.want {
			if r.code != tc.code || !strings.Contains(r.stderr, want) {
				t.Errorf("%s: exit %d, stderr %q; want exit %d saying %q", tc.name, r.code, r.stderr, tc.code, want)
			}
		}
	}

	// The token and the server from the environment.
	secret, err := os.ReadFile(deployer)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SCANGATE_TOKEN", strings.TrimSpace(string(secret)))
	t.Setenv("SCANGATE_SERVER", s.Addr)
	if out := run(t, dir, "service", "list").must(t).stdout; !servertest.HasLine(out, cluster, "api", family+":1") {
		t.Errorf("service list with SCANGATE_TOKEN and SCANGATE_SERVER:\n%s", out)
	}

	// Deletes: the service drains, then the cluster can go.
	if r := run(t, dir, "cluster", "delete", cluster); r.code != cli.ExitBadInput || !strings.Contains(r.stderr, "has 1 services: delete them first") {
		t.Errorf("cluster delete with a service: exit %d, %s", r.code, r.stderr)
	}
	if out := run(t, dir, "service", "delete", "--cluster", cluster, "api").must(t).stdout; !strings.Contains(out, "is draining") {
		t.Errorf("service delete said %q", out)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r := run(t, dir, "cluster", "delete", cluster)
		if r.code == 0 {
			if !strings.Contains(r.stdout, "cluster "+cluster+" deleted") {
				t.Errorf("cluster delete said %q", r.stdout)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster delete: still %d after 30 s: %s", r.code, r.stderr)
		}
	}
}
