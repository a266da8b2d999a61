package pipeline_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/servertest"
)

// noFeeds is a server with an empty vulnerability database: its scans
// fail, but only after the scanner's retries (about 17 s), and then reject.
var noFeeds = servertest.Options{Feeds: []string{}}

// byPerson is the approval line of a pipeline whose executions wait at
// their approval stage until a person answers: tests of what happens to
// waiting executions do not race the scan's end.
const byPerson = "mode: person"

// A newer commit that reaches the approval stage supersedes the older
// execution waiting there.
func TestSupersede(t *testing.T) {
	t.Parallel()
	st := newStory(t)
	base := st.cleanBase()
	name := "sup-" + st.id
	st.setUp(name, hosted(name, byPerson))

	first := st.commit("first", app(base, "one"))
	older := st.waitStarted(name, first, 10*time.Second)
	waiting := st.waitApproval(older, 30*time.Second)

	second := st.commit("second", app(base, "two"))
	newer := st.waitStarted(name, second, 10*time.Second)
	ex := st.waitEnded(older, 30*time.Second)
	if ex.Status != pipeline.StateSuperseded || !strings.Contains(ex.Reason, "superseded by execution "+newer) {
		t.Fatalf("older execution: %s (%s); want Superseded by %s", ex.Status, ex.Reason, newer)
	}
	a := ex.Approval
	if a == nil || a.ID != waiting.Approval.ID || a.Status != pipeline.StateSuperseded || !strings.Contains(a.Summary, newer) || a.DecidedAt == nil {
		t.Errorf("older approval %+v; want Superseded by %s", a, newer)
	}
	if s := stages(ex); s["Approval"] != pipeline.StateSuperseded || s["Deploy"] != pipeline.StateSkipped {
		t.Errorf("older stages %v", s)
	}
	if n := st.waitApproval(newer, 30*time.Second); n.Approval.ID == a.ID {
		t.Errorf("the newer execution answers the older request %s", a.ID)
	}
	evs := st.eventsOf(older)
	if last := evs[len(evs)-1]; last.Type != events.DetailTypePipelineExecutionStateChange || last.Detail["state"] != "SUPERSEDED" {
		t.Errorf("older execution's events end with %s %v:%s", last.Type, last.Detail["state"], describe(evs))
	}
	if n := finalApprovalEvents(evs); n != 1 {
		t.Errorf("%d final Approval stage events for the older execution, want 1:%s", n, describe(evs))
	}
}

// An older execution whose build ends after a newer execution of the same
// pipeline has reached the approval stage must not wait there beside it:
// the newer commit has passed it, so it is superseded.
func TestSupersedeOvertaken(t *testing.T) {
	t.Parallel()
	st := newStory(t)
	base := st.cleanBase()
	name := "overtaken-" + st.id
	st.setUp(name, hosted(name, byPerson))

	// The first commit's build copies 32 MiB that does not compress: it
	// takes a few seconds more than the second's.
	big := make([]byte, 32<<20)
	_, _ = rand.Read(big)
	files := app(base, "slow")
	files["Dockerfile"] += "COPY big.bin /big.bin\n"
	files["big.bin"] = string(big)
	first := st.commit("slow", files)
	older := st.waitStarted(name, first, 10*time.Second)
	st.git("rm", "--quiet", "big.bin")
	second := st.commit("fast", app(base, "fast"))
	newer := st.waitStarted(name, second, 10*time.Second)

	n := st.waitFor(newer, "at its approval stage", 30*time.Second, func(ex *pipeline.Execution) bool { return ex.Approval != nil })
	// The older execution is superseded, whichever build ends first.
	ex := st.waitEnded(older, 60*time.Second)
	if b := stage(ex, pipeline.StageBuild); b.EndedAt != nil && b.EndedAt.After(n.Approval.CreatedAt) {
		t.Logf("the older build ended after the newer execution's approval request (%s after)", b.EndedAt.Sub(n.Approval.CreatedAt))
	} else {
		t.Logf("the older build ended first: this run did not test the overtaking")
	}
	if ex.Status != pipeline.StateSuperseded || !strings.Contains(ex.Reason, "superseded by execution "+newer) {
		t.Fatalf("older execution: %s (%s), approval %+v; want Superseded by %s", ex.Status, ex.Reason, ex.Approval, newer)
	}
	if s := stages(ex); s["Approval"] != pipeline.StateSuperseded || s["Deploy"] != pipeline.StateSkipped {
		t.Errorf("older stages %v", s)
	}
}

