package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/servertest"
)

// token makes a token of role and returns its secret.
func (h *harness) token(name, role string) string {
	h.t.Helper()
	var out struct{ Secret string }
	h.decode(h.api("POST", "/api/v1/tokens", map[string]string{"name": name + "-" + h.id, "role": role}, http.StatusCreated), &out)
	return out.Secret
}

// as calls the API with token and checks the status.
func (h *harness) as(token, method, path string, body any, want int) []byte {
	h.t.Helper()
	status, out := h.s.APIAs(h.t, token, method, path, body)
	if status != want {
		h.t.Fatalf("%s %s: %d %s, want %d", method, path, status, out, want)
	}
	return out
}

// waitVerdict waits for the pipeline's execution of commit to wait for a
// person at its approval stage, the policy's verdict known.
func (h *harness) waitVerdict(pipelineName, commit string, timeout time.Duration) *pipeline.Execution {
	h.t.Helper()
	return h.waitCommit(pipelineName, commit, "waited for a person", timeout, func(ex *pipeline.Execution) bool {
		if ex.Status != pipeline.StateInProgress {
			h.t.Fatalf("execution %s ended (%s: %s) before a person could decide", ex.ID, ex.Status, ex.Reason)
		}
		a := ex.Approval
		return a != nil && a.Status == pipeline.StatePending && a.Policy != nil
	})
}

// tagged returns the digest repository:tag names in the registry, or "".
func (h *harness) tagged(repository, tag string) string {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodHead, "http://"+h.s.Addr+"/v2/"+repository+"/manifests/"+tag, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.SetBasicAuth("dev", h.s.Token)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return ""
	}
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("HEAD %s:%s: %s", repository, tag, resp.Status)
	}
	return resp.Header.Get("Docker-Content-Digest")
}

