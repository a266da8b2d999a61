package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrname "github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/servertest"
)

// The seed's ending: a service made at desired count 0 and set to 1; a
// rejected commit never runs; the approved commit is deployed as the next
// revision of the service's task definition, whose container names the
// approved digest, and its task runs and answers on its port.
func TestSeedEnding(t *testing.T) {
	t.Parallel()
	h := newHarness(t, servertest.Options{Feeds: []string{"debian", "ghsa", "nvd"}})
	vulnerable := h.appBase("vulnerable", imagetest.ReadFixture(t, "debian", "dpkg-status"))
	fixed := h.appBase("fixed", "")
	name := "shop-" + h.id
	cluster := h.cluster("default")

	// The service exists before any image is approved, at desired count 0,
	// on a placeholder image as the seed's template makes it.
	placeholder := h.pushApp("shop/placeholder-" + h.id)
	first := h.taskDef(name, placeholder, map[string]string{"MESSAGE": "placeholder"}, "")
	h.api("POST", "/api/v1/services", map[string]any{"clusterName": cluster, "serviceName": name, "taskDefinition": first, "desiredCount": 0},
		http.StatusCreated)
	h.api("PATCH", "/api/v1/clusters/"+cluster+"/services/"+name, map[string]any{"desiredCount": 1}, http.StatusOK)

	dir := h.repo(name, fmt.Sprintf(`name: %s
source: {repository: %s, branch: main}
build: {repository: shop/%s}
approval:
  policy:
    thresholds: {CRITICAL: 0, HIGH: 0}
deploy: {cluster: %s, service: %s, container: app, timeout: 3m}
`, name, name, name, cluster, name))

	rejected := h.commit(dir, "first", map[string]string{"Dockerfile": "FROM " + vulnerable + "\nENV MESSAGE=v1\n"})
	ex := h.waitExecution(name, rejected, 2*time.Minute)
	if ex.Status != pipeline.StateFailed || ex.Approval == nil || ex.Approval.Status != pipeline.StateRejected || stageOf(ex, "Deploy").Status != pipeline.StateSkipped {
		t.Fatalf("first commit: %s (%s), approval %+v; want Failed, Rejected, Deploy Skipped", ex.Status, ex.Reason, ex.Approval)
	}
	// The placeholder was never approved: the service could start no task.
	s := h.service(cluster, name)
	if s.RunningCount != 0 || !hasEvent(s, "was unable to start a task") {
		t.Errorf("before the approval: %s", describeService(s))
	}

	approved := h.commit(dir, "use the fixed base", map[string]string{"Dockerfile": "FROM " + fixed + "\nENV MESSAGE=v2\n"})
	ex = h.waitExecution(name, approved, 3*time.Minute)
	deployStage := stageOf(ex, "Deploy")
	if ex.Status != pipeline.StateSucceeded || ex.Approval.Status != pipeline.StateApproved || deployStage.Status != pipeline.StateSucceeded {
		t.Fatalf("second commit: %s (%s), approval %s, deploy %s %q", ex.Status, ex.Reason, ex.Approval.Status, deployStage.Status, deployStage.Message)
	}
	s = h.waitService(cluster, name, "steady", time.Minute, steady)
	want := name + ":2"
	if s.TaskDefinition != want || !strings.Contains(deployStage.Message, want) {
		t.Errorf("service runs %s, deploy stage says %q; want %s", s.TaskDefinition, deployStage.Message, want)
	}
	var td deploy.TaskDefinition
	h.decode(h.api("GET", "/api/v1/task-definitions/"+want, nil, http.StatusOK), &td)
	c := td.Definition.ContainerDefinitions[0]
	if c.Image != ex.ImageURI || !strings.HasSuffix(c.Image, "@"+ex.ImageDigest) {
		t.Errorf("revision 2 runs %s; the approved image is %s", c.Image, ex.ImageURI)
	}
	if len(c.Environment) != 1 || c.Environment[0].Value != "placeholder" || len(c.EntryPoint) != 1 {
		t.Errorf("revision 2 did not keep the other fields of revision 1: %+v", c)
	}
	tasks := h.tasks(cluster, name, "RUNNING")
	if len(tasks) != 1 || tasks[0].LastStatus != deploy.TaskRunning || tasks[0].TaskDefinition != want {
		t.Fatalf("tasks: %+v", tasks)
	}
	// Which running tasks use the image: the images list says.
	var imgs struct {
		Images []struct {
			Digest       string
			RunningTasks int
			Services     []string
		}
	}
	h.decode(h.api("GET", "/api/v1/images?repository=shop/"+name, nil, http.StatusOK), &imgs)
	for _, im := range imgs.Images {
		if im.Digest == ex.ImageDigest && (im.RunningTasks != 1 || len(im.Services) != 1 || im.Services[0] != cluster+"/"+name) {
			t.Errorf("images list: the approved image runs in %d tasks of %v", im.RunningTasks, im.Services)
		}
	}
	// And the image's findings, as the CLI shows them.
	if out := h.must(h.file("admin.token", h.s.Token), "findings", "shop/"+name+"@"+ex.ImageDigest); !strings.Contains(out, "In use by 1 running tasks of "+cluster+"/"+name+".") {
		t.Errorf("findings:\n%s", out)
	}
	// Prometheus sees the service and the deployment.
	metrics, err := getAs("http://"+h.s.Addr+"/metrics", h.s.Token)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf(`scangate_service_desired_tasks{cluster="%s",service="%s"} 1`, cluster, name),
		fmt.Sprintf(`scangate_service_running_tasks{cluster="%s",service="%s"} 1`, cluster, name),
		`scangate_deployments_total{outcome="COMPLETED"}`,
		`scangate_admission_refusals_total`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The task's environment comes from the task definition, which kept
	// the placeholder's MESSAGE: the image's own ENV is overridden.
	if body, err := get(taskURL(tasks[0])); err != nil || !strings.Contains(body, "placeholder") {
		t.Errorf("the task at %s answered %q, %v", taskURL(tasks[0]), body, err)
	}
}