// No decision by the approval's expiry fails the stage and the execution.
func TestApprovalExpires(t *testing.T) {
	t.Parallel()
	st := newStory(t)
	base := st.cleanBase()
	name := "expiry-" + st.id
	st.setUp(name, hosted(name, "timeout: 2s", byPerson))

	c := st.commit("first", app(base, "one"))
	id := st.waitStarted(name, c, 10*time.Second)
	ex := st.waitEnded(id, 30*time.Second)
	a := ex.Approval
	if a == nil {
		t.Fatalf("execution %s (%s): no approval", ex.Status, ex.Reason)
	}
	want := "approval expired: no decision by " + a.ExpiresAt.Format(time.RFC3339)
	if ex.Status != pipeline.StateFailed || ex.Reason != want {
		t.Errorf("execution %s (%s); want Failed (%s)", ex.Status, ex.Reason, want)
	}
	if a.Status != pipeline.StateExpired || a.DecidedAt == nil || a.ExpiresAt.Sub(a.CreatedAt) != 2*time.Second {
		t.Errorf("approval %+v; want Expired two seconds after its request", a)
	}
	if s := stages(ex); s["Approval"] != pipeline.StateFailed || s["Deploy"] != pipeline.StateSkipped {
		t.Errorf("stages %v", s)
	}
	if m := stage(ex, pipeline.StageApproval).Message; m != want {
		t.Errorf("approval stage message %q, want %q", m, want)
	}
}