// waitTagged waits for repository:tag to name digest.
func (h *harness) waitTagged(repository, tag, digest string, timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for h.tagged(repository, tag) != digest {
		if time.Now().After(deadline) {
			h.t.Fatalf("%s:%s names %q, not %s, after %s", repository, tag, h.tagged(repository, tag), digest, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// loggedEvent is an event of the server's log.
type loggedEvent struct {
	DetailType string         `json:"detail-type"`
	Detail     map[string]any `json:"detail"`
}

// events returns the logged events of a detail type.
func (h *harness) events(detailType string) []loggedEvent {
	h.t.Helper()
	var out []loggedEvent
	after := int64(0)
	for {
		var page struct {
			Events []struct {
				Seq   int64       `json:"seq"`
				Event loggedEvent `json:"event"`
			}
		}
		h.decode(h.api("GET", fmt.Sprintf("/api/v1/events?after=%d&limit=1000", after), nil, http.StatusOK), &page)
		if len(page.Events) == 0 {
			return out
		}
		for _, e := range page.Events {
			after = e.Seq
			if e.Event.DetailType == detailType {
				out = append(out, e.Event)
			}
		}
	}
}

// A person decides where the pipeline says so. In person mode, the
// policy's verdict is shown but does not decide: the approval waits for an
// approver, who presents the request's token; the image gets its promote
// tag only then. In policy+person mode, the policy's pass still waits for
// a person, who may reject it; a reader may neither see the token nor
// answer, and an approver may not approve where the policy decides.
func TestPeopleDecide(t *testing.T) {
	t.Parallel()
	h := newHarness(t, servertest.Options{Feeds: []string{"debian", "ghsa", "nvd"}})
	clean := h.appBase("clean", "")
	approver := h.token("alice", "approver")
	reader := h.token("viewer", "reader")
	pusher := h.token("ci", "pusher")

	name := "person-" + h.id
	repo := "shop/" + name
	dir := h.repo(name, fmt.Sprintf(`name: %s
source: {repository: %s, branch: main}
build: {repository: %s}
approval:
  mode: person
`, name, name, repo))
	commit := h.commit(dir, "first", map[string]string{"Dockerfile": "FROM " + clean + "\n"})
	ex := h.waitVerdict(name, commit, 2*time.Minute)
	a := ex.Approval
	if a.Mode != pipeline.ModePerson || a.Policy.Result != pipeline.VerdictPassed || !strings.Contains(a.Policy.Summary, "findings: nothing") {
		t.Errorf("approval %+v, policy %+v; want person mode, the findings shown", a, a.Policy)
	}
	if msg := stageOf(ex, "Approval").Message; !strings.Contains(msg, "waiting for a person") {
		t.Errorf("approval stage says %q", msg)
	}
	// Built and scanned, but not approved: the tag people pull is not there.
	if d := h.tagged(repo, "latest"); d != "" {
		t.Errorf("%s:latest names %s before any approval", repo, d)
	}
	if a.Token != "" {
		t.Errorf("the execution's view shows the approval token to a reader")
	}
	path := "/api/v1/executions/" + ex.ID + "/approval"
	h.as(reader, "GET", path, nil, http.StatusForbidden)
	h.as(pusher, "GET", path, nil, http.StatusForbidden)
	var withToken pipeline.Approval
	h.decode(h.as(approver, "GET", path, nil, http.StatusOK), &withToken)
	if len(withToken.Token) != 64 {
		t.Fatalf("an approver gets token %q, want 64 hex digits", withToken.Token)
	}
	approve := map[string]string{"decision": "approve", "comment": "reviewed the findings", "token": withToken.Token}
	h.as(reader, "POST", path, approve, http.StatusForbidden)
	h.as(approver, "POST", path, map[string]string{"decision": "approve", "comment": "x"}, http.StatusBadRequest)
	h.as(approver, "POST", path, map[string]string{"decision": "approve", "comment": "x", "token": strings.Repeat("0", 64)}, http.StatusForbidden)

	var decided pipeline.Approval
	h.decode(h.as(approver, "POST", path, approve, http.StatusOK), &decided)
	if decided.Status != pipeline.StateApproved || decided.DecidedBy != "token:alice-"+h.id || decided.Comment != approve["comment"] {
		t.Errorf("decided %+v; want Approved by token:alice-%s with the comment", decided, h.id)
	}
	ex = h.waitExecution(name, commit, time.Minute)
	if ex.Status != pipeline.StateSucceeded || !strings.Contains(ex.Reason, "alice-"+h.id) {
		t.Errorf("execution %s (%s)", ex.Status, ex.Reason)
	}
	h.waitTagged(repo, "latest", ex.ImageDigest, 30*time.Second)

	// policy+person: the policy's pass waits for a person, who rejects.
	name2 := "both-" + h.id
	dir2 := h.repo(name2, fmt.Sprintf(`name: %s
source: {repository: %s, branch: main}
build: {repository: shop/%s}
approval:
  mode: policy+person
  policy:
    thresholds: {CRITICAL: 0}
`, name2, name2, name2))
	commit2 := h.commit(dir2, "first", map[string]string{"Dockerfile": "FROM " + clean + "\n"})
	ex2 := h.waitVerdict(name2, commit2, 2*time.Minute)
	if p := ex2.Approval.Policy; p.Result != pipeline.VerdictPassed || !strings.HasPrefix(p.Summary, "Approved: CRITICAL 0 ≤ 0") {
		t.Errorf("policy verdict %+v", p)
	}
	// Through the CLI, from "another machine": it fetches the token and
	// answers with it; a reader's CLI is refused.
	bob := h.tokenFile("bob-"+h.id, "approver")
	viewer := h.tokenFile("viewer2-"+h.id, "reader")
	if r := h.cli(context.Background(), nil, viewer, "approval", "reject", ex2.ID, "--comment", "no"); r.code == 0 || !strings.Contains(r.stderr, "approver") {
		t.Errorf("a reader's rejection: exit %d %s", r.code, r.stderr)
	}
	shown := h.must(bob, "approval", "get", ex2.ID)
	if !strings.Contains(shown, "policy+person mode): Pending") || !strings.Contains(shown, "policy: Passed") || strings.Contains(shown, "token") {
		t.Errorf("approval get printed:\n%s", shown)
	}
	if out := h.must(bob, "approval", "reject", ex2.ID, "--comment", "not during the freeze"); !strings.HasPrefix(out, "Rejected: ") {
		t.Errorf("approval reject printed %q", out)
	}
	ex2 = h.waitExecution(name2, commit2, time.Minute)
	if ex2.Status != pipeline.StateFailed || ex2.Approval.Status != pipeline.StateRejected || ex2.Approval.Policy.Result != pipeline.VerdictPassed ||
		!strings.Contains(ex2.Reason, "not during the freeze") {
		t.Errorf("after the rejection: %s (%s), approval %+v", ex2.Status, ex2.Reason, ex2.Approval)
	}
	if d := h.tagged("shop/"+name2, "latest"); d != "" {
		t.Errorf("a rejected image is latest: %s", d)
	}
}

// An approver overrides the policy's rejection, saying why and until when.
// The override is recorded (who, when, why, which findings were accepted)
// in the execution, the events and the audit log; the execution goes on to
// deploy. The two-person rule keeps the pusher from deciding; the reasons
// name every exception the policy relied on; and once the override
// expires, the image is refused again where it would start.
func TestOverride(t *testing.T) {
	t.Parallel()
	h := newHarness(t, servertest.Options{Feeds: []string{"debian", "ghsa", "nvd"}})
	vulnerable := h.appBase("vulnerable", imagetest.ReadFixture(t, "debian", "dpkg-status"))
	approver := h.token("alice", "approver")
	name := "override-" + h.id
	repo := "shop/" + name
	cluster := h.cluster("default")
	placeholder := h.pushApp("shop/placeholder-" + h.id)
	first := h.taskDef(name, placeholder, nil, "")
	h.api("POST", "/api/v1/services", map[string]any{"clusterName": cluster, "serviceName": name, "taskDefinition": first, "desiredCount": 0},
		http.StatusCreated)
	h.api("PATCH", "/api/v1/clusters/"+cluster+"/services/"+name, map[string]any{"desiredCount": 1}, http.StatusOK)

	dir := h.repo(name, fmt.Sprintf(`name: %s
source: {repository: %s, branch: main}
build: {repository: %s}
approval:
  two-person: true
  policy:
    thresholds: {CRITICAL: 0, HIGH: 0}
    exceptions:
      - {id: CVE-2023-45853, package: zlib1g, reason: MiniZip is not built, expires: "2099-01-31"}
deploy: {cluster: %s, service: %s, container: app, timeout: 3m}
`, name, name, repo, cluster, name))
	commit := h.commit(dir, "first", map[string]string{"Dockerfile": "FROM " + vulnerable + "\n"})
	ex := h.waitExecution(name, commit, 2*time.Minute)
	a := ex.Approval
	if ex.Status != pipeline.StateFailed || a.Status != pipeline.StateRejected || a.DecidedBy != pipeline.Evaluator || a.Policy == nil ||
		a.Policy.Result != pipeline.VerdictFailed {
		t.Fatalf("first: %s (%s), approval %+v", ex.Status, ex.Reason, a)
	}
	if want := "CVE-2023-45853 in zlib1g excepted until 2099-01-31: MiniZip is not built"; !slices.Contains(a.Reasons, want) {
		t.Errorf("reasons %q do not name the exception %q", a.Reasons, want)
	}
	if d := h.tagged(repo, "latest"); d != "" {
		t.Errorf("a rejected image is latest: %s", d)
	}
	path := "/api/v1/executions/" + ex.ID + "/approval"
	var cur pipeline.Approval
	h.decode(h.as(approver, "GET", path, nil, http.StatusOK), &cur)
	// The policy decides in policy mode: an approver overrides, never approves.
	h.as(approver, "POST", path, map[string]string{"decision": "approve", "comment": "x", "token": cur.Token}, http.StatusConflict)
	// An override must say why.
	h.as(approver, "POST", path, map[string]string{"decision": "override", "token": cur.Token}, http.StatusBadRequest)
	// The token that pushed the commit (the harness's admin) may not decide.
	h.as(h.s.Token, "POST", path, map[string]string{"decision": "override", "comment": "mine", "token": cur.Token}, http.StatusForbidden)

	expires := time.Now().Add(50 * time.Second).UTC().Truncate(time.Second)
	override := map[string]string{"decision": "override", "comment": "accepted until the base image is fixed", "token": cur.Token,
		"expires": expires.Format(time.RFC3339)}
	var got pipeline.Approval
	h.decode(h.as(approver, "POST", path, override, http.StatusOK), &got)
	if got.Status != pipeline.StateApproved || got.DecidedBy != "token:alice-"+h.id || got.Comment != override["comment"] || got.Override == nil ||
		got.Override.Expires == nil || !got.Override.Expires.Equal(expires) || got.Policy.Result != pipeline.VerdictFailed {
		t.Fatalf("override %+v", got)
	}
	var critical bool
	for _, f := range got.Override.Accepted {
		critical = critical || strings.HasSuffix(f, "(CRITICAL)")
		if strings.HasPrefix(f, "CVE-2023-45853 ") {
			t.Errorf("the override accepted %q, which an exception covers already", f)
		}
	}
	if !critical {
		t.Errorf("accepted %q: want the CRITICAL findings that failed the policy", got.Override.Accepted)
	}
	// A second override of the same request is refused.
	h.as(approver, "POST", path, override, http.StatusConflict)

	ex = h.waitExecution(name, commit, 3*time.Minute)
	if ex.Status != pipeline.StateSucceeded || stageOf(ex, "Deploy").Status != pipeline.StateSucceeded ||
		!strings.Contains(stageOf(ex, "Approval").Message, "Overridden by token:alice-"+h.id) {
		t.Fatalf("after the override: %s (%s), stages %+v", ex.Status, ex.Reason, ex.Stages)
	}
	h.waitTagged(repo, "latest", ex.ImageDigest, 30*time.Second)
	var seen bool
	for _, e := range h.events("Approval Overridden") {
		if e.Detail["execution-id"] == ex.ID {
			seen = e.Detail["overridden-by"] == "token:alice-"+h.id && e.Detail["comment"] == override["comment"] &&
				e.Detail["expires"] == expires.Format(time.RFC3339) && len(e.Detail["accepted"].([]any)) == len(got.Override.Accepted)
		}
	}
	if !seen {
		t.Errorf("no Approval Overridden event saying who, why, what and until when")
	}

	// The service runs the overridden image; once the override expires, a
	// new task of it is refused.
	h.waitService(cluster, name, "one task running", time.Minute, func(s *deploy.Service) bool { return s.RunningCount == 1 })
	time.Sleep(time.Until(expires) + time.Second)
	h.api("PATCH", "/api/v1/clusters/"+cluster+"/services/"+name, map[string]any{"desiredCount": 2}, http.StatusOK)
	s := h.waitService(cluster, name, "a refusal", time.Minute, func(s *deploy.Service) bool { return hasEvent(s, "override by token:alice-"+h.id+" expired") })
	if s.RunningCount != 1 {
		t.Errorf("after the override expired: %s", describeService(s))
	}
}
