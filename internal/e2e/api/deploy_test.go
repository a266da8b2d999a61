package api_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/nettest"
	"github.com/scangate/scangate/internal/servertest"
)

// want calls the API (checked against openapi.yaml, as every call is) and
// fails the test unless the answer has status; it returns the body.
func (c *client) want(status int, token, method, path string, body any) []byte {
	c.t.Helper()
	got, data := c.do(token, method, path, body)
	if got != status {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, got, data, status)
	}
	return data
}

// wantError checks a refusal: its status, and that its error says what.
func (c *client) wantError(status int, what, token, method, path string, body any) {
	c.t.Helper()
	got, data := c.do(token, method, path, body)
	c.checkError(got, data, status, what, method, path)
}

func (c *client) checkError(got int, data []byte, status int, what, method, path string) {
	c.t.Helper()
	var e struct{ Error string }
	_ = json.Unmarshal(data, &e)
	if got != status || !strings.Contains(e.Error, what) {
		c.t.Errorf("%s %s: %d %s; want %d with an error that says %q", method, path, got, data, status, what)
	}
}

// as is c reporting to t (a subtest's): a parent's Fatal must not be
// called from a subtest.
func (c *client) as(t *testing.T) *client {
	cc := *c
	cc.t = t
	return &cc
}

// token makes a token with role and returns its secret.
func (c *client) token(name, role string) string {
	c.t.Helper()
	var out struct{ Secret string }
	decodeJSON(c.t, c.want(http.StatusCreated, c.s.Token, "POST", "/api/v1/tokens", map[string]string{"name": name, "role": role}), &out)
	return out.Secret
}

func decodeJSON(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
}