// A scan that fails rejects, with the error as the reason; and whether
// the approval request is made before the scan ends (its Scan event
// decides) or after (the request's own evaluation decides), each request
// gets exactly one decision.
func TestScanErrorRejectsOnce(t *testing.T) {
	t.Parallel()
	st := newStoryWith(t, noFeeds)
	base := st.cleanBase()
	name := "scanerr-" + st.id
	st.setUp(name, hosted(name))

	// The legacy builder's cache makes a rebuild give the same image, but
	// the builder removes the image it pushed, and with it the last step
	// of the cache. An image built here from the commit's archive, before
	// it is pushed, keeps it.
	for name, body := range app(base, "one") {
		if err := os.WriteFile(filepath.Join(st.work, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st.git("add", "-A")
	st.git("commit", "--quiet", "-m", "first")
	c := st.git("rev-parse", "HEAD")
	st.dockerBuildArchive(c, "scangate-test/keep:"+st.id)
	st.git("push", "--quiet", "origin", "HEAD:main")
	first := st.waitStarted(name, c, 10*time.Second)
	// The request exists while the scan is still being retried.
	st.waitApproval(first, 30*time.Second)
	ex1 := st.waitEnded(first, 60*time.Second)
	a := ex1.Approval
	if ex1.Status != pipeline.StateFailed || a.Status != pipeline.StateRejected || a.DecidedBy != pipeline.Evaluator {
		t.Fatalf("execution %s (%s), approval %+v; want Failed, Rejected by the evaluator", ex1.Status, ex1.Reason, a)
	}
	const cause = "the vulnerability database is empty"
	if !strings.HasPrefix(a.Summary, "Rejected: the scan failed: ") || !strings.Contains(a.Summary, cause) ||
		!strings.Contains(strings.Join(a.Reasons, "\n"), cause) || !strings.Contains(ex1.Reason, cause) {
		t.Errorf("rejection %q, reasons %q, execution reason %q; want the scan's error", a.Summary, a.Reasons, ex1.Reason)
	}

	// The same commit again: the same image, whose scan has ended before
	// its request is made.
	second := st.start(name, c)
	ex2 := st.waitEnded(second, 30*time.Second)
	if ex2.ImageDigest != ex1.ImageDigest {
		t.Fatalf("the rebuild gave %s, the first build %s: this test needs the same image\nfirst build:\n%s\nrebuild:\n%s", ex2.ImageDigest, ex1.ImageDigest,
			st.api("GET", "/api/v1/executions/"+first+"/log", nil, http.StatusOK), st.api("GET", "/api/v1/executions/"+second+"/log", nil, http.StatusOK))
	}
	if !ex2.Approval.CreatedAt.After(*a.DecidedAt) {
		t.Errorf("the second request (%s) was made before the first was decided (%s)", ex2.Approval.CreatedAt, a.DecidedAt)
	}
	if ex2.Status != pipeline.StateFailed || ex2.Approval.Status != pipeline.StateRejected || !strings.Contains(ex2.Approval.Summary, cause) {
		t.Errorf("second execution %s (%s), approval %+v", ex2.Status, ex2.Reason, ex2.Approval)
	}
	st.settle(30 * time.Second)
	for _, id := range []string{first, second} {
		if evs := st.eventsOf(id); finalApprovalEvents(evs) != 1 {
			t.Errorf("execution %s: want one final Approval stage event:%s", id, describe(evs))
		}
	}
}

// One execution's events, in order: the execution starts, each stage
// changes, the approval is requested (with what a person needs, and no
// token), and the execution ends.
func TestExecutionEvents(t *testing.T) {
	t.Parallel()
	st := newStory(t, "debian", "ghsa", "nvd")
	clean := st.cleanBase()
	vulnerable := st.loadBase("vulnerable",
		imagetest.Entry{Name: "etc/os-release", Body: imagetest.ReadFixture(t, "debian", "os-release")},
		imagetest.Entry{Name: "var/lib/dpkg/status", Body: imagetest.ReadFixture(t, "debian", "dpkg-status")})
	name := "events-" + st.id
	st.setUp(name, hosted(name))
	key, err := os.ReadFile(filepath.Join(st.s.DataDir, pipeline.KeyFile))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		base, end, approval string
	}{
		{vulnerable, "FAILED", pipeline.StateFailed},
		{clean, "SUCCEEDED", pipeline.StateSucceeded},
	} {
		c := st.commit(tc.end, app(tc.base, tc.end))
		id := st.waitStarted(name, c, 10*time.Second)
		ex := st.waitEnded(id, time.Minute)
		st.settle(30 * time.Second)
		evs := st.eventsOf(id)
		want := []string{
			"Pipeline Execution State Change STARTED",
			"Stage State Change Source Succeeded",
			"Stage State Change Build InProgress",
			"Stage State Change Build Succeeded",
			"Stage State Change Approval InProgress",
			"Approval Requested",
			"Stage State Change Approval " + tc.approval,
			"Pipeline Execution State Change " + tc.end,
		}
		var got []string
		for _, e := range evs {
			s := e.Type
			if e.Type == events.DetailTypeStageStateChange {
				s += " " + e.Detail["stage"].(string)
			}
			if st, ok := e.Detail["state"].(string); ok {
				s += " " + st
			}
			got = append(got, s)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: events\n  %s\nwant\n  %s", tc.end, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			continue
		}
		a := ex.Approval
		req := evs[5]
		if req.Detail["approval-id"] != a.ID || req.Detail["image-digest"] != ex.ImageDigest || req.Detail["image-digest"] != a.ImageDigest ||
			req.Detail["expires"] != a.ExpiresAt.Format(time.RFC3339) || req.Detail["pipeline"] != name || req.Detail["commit"] != c {
			t.Errorf("Approval Requested %s; approval %+v", req.Raw, a)
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte("approval:" + a.ID))
		token := hex.EncodeToString(m.Sum(nil))
		sum := sha256.Sum256([]byte(token))
		for _, e := range evs {
			if strings.Contains(e.Raw, token) || strings.Contains(e.Raw, hex.EncodeToString(sum[:])) {
				t.Errorf("an event holds the approval's token or its hash: %s", e.Raw)
			}
		}
		if end := evs[len(evs)-1]; tc.end == "FAILED" && !strings.Contains(end.Detail["reason"].(string), "CRITICAL") {
			t.Errorf("the FAILED event's reason: %s", end.Raw)
		}
	}
}

// A build that fails fails its stage and the execution with the tail of
// its log, and the log can be downloaded.
func TestBuildFailure(t *testing.T) {
	t.Parallel()
	st := newStoryWith(t, noFeeds)
	name := "broken-" + st.id
	st.setUp(name, hosted(name))
	missing := "scangate-test/no-such-base:" + st.id
	c := st.commit("broken", map[string]string{"Dockerfile": "FROM " + missing + "\nCOPY app.txt /app.txt\n", "app.txt": "x\n"})
	id := st.waitStarted(name, c, 10*time.Second)
	ex := st.waitEnded(id, time.Minute)
	if ex.Status != pipeline.StateFailed || !strings.HasPrefix(ex.Reason, "build failed: ") || !strings.Contains(ex.Reason, "last ") ||
		!strings.Contains(ex.Reason, "FROM "+missing) {
		t.Errorf("execution %s (%s); want Failed with the tail of the build log", ex.Status, ex.Reason)
	}
	if s := stages(ex); s["Source"] != pipeline.StateSucceeded || s["Build"] != pipeline.StateFailed || s["Approval"] != pipeline.StateSkipped || s["Deploy"] != pipeline.StateSkipped {
		t.Errorf("stages %v", s)
	}
	if m := stage(ex, pipeline.StageBuild).Message; m != ex.Reason {
		t.Errorf("build stage message %q, execution reason %q", m, ex.Reason)
	}
	if ex.Approval != nil || ex.ImageDigest != "" {
		t.Errorf("a failed build has an approval %+v or image %s", ex.Approval, ex.ImageDigest)
	}
	log := string(st.api("GET", "/api/v1/executions/"+id+"/log", nil, http.StatusOK))
	if !strings.Contains(log, "FROM "+missing) {
		t.Errorf("build log:\n%s", log)
	}
	if status, _ := st.s.API(t, "GET", "/api/v1/executions/"+id+"/artifact", nil); status != http.StatusNotFound {
		t.Errorf("artifact of a failed build: %d, want 404", status)
	}
}

// A pipeline on an external repository (here, another repository hosted
// by the same server, reached by its URL) starts on the commits its poll
// sees and on the pushes a forge's webhook reports, once for each commit.
func TestExternalSource(t *testing.T) {
	t.Parallel()
	st := newStory(t)
	base := st.cleanBase()
	polledRepo, hookedRepo := "upstream-polled-"+st.id, "upstream-hooked-"+st.id
	polled, hooked := "ext-polled-"+st.id, "ext-hooked-"+st.id
	dirs := map[string]string{}
	for _, r := range []string{polledRepo, hookedRepo} {
		st.api("POST", "/api/v1/repositories", map[string]string{"name": r}, http.StatusCreated)
		dirs[r] = st.clone(r)
	}
	p1 := st.commitIn(dirs[polledRepo], "first", app(base, "p1"))
	h1 := st.commitIn(dirs[hookedRepo], "first", app(base, "h1"))
	secret := "hook-secret-" + st.id
	st.api("PUT", "/api/v1/pipelines/"+polled, []byte(gate(polled,
		fmt.Sprintf("{url: '%s', branch: main, poll: 5s, webhook-secret: %s}", st.repoURL(polledRepo), secret), "apps/"+polled, byPerson)), http.StatusOK)
	st.api("PUT", "/api/v1/pipelines/"+hooked, []byte(gate(hooked,
		fmt.Sprintf("{url: '%s', branch: main, webhook-secret: %s}", st.repoURL(hookedRepo), secret), "apps/"+hooked, byPerson)), http.StatusOK)

	// The server looks for polled pipelines every 15 s; the first poll
	// reports the branch's head.
	first := st.waitStarted(polled, p1, 30*time.Second)
	p2 := st.commitIn(dirs[polledRepo], "second", app(base, "p2"))
	pushed := time.Now()
	second := st.waitStarted(polled, p2, 12*time.Second)
	t.Logf("the poll saw the push after %s", time.Since(pushed).Round(100*time.Millisecond))
	ex := st.waitFor(second, "built", 60*time.Second, func(ex *pipeline.Execution) bool { return ex.Approval != nil || ended(ex) })
	if s := stages(ex); s["Build"] != pipeline.StateSucceeded || ex.Trigger == "" {
		t.Fatalf("the polled execution: %s (%s), trigger %q, stages %v", ex.Status, ex.Reason, ex.Trigger, s)
	}
	if ex := st.execution(first); ex.Status != pipeline.StateSuperseded {
		t.Errorf("the first polled execution: %s (%s), want Superseded by the second", ex.Status, ex.Reason)
	}

	// Each request is a delivery of its own, with an id of its own, as a
	// forge sends them: a delivery sent again is TestReplayedWebhookStartsNothing's.
	deliveries := 0
	hook := func(repo, before, after, signWith string) (int, string) {
		deliveries++
		body := fmt.Sprintf(`{"ref": "refs/heads/main", "before": %q, "after": %q, "repository": {"clone_url": "http://%s/git/%s.git"}}`,
			before, after, st.s.Addr, repo)
		m := hmac.New(sha256.New, []byte(signWith))
		m.Write([]byte(body))
		req, err := http.NewRequest("POST", "http://"+st.s.Addr+"/hooks/git", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("%s-%d", st.id, deliveries))
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(msg)
	}

	// A forge's push webhook starts the pipeline that has no poll.
	zero := strings.Repeat("0", 40)
	if status, msg := hook(hookedRepo, zero, h1, "wrong secret"); status != http.StatusForbidden {
		t.Errorf("a webhook with a bad signature: %d %s, want 403", status, msg)
	}
	if n := len(st.executions(hooked, h1)); n != 0 {
		t.Fatalf("a webhook with a bad signature started %d executions", n)
	}
	if status, msg := hook(hookedRepo, zero, h1, secret); status != http.StatusNoContent {
		t.Fatalf("webhook: %d %s, want 204", status, msg)
	}
	exs := st.executions(hooked, h1)
	if len(exs) != 1 {
		t.Fatalf("after the webhook: %d executions of %.12s, want 1", len(exs), h1)
	}
	ex = st.waitFor(exs[0].ID, "built", 60*time.Second, func(ex *pipeline.Execution) bool { return ex.Approval != nil || ended(ex) })
	if s := stages(ex); s["Build"] != pipeline.StateSucceeded {
		t.Fatalf("the webhook's execution: %s (%s), stages %v", ex.Status, ex.Reason, s)
	}

	// A webhook for a commit the poll has started already (a forge's late
	// or repeated delivery) starts nothing more.
	if status, msg := hook(polledRepo, p1, p2, secret); status != http.StatusNoContent {
		t.Fatalf("webhook: %d %s, want 204", status, msg)
	}
	if status, msg := hook(hookedRepo, zero, h1, secret); status != http.StatusNoContent {
		t.Fatalf("webhook: %d %s, want 204", status, msg)
	}
	if n, m := len(st.executions(polled, p2)), len(st.executions(hooked, h1)); n != 1 || m != 1 {
		t.Errorf("after repeated webhooks: %d executions of the polled commit and %d of the pushed one, want 1 each", n, m)
	}
}

// githubPush is a signed GitHub push webhook, kept to be sent again as is.
type githubPush struct {
	body   string
	header http.Header
}

func (st *story) githubPush(repo, delivery, before, after, secret string) githubPush {
	body := fmt.Sprintf(`{"ref": "refs/heads/main", "before": %q, "after": %q, "repository": {"clone_url": "http://%s/git/%s.git"}}`,
		before, after, st.s.Addr, repo)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-GitHub-Event", "push")
	h.Set("X-GitHub-Delivery", delivery)
	h.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	return githubPush{body, h}
}

// send posts the webhook to the server and returns the status and body.
func (st *story) send(p githubPush) (int, string) {
	st.t.Helper()
	req, err := http.NewRequest("POST", "http://"+st.s.Addr+"/hooks/git", strings.NewReader(p.body))
	if err != nil {
		st.t.Fatal(err)
	}
	req.Header = p.header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		st.t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg)
}

// An old signed push webhook sent again, as it was or as a new delivery,
// starts nothing: the commit it names has run already and is no longer
// the branch's head. The newest execution stays the newest commit's.
func TestReplayedWebhookStartsNothing(t *testing.T) {
	t.Parallel()
	st := newStoryWith(t, noFeeds)
	base := st.cleanBase()
	upstream, name := "upstream-replayed-"+st.id, "ext-replayed-"+st.id
	st.api("POST", "/api/v1/repositories", map[string]string{"name": upstream}, http.StatusCreated)
	dir := st.clone(upstream)
	secret := "hook-secret-" + st.id
	st.api("PUT", "/api/v1/pipelines/"+name, []byte(gate(name,
		fmt.Sprintf("{url: '%s', branch: main, webhook-secret: %s}", st.repoURL(upstream), secret), "apps/"+name)), http.StatusOK)
	newest := func() *pipeline.Execution {
		t.Helper()
		var list struct{ Executions []*pipeline.Execution }
		if err := json.Unmarshal(st.api("GET", "/api/v1/executions?pipeline="+name, nil, http.StatusOK), &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Executions) == 0 {
			t.Fatal("no executions")
		}
		return list.Executions[0]
	}

	zero := strings.Repeat("0", 40)
	a := st.commitIn(dir, "a", app(base, "a"))
	pushA := st.githubPush(upstream, "delivery-a-"+st.id, zero, a, secret)
	if status, msg := st.send(pushA); status != http.StatusNoContent {
		t.Fatalf("A's webhook: %d %s, want 204", status, msg)
	}
	b := st.commitIn(dir, "b", app(base, "b"))
	if status, msg := st.send(st.githubPush(upstream, "delivery-b-"+st.id, a, b, secret)); status != http.StatusNoContent {
		t.Fatalf("B's webhook: %d %s, want 204", status, msg)
	}
	if n, m := len(st.executions(name, a)), len(st.executions(name, b)); n != 1 || m != 1 {
		t.Fatalf("%d executions of A and %d of B, want 1 each", n, m)
	}

	// A's request again, as it was; then a new delivery naming A.
	for _, p := range []githubPush{pushA, st.githubPush(upstream, "delivery-a-again-"+st.id, zero, a, secret)} {
		if status, msg := st.send(p); status/100 != 2 {
			t.Errorf("webhook %s again: %d %s, want it taken and ignored", p.header.Get("X-GitHub-Delivery"), status, msg)
		}
	}
	if n := len(st.executions(name, a)); n != 1 {
		t.Errorf("%d executions of A after its webhook was sent again, want the first only", n)
	}
	if ex := newest(); ex.Commit != b {
		t.Errorf("the newest execution runs %.12s, want B %.12s", ex.Commit, b)
	}
}