func hasEvent(s *deploy.Service, text string) bool {
	for _, e := range s.Events {
		if strings.Contains(e.Message, text) {
			return true
		}
	}
	return false
}

// A rejected image is refused at every door: a task definition naming it
// registers (it is only a document), but no service may run it, whoever
// asks, until an admin's override with a reason and an expiry.
func TestAdmission(t *testing.T) {
	t.Parallel()
	h := newHarness(t, servertest.Options{Feeds: []string{"debian", "ghsa", "nvd"}, Config: server.Config{DenyRejectedPulls: []string{"shop/*"}}})
	vulnerable := h.appBase("vulnerable", imagetest.ReadFixture(t, "debian", "dpkg-status"))
	name := "adm-" + h.id
	dir := h.repo(name, fmt.Sprintf("name: %s\nsource: {repository: %s, branch: main}\nbuild: {repository: shop/%s}\n"+
		"approval:\n  policy:\n    thresholds: {CRITICAL: 0}\n", name, name, name))
	commit := h.commit(dir, "vulnerable", map[string]string{"Dockerfile": "FROM " + vulnerable + "\n"})
	ex := h.waitExecution(name, commit, 2*time.Minute)
	if ex.Approval == nil || ex.Approval.Status != pipeline.StateRejected {
		t.Fatalf("the vulnerable image: %+v", ex.Approval)
	}
	// The registry: with --deny-rejected-pulls, only admins pull it.
	var reader struct{ Secret string }
	h.decode(h.api("POST", "/api/v1/tokens", map[string]string{"name": "reader-" + h.id, "role": "reader"}, http.StatusCreated), &reader)
	ref, err := ggcrname.ParseReference(ex.ImageURI, ggcrname.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Get(ref, remote.WithAuth(&authn.Basic{Username: "r", Password: reader.Secret}))
	if err == nil || !strings.Contains(err.Error(), "DENIED") || !strings.Contains(err.Error(), "was Rejected by the gate (Rejected: CRITICAL") {
		t.Errorf("a reader pulled the rejected image: %v", err)
	}
	if _, err := remote.Get(ref, remote.WithAuth(h.s.Auth())); err != nil {
		t.Errorf("an admin could not pull the rejected image: %v", err)
	}
	cluster := h.cluster("adm")
	ok := h.pushApp("shop/ok-" + h.id)
	// An image the gate did not reject is pulled as before.
	okRef, err := ggcrname.ParseReference(ok, ggcrname.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Get(okRef, remote.WithAuth(&authn.Basic{Username: "r", Password: reader.Secret})); err != nil {
		t.Errorf("a reader could not pull an image the gate did not reject: %v", err)
	}
	good := h.taskDef(name, ok, nil, "")
	h.api("POST", "/api/v1/services", map[string]any{"clusterName": cluster, "serviceName": name, "taskDefinition": good, "desiredCount": 0},
		http.StatusCreated)
	bad := h.taskDef(name, ex.ImageURI, nil, "")

	// The API: a new revision naming the rejected digest is refused with
	// the gate's reasons.
	status, body := h.s.API(t, "PATCH", "/api/v1/clusters/"+cluster+"/services/"+name, map[string]any{"taskDefinition": bad, "desiredCount": 1})
	if status != http.StatusForbidden || !strings.Contains(string(body), ex.ImageDigest+" was Rejected: CRITICAL") {
		t.Fatalf("update to a rejected image: %d %s", status, body)
	}
	status, body = h.s.API(t, "POST", "/api/v1/services", map[string]any{"clusterName": cluster, "serviceName": name + "-2", "taskDefinition": bad, "desiredCount": 1})
	if status != http.StatusForbidden || !strings.Contains(string(body), "was Rejected") {
		t.Fatalf("create with a rejected image: %d %s", status, body)
	}
	// An image that was scanned but never approved is refused too.
	status, body = h.s.API(t, "PATCH", "/api/v1/clusters/"+cluster+"/services/"+name, map[string]any{"desiredCount": 1})
	if status != http.StatusOK {
		t.Fatalf("desired count 1: %d %s", status, body)
	}
	s := h.waitService(cluster, name, "refusing the unapproved image", time.Minute, func(s *deploy.Service) bool {
		return hasEvent(s, "was never approved")
	})
	if s.RunningCount != 0 {
		t.Fatalf("an unapproved image runs: %s", describeService(s))
	}
	stopped := h.tasks(cluster, name, "STOPPED")
	if len(stopped) == 0 || stopped[0].StopCode != deploy.StopTaskFailedToStart || !strings.Contains(stopped[0].StoppedReason, "admission refused") {
		t.Fatalf("stopped tasks: %+v", stopped)
	}

	// Overrides are an admin's, with a reason and an expiry.
	_, digest, _ := strings.Cut(ok, "@")
	override := map[string]any{"imageDigest": digest, "reason": "", "expiresAt": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	if status, body := h.s.API(t, "POST", "/api/v1/clusters/"+cluster+"/services/"+name+"/overrides", override); status != http.StatusBadRequest {
		t.Fatalf("override without a reason: %d %s", status, body)
	}
	h.override(cluster, name, ok)
	s = h.waitService(cluster, name, "running the overridden image", time.Minute, func(s *deploy.Service) bool { return s.RunningCount == 1 })
	if !hasEvent(s, "admission override for "+digest) {
		t.Errorf("no event of the override: %s", describeService(s))
	}
}

// The circuit breaker: a revision whose task exits at once, and one whose
// task never turns healthy, fail their deployments with the reason, and the
// service rolls back to the revision that ran before.
func TestCircuitBreaker(t *testing.T) {
	t.Parallel()
	h := newHarness(t, servertest.Options{Feeds: []string{}})
	cluster := h.cluster("cb")
	image := h.pushApp("shop/cb-" + h.id)
	name := "cb-" + h.id
	v1 := h.taskDef(name, image, map[string]string{"MESSAGE": "v1"}, "")
	h.api("POST", "/api/v1/services", map[string]any{"clusterName": cluster, "serviceName": name, "taskDefinition": v1, "desiredCount": 0,
		"config": map[string]any{"deploymentConfiguration": map[string]any{"deploymentCircuitBreaker": map[string]any{"enable": true, "rollback": true}}}},
		http.StatusCreated)
	h.override(cluster, name, image)
	h.api("PATCH", "/api/v1/clusters/"+cluster+"/services/"+name, map[string]any{"desiredCount": 1}, http.StatusOK)
	h.waitService(cluster, name, "steady on v1", time.Minute, steady)

	for _, c := range []struct {
		name, extra, reason string
		env                 map[string]string
	}{
		{"exits", "", "exited with code 3", map[string]string{"EXIT_AFTER": "0s", "EXIT_CODE": "3"}},
		{"unhealthy", `, "healthCheck": {"command": ["CMD", "/app", "probe", "http://127.0.0.1:8080/health"], "interval": 5, "timeout": 2, "retries": 1}`,
			"failed container health checks", map[string]string{"UNHEALTHY": "1"}},
	} {
		bad := h.taskDef(name, image, c.env, c.extra)
		h.api("PATCH", "/api/v1/clusters/"+cluster+"/services/"+name, map[string]any{"taskDefinition": bad}, http.StatusOK)
		s := h.waitService(cluster, name, c.name+": rolled back and steady", 3*time.Minute, func(s *deploy.Service) bool {
			return steady(s) && s.TaskDefinition == v1 && hasEvent(s, "rolling back to "+v1)
		})
		var failed *deploy.Event
		for i := range s.Events {
			if strings.Contains(s.Events[i].Message, "deployment failed") && strings.Contains(s.Events[i].Message, bad) {
				failed = &s.Events[i]
				break
			}
		}
		if failed == nil || !strings.Contains(failed.Message, c.reason) {
			t.Errorf("%s: the failure does not say why (%q): %s", c.name, c.reason, describeService(s))
		}
		if body, err := get(taskURL(h.tasks(cluster, name, "RUNNING")[0])); err != nil || !strings.Contains(body, "v1") {
			t.Errorf("%s: after the rollback the task answers %q, %v", c.name, body, err)
		}
	}
}
