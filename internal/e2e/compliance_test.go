package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/servertest"
)

// A running service stays judged: when re-evaluation finds a CRITICAL in
// the image it runs, one Service Compliance Change names the service, the
// digest and the new findings; the policy's on-new-findings-running stops
// its tasks after the grace it gives, and a new start is refused.
func TestRunningServiceCompliance(t *testing.T) {
	t.Parallel()
	// No Debian feed yet: the image's packages have no known advisory.
	h := newHarness(t, servertest.Options{Feeds: []string{"ghsa", "nvd"}})
	base := h.appBase("compliance", imagetest.ReadFixture(t, "debian", "dpkg-status"))
	name := "cmp-" + h.id
	cluster := h.cluster("cmp")
	placeholder := h.pushApp("shop/placeholder-" + h.id)
	first := h.taskDef(name, placeholder, map[string]string{"MESSAGE": "hi"}, "")
	h.api("POST", "/api/v1/services", map[string]any{"clusterName": cluster, "serviceName": name, "taskDefinition": first, "desiredCount": 0},
		http.StatusCreated)
	h.api("PATCH", "/api/v1/clusters/"+cluster+"/services/"+name, map[string]any{"desiredCount": 1}, http.StatusOK)
	dir := h.repo(name, fmt.Sprintf(`name: %s
source: {repository: %s, branch: main}
build: {repository: shop/%s}
approval:
  policy:
    thresholds: {CRITICAL: 0}
    on-new-findings-running: stop-after 3s
deploy: {cluster: %s, service: %s, container: app, timeout: 3m}
`, name, name, name, cluster, name))
	commit := h.commit(dir, "app", map[string]string{"Dockerfile": "FROM " + base + "\n"})
	ex := h.waitExecution(name, commit, 3*time.Minute)
	if ex.Status != pipeline.StateSucceeded {
		t.Fatalf("execution: %s (%s)", ex.Status, ex.Reason)
	}
	h.waitService(cluster, name, "steady", time.Minute, steady)
	running := h.tasks(cluster, name, "RUNNING")

	h.s.ImportQueued(t, "debian")
	var changes []events.Logged
	deadline := time.Now().Add(time.Minute)
	for len(changes) == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		changes = h.eventsOf(deploy.DetailTypeServiceComplianceChange)
	}
	if len(changes) != 1 {
		list, _ := events.ListLog(context.Background(), h.s.Store, 0, 100000)
		for _, e := range list {
			t.Logf("%s %s %s", e.Event.Source, e.Event.DetailType, e.Event.Detail)
		}
		t.Fatalf("%d Service Compliance Change events, want 1", len(changes))
	}
	var d deploy.ComplianceDetail
	if err := json.Unmarshal(changes[0].Event.Detail, &d); err != nil {
		t.Fatal(err)
	}
	if d.Service != name || d.ImageDigest != ex.ImageDigest || d.EventName != deploy.EventServiceNoncompliant || len(d.Tasks) != 1 || d.Tasks[0] != running[0].ID {
		t.Errorf("compliance change: %+v", d)
	}
	found := false
	for _, f := range d.NewFindings {
		found = found || (f.Severity == "CRITICAL" && f.ID == "CVE-2023-45853" && f.Package == "zlib1g")
	}
	if !found || !strings.Contains(d.Action, "stop at") {
		t.Errorf("new findings %+v, action %q", d.NewFindings, d.Action)
	}

	// Past the stop-after, the task stops and no new one may start.
	s := h.waitService(cluster, name, "stopped for the new findings", time.Minute, func(s *deploy.Service) bool {
		return s.RunningCount == 0 && hasEvent(s, "has been noncompliant since")
	})
	var why string
	for deadline := time.Now().Add(time.Minute); why == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		for _, task := range h.tasks(cluster, name, "STOPPED") {
			if task.ID == running[0].ID {
				why = task.StoppedReason
			}
		}
	}
	if !strings.Contains(why, "noncompliant") {
		t.Errorf("the running task stopped for %q; service: %s", why, describeService(s))
	}
	// Re-evaluating again with nothing new publishes nothing more.
	h.s.ImportQueued(t, "debian")
	time.Sleep(2 * time.Second)
	if n := len(h.eventsOf(deploy.DetailTypeServiceComplianceChange)); n != 1 {
		t.Errorf("%d Service Compliance Change events after a second import, want 1", n)
	}
}

// eventsOf returns the logged events of a detail type.
func (h *harness) eventsOf(detailType string) []events.Logged {
	h.t.Helper()
	var out []events.Logged
	list, err := events.ListLog(context.Background(), h.s.Store, 0, 100000)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, e := range list {
		if e.Event.DetailType == detailType {
			out = append(out, e)
		}
	}
	return out
}