// Every deploy route, called as its users will: each answer checked
// against openapi.yaml, each role held to what it may do, and bad input
// refused with a 4xx that says what is wrong. Services stay at desired
// count 0, or have their tasks refused by admission before the engine is
// asked, so that no container runs; the engine only gets the clusters'
// networks.
func TestDeployAPI(t *testing.T) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	web, priv := "web-"+id, "priv-"+id
	// The clusters' networks, should the test end before it deletes them;
	// registered first, this runs after the server has stopped.
	t.Cleanup(func() {
		for _, cl := range []string{web, priv} {
			_ = exec.Command("docker", "network", "rm", "scangate-"+cl).Run()
		}
	})
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	c := newClient(t, s)
	admin := s.Token
	reader := c.token("viewer", "reader")
	deployer := c.token("ci", "deployer")

	img := imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "etc/motd", Body: "deploy api test " + id}))
	digest := s.Push(t, "shop/api:1", img)
	pinned := s.Addr + "/shop/api@" + digest
	family := "api-" + id

	t.Run("clusters", func(t *testing.T) {
		c := c.as(t)
		if status, _ := c.do("", "GET", "/api/v1/clusters", nil); status != http.StatusUnauthorized {
			t.Errorf("no token: %d, want 401", status)
		}
		c.wantError(http.StatusForbidden, "this needs the deployer role; token viewer is a reader", reader, "POST", "/api/v1/clusters",
			map[string]any{"clusterName": web})
		var cl deploy.Cluster
		decodeJSON(t, c.want(http.StatusCreated, deployer, "POST", "/api/v1/clusters", map[string]any{"clusterName": web}), &cl)
		if cl.Name != web || cl.Runtime != "docker" || cl.HostIP != "127.0.0.1" || cl.AllowPrivileged {
			t.Errorf("created with the defaults: %+v", cl)
		}
		c.want(http.StatusCreated, deployer, "POST", "/api/v1/clusters", map[string]any{"clusterName": priv, "allowPrivileged": true, "hostIp": "127.0.0.1"})
		c.wantError(http.StatusConflict, "already exists", deployer, "POST", "/api/v1/clusters", map[string]any{"clusterName": web})
		c.wantError(http.StatusBadRequest, `unknown field "privileged"`, deployer, "POST", "/api/v1/clusters", map[string]any{"clusterName": "x", "privileged": true})
		c.wantError(http.StatusBadRequest, "use 1 to 255 letters", deployer, "POST", "/api/v1/clusters", map[string]any{"clusterName": "no spaces"})
		c.wantError(http.StatusBadRequest, "is not an IP address", deployer, "POST", "/api/v1/clusters", map[string]any{"clusterName": "x", "hostIp": "localhost"})
		c.wantError(http.StatusBadRequest, "this server runs docker", deployer, "POST", "/api/v1/clusters", map[string]any{"clusterName": "x", "runtime": "kubernetes"})
		var list struct{ Clusters []deploy.Cluster }
		decodeJSON(t, c.want(http.StatusOK, reader, "GET", "/api/v1/clusters", nil), &list)
		if len(list.Clusters) != 2 {
			t.Errorf("clusters: %+v", list.Clusters)
		}
		c.wantError(http.StatusNotFound, "not found", deployer, "DELETE", "/api/v1/clusters/nope-"+id, nil)
	})

	type registered struct {
		TaskDefinition deploy.TaskDefinition
		Ignored        []string
	}

	t.Run("task definitions", func(t *testing.T) {
		c := c.as(t)
		// YAML, with a tag of scangate's registry: the revision keeps
		// the digest the tag names now.
		doc := fmt.Sprintf(`family: %s
containerDefinitions:
  - name: app
    image: %s/shop/api:1
    portMappings: [{containerPort: 8080}]
    memory: 64
`, family, s.Addr)
		status, body := c.doRaw(reader, "POST", "/api/v1/task-definitions", "application/yaml", []byte(doc))
		c.checkError(status, body, http.StatusForbidden, "needs the deployer role", "POST", "/api/v1/task-definitions")
		status, body = c.doRaw(deployer, "POST", "/api/v1/task-definitions", "application/yaml", []byte(doc))
		if status != http.StatusCreated {
			t.Fatalf("register YAML: %d %s", status, body)
		}
		var r registered
		decodeJSON(t, body, &r)
		ct := r.TaskDefinition.Definition.ContainerDefinitions[0]
		if r.TaskDefinition.Ref() != family+":1" || ct.Image != pinned || !ct.IsEssential() || ct.PortMappings[0].Protocol != "tcp" ||
			len(r.Ignored) != 0 || r.TaskDefinition.RegisteredBy != "token ci" {
			t.Errorf("registered %+v, container %+v, ignored %q; want %s:1 running %s", r.TaskDefinition, ct, r.Ignored, family, pinned)
		}

		// ECS's describe-task-definition output, wrapper and all: what
		// scangate does not use is listed, each with why.
		described := fmt.Sprintf(`{"taskDefinition": {
			"taskDefinitionArn": "arn:aws:ecs:us-east-1:012345678910:task-definition/%[1]s:8",
			"family": %[1]q, "revision": 8, "status": "ACTIVE",
			"executionRoleArn": "arn:aws:iam::012345678910:role/ecsTaskExecutionRole",
			"networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
			"containerDefinitions": [{"name": "app", "image": %[2]q, "essential": true, "environment": [], "mountPoints": [], "volumesFrom": [],
				"portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
				"logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/app"}}}],
			"compatibilities": ["EC2", "FARGATE"], "registeredAt": "2024-06-21T11:15:12.669000-05:00",
			"registeredBy": "arn:aws:sts::012345678910:assumed-role/demo-role/jane-doe"}, "tags": []}`, family, pinned)
		body = c.want(http.StatusCreated, deployer, "POST", "/api/v1/task-definitions", json.RawMessage(described))
		r = registered{}
		decodeJSON(t, body, &r)
		if r.TaskDefinition.Ref() != family+":2" {
			t.Errorf("the described definition registered as %s, want %s:2 (scangate numbers revisions)", r.TaskDefinition.Ref(), family)
		}
		for _, want := range []string{"taskDefinition.taskDefinitionArn: ignored", "taskDefinition.executionRoleArn: ignored (no IAM in scangate)",
			"taskDefinition.containerDefinitions[0].logConfiguration: ignored", "taskDefinition.cpu: ignored"} {
			if !slices.ContainsFunc(r.Ignored, func(s string) bool { return strings.HasPrefix(s, want) }) {
				t.Errorf("ignored lacks %q: %q", want, r.Ignored)
			}
		}

		// Bad documents, each refused with what to change.
		for _, tc := range []struct {
			name, doc string
			status    int
			want      string
		}{
			{"unknown field", `{"family": "x", "containerDefinition": []}`, http.StatusBadRequest, `containerDefinition`},
			{"not in the registry", `{"family": "x", "containerDefinitions": [{"name": "a", "image": "docker.io/library/nginx:1.27"}]}`,
				http.StatusBadRequest, "is not in scangate's registry"},
			{"a tag the registry does not have", fmt.Sprintf(`{"family": "x", "containerDefinitions": [{"name": "a", "image": "%s/shop/api:nope"}]}`, s.Addr),
				http.StatusBadRequest, "shop/api:nope"},
			{"unsupported", fmt.Sprintf(`{"family": "x", "containerDefinitions": [{"name": "a", "image": %q, "user": "nobody"}]}`, pinned),
				http.StatusBadRequest, "user"},
			{"over 64 KiB", fmt.Sprintf(`{"family": "x", "containerDefinitions": [{"name": "a", "image": %q, "environment": [{"name": "PAD", "value": %q}]}]}`,
				pinned, strings.Repeat("x", 65<<10)), http.StatusRequestEntityTooLarge, "at most 65536 bytes"},
			{"YAML that is not a definition", "- just\n- a list\n", http.StatusBadRequest, "want an object"},
		} {
			ct := "application/json"
			if !strings.HasPrefix(tc.doc, "{") {
				ct = "application/yaml"
			}
			status, body := c.doRaw(deployer, "POST", "/api/v1/task-definitions", ct, []byte(tc.doc))
			c.checkError(status, body, tc.status, tc.want, "POST", "/api/v1/task-definitions ("+tc.name+")")
		}

		// A privileged container registers; the cluster judges it (below).
		privileged := fmt.Sprintf("family: priv-%s\ncontainerDefinitions:\n  - {name: app, image: %q, privileged: true}\n", id, pinned)
		if status, body := c.doRaw(deployer, "POST", "/api/v1/task-definitions", "application/yaml", []byte(privileged)); status != http.StatusCreated {
			t.Fatalf("register a privileged definition: %d %s", status, body)
		}
		// A third revision, to deregister.
		c.want(http.StatusCreated, deployer, "POST", "/api/v1/task-definitions", json.RawMessage(described))

		var list struct{ TaskDefinitions []deploy.TaskDefinition }
		decodeJSON(t, c.want(http.StatusOK, reader, "GET", "/api/v1/task-definitions?family="+family, nil), &list)
		if len(list.TaskDefinitions) != 3 || list.TaskDefinitions[0].Revision != 3 {
			t.Errorf("list of %s: %+v", family, list.TaskDefinitions)
		}
		c.wantError(http.StatusForbidden, "needs the deployer role", reader, "DELETE", "/api/v1/task-definitions/"+family+":3", nil)
		var td deploy.TaskDefinition
		decodeJSON(t, c.want(http.StatusOK, deployer, "DELETE", "/api/v1/task-definitions/"+family+":3", nil), &td)
		if td.Status != deploy.StatusInactive || td.DeregisteredAt == nil {
			t.Errorf("deregistered: %+v", td)
		}
		decodeJSON(t, c.want(http.StatusOK, reader, "GET", "/api/v1/task-definitions/"+family+":3", nil), &td)
		if td.Status != deploy.StatusInactive {
			t.Errorf("read after its deregistration: %+v", td)
		}
		decodeJSON(t, c.want(http.StatusOK, reader, "GET", "/api/v1/task-definitions/"+family, nil), &td)
		if td.Revision != 2 {
			t.Errorf("%s alone is revision %d, want 2 (the latest ACTIVE one)", family, td.Revision)
		}
		c.wantError(http.StatusNotFound, "not found", reader, "GET", "/api/v1/task-definitions/"+family+":9", nil)
		c.wantError(http.StatusNotFound, "no ACTIVE revision", reader, "GET", "/api/v1/task-definitions/nope-"+id, nil)
		c.wantError(http.StatusBadRequest, "want FAMILY:REVISION", reader, "GET", "/api/v1/task-definitions/"+family+":x", nil)
		c.wantError(http.StatusBadRequest, "name the revision", deployer, "DELETE", "/api/v1/task-definitions/"+family, nil)
		c.wantError(http.StatusNotFound, "not found", deployer, "DELETE", "/api/v1/task-definitions/"+family+":9", nil)
	})
	if t.Failed() {
		t.FailNow()
	}

	listener := nettest.FreePort(t)
	svcPath := "/api/v1/clusters/" + web + "/services/"
	t.Run("services", func(t *testing.T) {
		c := c.as(t)
		config := map[string]any{
			"deploymentConfiguration": map[string]any{"minimumHealthyPercent": 50, "maximumPercent": 200, "deadline": "10m",
				"deploymentCircuitBreaker": map[string]any{"enable": true, "rollback": true}},
			"healthCheckGracePeriod": "30s",
			"loadBalancer":           map[string]any{"listenerPort": listener, "containerName": "app", "containerPort": 8080, "deregistrationDelay": "5s"},
		}
		in := map[string]any{"clusterName": web, "serviceName": "api", "taskDefinition": family + ":1", "desiredCount": 0, "config": config}
		c.wantError(http.StatusForbidden, "needs the deployer role", reader, "POST", "/api/v1/services", in)
		var svc deploy.Service
		decodeJSON(t, c.want(http.StatusCreated, deployer, "POST", "/api/v1/services", in), &svc)
		if svc.TaskDefinition != family+":1" || svc.DesiredCount != 0 || len(svc.Deployments) != 1 || svc.Deployments[0].Status != deploy.StatusPrimary ||
			svc.LoadBalancerAddr != fmt.Sprintf("127.0.0.1:%d", listener) || time.Duration(svc.Config.HealthCheckGracePeriod) != 30*time.Second {
			t.Errorf("created: %+v", svc)
		}
		c.wantError(http.StatusConflict, "already exists", deployer, "POST", "/api/v1/services", in)

		with := func(changes map[string]any) map[string]any {
			out := map[string]any{"clusterName": web, "serviceName": "other", "taskDefinition": family + ":1", "desiredCount": 0}
			for k, v := range changes {
				out[k] = v
			}
			return out
		}
		for _, tc := range []struct {
			name   string
			in     map[string]any
			status int
			want   string
		}{
			{"unknown field", with(map[string]any{"desired": 1}), http.StatusBadRequest, `unknown field "desired"`},
			{"negative count", with(map[string]any{"desiredCount": -1}), http.StatusBadRequest, "want 0 to 1000"},
			{"absurd count", with(map[string]any{"desiredCount": 1000000}), http.StatusBadRequest, "want 0 to 1000"},
			{"count past int", with(map[string]any{"desiredCount": 1e30}), http.StatusBadRequest, "desiredCount"},
			{"no room to deploy", with(map[string]any{"config": map[string]any{"deploymentConfiguration": map[string]any{"minimumHealthyPercent": 100, "maximumPercent": 100}}}),
				http.StatusBadRequest, "leave no room to replace a task"},
			{"maximum below 100", with(map[string]any{"config": map[string]any{"deploymentConfiguration": map[string]any{"maximumPercent": 50}}}),
				http.StatusBadRequest, "maximumPercent 50"},
			{"a bad duration", with(map[string]any{"config": map[string]any{"healthCheckGracePeriod": "soon"}}), http.StatusBadRequest, "want 90s, 2h or 7d"},
			{"listener port taken", with(map[string]any{"config": map[string]any{"loadBalancer": config["loadBalancer"]}}),
				http.StatusBadRequest, fmt.Sprintf("listener port %d is service api's", listener)},
			{"listener on no mapped port", with(map[string]any{"config": map[string]any{"loadBalancer": map[string]any{"listenerPort": listener + 1, "containerName": "app", "containerPort": 9}}}),
				http.StatusBadRequest, "has no container app with port 9 mapped"},
			{"privileged, not allowed", with(map[string]any{"taskDefinition": "priv-" + id}), http.StatusBadRequest, "privileged containers are refused"},
			{"an image the gate never approved", with(map[string]any{"desiredCount": 1}), http.StatusForbidden, "admission refused"},
			{"an unknown cluster", with(map[string]any{"clusterName": "nope-" + id}), http.StatusNotFound, "not found"},
			{"an unknown family", with(map[string]any{"taskDefinition": "nope-" + id}), http.StatusNotFound, "not found"},
			{"an INACTIVE revision", with(map[string]any{"taskDefinition": family + ":3"}), http.StatusBadRequest, "is INACTIVE"},
			{"a bad name", with(map[string]any{"serviceName": "a/b"}), http.StatusBadRequest, "service name"},
		} {
			status, body := c.do(deployer, "POST", "/api/v1/services", tc.in)
			c.checkError(status, body, tc.status, tc.want, "POST", "/api/v1/services ("+tc.name+")")
		}
		// A cluster that allows privileged containers takes the revision.
		c.want(http.StatusCreated, deployer, "POST", "/api/v1/services",
			map[string]any{"clusterName": priv, "serviceName": "tools", "taskDefinition": "priv-" + id, "desiredCount": 0})

		decodeJSON(t, c.want(http.StatusOK, reader, "GET", svcPath+"api", nil), &svc)
		if len(svc.Events) == 0 || !strings.Contains(svc.Events[len(svc.Events)-1].Message, "was created with "+family+":1, desired count 0 by token ci") {
			t.Errorf("events: %+v", svc.Events)
		}
		var list struct{ Services []deploy.Service }
		decodeJSON(t, c.want(http.StatusOK, reader, "GET", "/api/v1/services?cluster="+web, nil), &list)
		if len(list.Services) != 1 || list.Services[0].Name != "api" {
			t.Errorf("services of %s: %+v", web, list.Services)
		}
		c.wantError(http.StatusNotFound, "not found", reader, "GET", svcPath+"nope", nil)
		c.wantError(http.StatusNotFound, "not found", reader, "GET", "/api/v1/clusters/nope-"+id+"/services/api", nil)

		// Updates.
		first := svc.Deployments[0].ID
		c.wantError(http.StatusForbidden, "needs the deployer role", reader, "PATCH", svcPath+"api", map[string]any{"forceNewDeployment": true})
		decodeJSON(t, c.want(http.StatusOK, deployer, "PATCH", svcPath+"api", map[string]any{"forceNewDeployment": true, "taskDefinition": family + ":2"}), &svc)
		if svc.TaskDefinition != family+":2" || svc.Deployments[0].ID == first || svc.Deployments[0].TaskDefinition != family+":2" {
			t.Errorf("after the update: %+v", svc)
		}
		var dep deploy.Deployment
		decodeJSON(t, c.want(http.StatusOK, reader, "GET", "/api/v1/deployments/"+svc.Deployments[0].ID, nil), &dep)
		if dep.ID != svc.Deployments[0].ID || dep.TaskDefinition != family+":2" {
			t.Errorf("deployment: %+v", dep)
		}
		c.wantError(http.StatusNotFound, "not found", reader, "GET", "/api/v1/deployments/ecs-svc-nope", nil)
		for _, tc := range []struct {
			name   string
			in     map[string]any
			status int
			want   string
		}{
			{"unknown field", map[string]any{"desired": 2}, http.StatusBadRequest, `unknown field "desired"`},
			{"absurd count", map[string]any{"desiredCount": 5000}, http.StatusBadRequest, "want 0 to 1000"},
			{"no room to deploy", map[string]any{"config": map[string]any{"deploymentConfiguration": map[string]any{"minimumHealthyPercent": 100, "maximumPercent": 100}}},
				http.StatusBadRequest, "leave no room"},
			{"an INACTIVE revision", map[string]any{"taskDefinition": family + ":3"}, http.StatusBadRequest, "is INACTIVE"},
			{"a bad revision", map[string]any{"taskDefinition": family + ":0"}, http.StatusBadRequest, "want FAMILY:REVISION"},
			{"a privileged revision", map[string]any{"taskDefinition": "priv-" + id + ":1"}, http.StatusBadRequest, "privileged containers are refused"},
		} {
			status, body := c.do(deployer, "PATCH", svcPath+"api", tc.in)
			c.checkError(status, body, tc.status, tc.want, "PATCH", svcPath+"api ("+tc.name+")")
		}
		c.wantError(http.StatusNotFound, "not found", deployer, "PATCH", svcPath+"nope", map[string]any{"desiredCount": 1})
	})

	t.Run("overrides", func(t *testing.T) {
		c := c.as(t)
		path := svcPath + "api/overrides"
		expires := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
		in := map[string]any{"imageDigest": digest, "reason": "no pipeline builds this image yet", "expiresAt": expires}
		c.wantError(http.StatusForbidden, "this needs the admin role; token ci is a deployer", deployer, "POST", path, in)
		var o deploy.Override
		decodeJSON(t, c.want(http.StatusCreated, admin, "POST", path, in), &o)
		if o.Digest != digest || o.CreatedBy != "token test-admin" || !o.ExpiresAt.Equal(expires) {
			t.Errorf("override: %+v", o)
		}
		for _, tc := range []struct {
			name string
			in   map[string]any
			want string
		}{
			{"no reason", map[string]any{"imageDigest": digest, "reason": " ", "expiresAt": expires}, "needs a reason"},
			{"no expiry", map[string]any{"imageDigest": digest, "reason": "r"}, "needs an expiry"},
			{"past", map[string]any{"imageDigest": digest, "reason": "r", "expiresAt": time.Now().Add(-time.Hour)}, "needs an expiry"},
			{"a year", map[string]any{"imageDigest": digest, "reason": "r", "expiresAt": time.Now().Add(365 * 24 * time.Hour)}, "in the next 90 days"},
			{"a short digest", map[string]any{"imageDigest": "sha256:abc", "reason": "r", "expiresAt": expires}, "want sha256:<64 hex>"},
			{"unknown field", map[string]any{"digest": digest, "reason": "r", "expiresAt": expires}, `unknown field "digest"`},
		} {
			status, body := c.do(admin, "POST", path, tc.in)
			c.checkError(status, body, http.StatusBadRequest, tc.want, "POST", path+" ("+tc.name+")")
		}
		c.wantError(http.StatusNotFound, "not found", admin, "POST", svcPath+"nope/overrides", in)
		var list struct{ Overrides []deploy.Override }
		decodeJSON(t, c.want(http.StatusOK, reader, "GET", path, nil), &list)
		if len(list.Overrides) != 1 || list.Overrides[0].Reason != in["reason"] {
			t.Errorf("overrides: %+v", list.Overrides)
		}
		c.wantError(http.StatusNotFound, "not found", reader, "GET", svcPath+"nope/overrides", nil)
	})

	t.Run("tasks", func(t *testing.T) {
		c := c.as(t)
		// A service set to 1 on an image no gate approved: each task it
		// makes is refused by admission, recorded STOPPED with the reason,
		// before the engine is asked for anything.
		c.want(http.StatusCreated, deployer, "POST", "/api/v1/services", map[string]any{"clusterName": web, "serviceName": "gated", "taskDefinition": family + ":1"})
		c.want(http.StatusOK, deployer, "PATCH", svcPath+"gated", map[string]any{"desiredCount": 1})
		var list struct{ Tasks []deploy.Task }
		for deadline := time.Now().Add(30 * time.Second); len(list.Tasks) == 0; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no refused task within 30 s")
			}
			decodeJSON(t, c.want(http.StatusOK, reader, "GET", "/api/v1/tasks?cluster="+web+"&service=gated&status=STOPPED", nil), &list)
		}
		c.want(http.StatusOK, deployer, "PATCH", svcPath+"gated", map[string]any{"desiredCount": 0})
		task := list.Tasks[0]
		if task.StopCode != deploy.StopTaskFailedToStart || !strings.Contains(task.StoppedReason, "admission refused") || task.Containers[0].Name != "app" {
			t.Errorf("refused task: %+v", task)
		}
		decodeJSON(t, c.want(http.StatusOK, reader, "GET", "/api/v1/tasks?cluster="+web, nil), &list)
		for _, tk := range list.Tasks {
			if tk.LastStatus == deploy.TaskStopped {
				t.Errorf("RUNNING lists a stopped task: %+v", tk)
			}
		}
		c.wantError(http.StatusBadRequest, "want RUNNING or STOPPED", reader, "GET", "/api/v1/tasks?status=BOGUS", nil)
		var got deploy.Task
		decodeJSON(t, c.want(http.StatusOK, reader, "GET", "/api/v1/tasks/"+task.ID, nil), &got)
		if got.ID != task.ID {
			t.Errorf("task: %+v", got)
		}
		c.wantError(http.StatusNotFound, "not found", reader, "GET", "/api/v1/tasks/nope", nil)

		logs := "/api/v1/tasks/" + task.ID + "/logs"
		c.want(http.StatusOK, reader, "GET", logs+"?tail=10", nil)
		c.wantError(http.StatusBadRequest, "tail", reader, "GET", logs+"?tail=lots", nil)
		c.wantError(http.StatusBadRequest, "follow", reader, "GET", logs+"?follow=maybe", nil)
		c.wantError(http.StatusNotFound, `has no container "db"; its containers: app`, reader, "GET", logs+"?container=db", nil)
		c.wantError(http.StatusNotFound, "not found", reader, "GET", "/api/v1/tasks/nope/logs", nil)

		stop := "/api/v1/tasks/" + task.ID + "/stop"
		c.wantError(http.StatusForbidden, "needs the deployer role", reader, "POST", stop, map[string]string{"reason": "r"})
		c.wantError(http.StatusBadRequest, `unknown field "why"`, deployer, "POST", stop, map[string]string{"why": "r"})
		// A task that has stopped stays as it stopped.
		decodeJSON(t, c.want(http.StatusOK, deployer, "POST", stop, map[string]string{"reason": "r"}), &got)
		if got.LastStatus != deploy.TaskStopped || got.StopCode != deploy.StopTaskFailedToStart {
			t.Errorf("stopped again: %+v", got)
		}
		if status, body := c.doRaw(deployer, "POST", stop, "", nil); status != http.StatusOK {
			t.Errorf("stop without a body: %d %s", status, body)
		}
		c.wantError(http.StatusNotFound, "not found", deployer, "POST", "/api/v1/tasks/nope/stop", nil)
	})

	t.Run("deletes", func(t *testing.T) {
		c := c.as(t)
		c.wantError(http.StatusBadRequest, "delete them first", deployer, "DELETE", "/api/v1/clusters/"+web, nil)
		c.wantError(http.StatusForbidden, "needs the deployer role", reader, "DELETE", svcPath+"api", nil)
		c.wantError(http.StatusNotFound, "not found", deployer, "DELETE", svcPath+"nope", nil)
		for _, svc := range [][2]string{{web, "api"}, {web, "gated"}, {priv, "tools"}} {
			c.want(http.StatusAccepted, deployer, "DELETE", "/api/v1/clusters/"+svc[0]+"/services/"+svc[1], nil)
		}
		// DRAINING until the controller forgets it.
		if status, body := c.do(reader, "GET", svcPath+"api", nil); status == http.StatusOK {
			var svc deploy.Service
			decodeJSON(t, body, &svc)
			if svc.Status != deploy.StatusDraining || svc.DesiredCount != 0 {
				t.Errorf("a deleted service: %+v, want DRAINING at 0", svc)
			}
		} else if status != http.StatusNotFound {
			t.Errorf("a deleted service: %d %s", status, body)
		}
		// Drained services are forgotten; then their clusters can go.
		for _, cl := range []string{web, priv} {
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				status, _ := c.do(deployer, "DELETE", "/api/v1/clusters/"+cl, nil)
				if status == http.StatusNoContent {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("cluster %s: still not deleted after 30 s (%d)", cl, status)
				}
			}
		}
		var list struct{ Clusters []deploy.Cluster }
		decodeJSON(t, c.want(http.StatusOK, reader, "GET", "/api/v1/clusters", nil), &list)
		if len(list.Clusters) != 0 {
			t.Errorf("clusters left: %+v", list.Clusters)
		}
	})

	// The deploy events in the log, checked against the document's event
	// types.
	c.want(http.StatusOK, reader, "GET", "/api/v1/events?limit=1000", nil)
}
