package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/servertest"
)

// The seed's walkthrough, clicked through the console in a real browser:
// a reader logs in, sees the pipeline's stage boxes and the rejected
// execution's reasons, opens the image's findings from them, sees no
// Review button on the pending execution and is refused when posting one
// anyway; a form without its CSRF token is refused; an approver approves
// the pending execution with a comment; the service's task then shows
// RUNNING, and its revision names the approved digest; a change of the
// desired count appears on the open service page without a reload. Every
// page passes axe-core's WCAG A and AA rules with no serious violation,
// and each is kept as a screenshot (SCANGATE_ARTIFACTS).
func TestConsoleWalkthrough(t *testing.T) {
	t.Parallel()
	h := newHarness(t, servertest.Options{Feeds: []string{"debian", "ghsa", "nvd"}})
	vulnerable := h.appBase("vulnerable", imagetest.ReadFixture(t, "debian", "dpkg-status"))
	fixed := h.appBase("fixed", "")
	reader := h.token("viewer", "reader")
	approver := h.token("alice", "approver")
	name := "shop-" + h.id
	cluster := h.cluster("default")
	placeholder := h.pushApp("shop/placeholder-" + h.id)
	first := h.taskDef(name, placeholder, map[string]string{"MESSAGE": "placeholder"}, "")
	h.api("POST", "/api/v1/services", map[string]any{"clusterName": cluster, "serviceName": name, "taskDefinition": first, "desiredCount": 0},
		http.StatusCreated)
	h.api("PATCH", "/api/v1/clusters/"+cluster+"/services/"+name, map[string]any{"desiredCount": 1}, http.StatusOK)
	dir := h.repo(name, fmt.Sprintf(`name: %s
source: {repository: %s, branch: main}
build: {repository: shop/%s}
approval:
  mode: policy+person
  policy:
    thresholds: {CRITICAL: 0, HIGH: 0}
deploy: {cluster: %s, service: %s, container: app, timeout: 3m}
`, name, name, name, cluster, name))
	rejectedCommit := h.commit(dir, "first cut of the shop", map[string]string{"Dockerfile": "FROM " + vulnerable + "\n"})
	rejected := h.waitExecution(name, rejectedCommit, 2*time.Minute)
	if rejected.Approval == nil || rejected.Approval.Status != pipeline.StateRejected || len(rejected.Approval.Reasons) == 0 {
		t.Fatalf("first commit: %s, approval %+v; want Rejected with reasons", rejected.Status, rejected.Approval)
	}
	pendingCommit := h.commit(dir, "use the fixed base", map[string]string{"Dockerfile": "FROM " + fixed + "\n"})
	pending := h.waitVerdict(name, pendingCommit, 2*time.Minute)

	b := newBrowser(t, "http://"+h.s.Addr)

	// Nobody is let in without a token; a bad one is refused.
	b.open("/pipelines", "login")
	if !strings.Contains(b.location(), "/login") {
		t.Fatalf("without a session /pipelines went to %s", b.location())
	}
	if status := b.login("sgt_" + strings.Repeat("0", 64)); status != http.StatusUnauthorized || !strings.Contains(b.text(), "not valid") {
		t.Errorf("a bad token's login: %d\n%s", status, b.text())
	}
	b.check("login-refused")

	// A reader: the pipeline with its stage boxes and executions.
	if status := b.login(reader); status != http.StatusOK || !strings.Contains(b.text(), "viewer-"+h.id) {
		t.Fatalf("the reader's login: %d\n%s", status, b.text())
	}
	b.open("/pipelines", "pipelines")
	b.waitText(5*time.Second, name, "Source", "Build", "Approval", "Deploy", rejectedCommit[:8], "first cut of the shop", "Dev")
	b.open("/pipelines/"+name, "pipeline-history")
	b.waitText(5*time.Second, rejectedCommit[:8], pendingCommit[:8], "use the fixed base")

	// The rejected execution: every reason, who decided, and the way to
	// the findings.
	b.open("/executions/"+rejected.ID, "execution-rejected")
	txt := b.text()
	for _, r := range rejected.Approval.Reasons {
		if !strings.Contains(txt, firstLine(r)) {
			t.Errorf("the rejected execution's page lacks the reason %q", r)
		}
	}
	if !strings.Contains(txt, "Rejected") || !strings.Contains(txt, pipeline.Evaluator) {
		t.Errorf("the rejected execution's page:\n%s", txt)
	}
	b.click("#findings-link")
	b.check("findings")
	txt = b.text()
	if !strings.Contains(txt, "CRITICAL") || !strings.Contains(txt, "CVE-") || !strings.Contains(txt, "in use by 0 running tasks") {
		t.Errorf("the findings page:\n%.2000s", txt)
	}
	findingsPage := b.location()
	// Filtered to what is fixable, by the form.
	b.open(findingsPage+"&fixable=no&severity=CRITICAL", "findings-filtered")
	sevs := eval[[]string](b, `Array.from(document.querySelectorAll("table.findings tbody tr td:nth-child(2) .sev")).map(e => e.textContent)`)
	fixes := eval[[]string](b, `Array.from(document.querySelectorAll("table.findings tbody tr td:nth-child(5)")).map(e => e.textContent)`)
	if len(sevs) == 0 || len(sevs) != len(fixes) {
		t.Errorf("the filtered findings: severities %q, fixed %q", sevs, fixes)
	}
	for i := range sevs {
		if sevs[i] != "CRITICAL" || !strings.HasPrefix(fixes[i], "no fix") {
			t.Errorf("the filter CRITICAL, unfixed shows a %s finding fixed in %q", sevs[i], fixes[i])
		}
	}
	// The report downloads, in each format.
	for _, f := range []string{"json", "sarif", "cyclonedx", "spdx", "csv"} {
		status, _ := fetchIn(b, findingsDownload(findingsPage, f), "GET", "")
		if status != http.StatusOK {
			t.Errorf("download %s: %d", f, status)
		}
	}
	b.open("/repositories", "repositories")
	b.waitText(5*time.Second, "shop/"+name, "CRITICAL")
	b.open("/images?repository=shop/"+name, "images")

	// The pending execution: a reader sees no Review, and a POST of one,
	// with the session's CSRF token, is refused.
	b.open("/executions/"+pending.ID, "execution-pending-reader")
	if n := eval[int](b, `document.querySelectorAll("#approve, #reject, form[action$='/review']").length`); n != 0 {
		t.Errorf("a reader sees %d review controls", n)
	}
	status, body := fetchIn(b, "/executions/"+pending.ID+"/review", "POST", "decision=approve&comment=me+too&csrf=' + document.querySelector('input[name=csrf]').value + '")
	if status != http.StatusForbidden || !strings.Contains(body, "approver") {
		t.Errorf("a reader's review: %d %.300s", status, body)
	}
	// A form without its CSRF token is refused, though the reader may
	// use the pattern tester.
	status, _ = fetchIn(b, "/rules/test", "POST", "pattern=%7B%7D&event=%7B%7D")
	if status != http.StatusForbidden {
		t.Errorf("a form without its CSRF token: %d, want 403", status)
	}
	status, body = fetchIn(b, "/rules/test", "POST", `pattern=%7B%22source%22%3A%5B%22scangate.scanner%22%5D%7D&event=`+
		`%7B%22id%22%3A%221%22%2C%22source%22%3A%22scangate.scanner%22%2C%22detail-type%22%3A%22Scan%22%2C%22time%22%3A%222026-01-01T00%3A00%3A00Z%22%2C%22detail%22%3A%7B%7D%7D`+
		`&csrf=' + document.querySelector('input[name=csrf]').value + '`)
	if status != http.StatusOK || !strings.Contains(body, "The pattern matches the event") {
		t.Errorf("the pattern tester: %d %.300s", status, body)
	}
	b.logout()

	// An approver approves with a comment.
	if status := b.login(approver); status != http.StatusOK {
		t.Fatalf("the approver's login: %d", status)
	}
	b.open("/executions/"+pending.ID, "execution-pending-approver")
	b.within(30*time.Second, "write the comment", func(ctx contextT) error { return sendKeys(ctx, "#comment", "reviewed: no findings over the policy") })
	b.click("#approve")
	b.check("execution-approved")
	b.waitText(10*time.Second, "Approved by token:alice-"+h.id, "reviewed: no findings over the policy")

	// Deployed: the service's task RUNNING, its revision naming the
	// approved digest.
	ex := h.waitExecution(name, pendingCommit, 3*time.Minute)
	if ex.Status != pipeline.StateSucceeded {
		t.Fatalf("the approved execution: %s (%s)", ex.Status, ex.Reason)
	}
	h.waitService(cluster, name, "steady", time.Minute, steady)
	b.open("/clusters", "clusters")
	b.open("/clusters/"+cluster+"/services/"+name, "service")
	b.waitText(10*time.Second, "RUNNING", name+":2")
	b.click("#tasks a[href^='/tasks/']")
	b.check("task")
	b.waitText(10*time.Second, "RUNNING", name+":2", ex.ImageDigest)
	b.click("#task-revision")
	b.check("taskdef")
	b.waitText(10*time.Second, "@"+ex.ImageDigest)

	// Live: the open service page follows a change made elsewhere, with
	// no reload.
	b.open("/clusters/"+cluster+"/services/"+name, "")
	eval[bool](b, `window.sgMarker = true`)
	h.api("PATCH", "/api/v1/clusters/"+cluster+"/services/"+name, map[string]any{"desiredCount": 2}, http.StatusOK)
	b.within(90*time.Second, "the service page to show 2 running tasks", func(ctx contextT) error {
		return pollJS(ctx, `document.getElementById("running") && document.getElementById("running").textContent === "2"`)
	})
	if !eval[bool](b, `window.sgMarker === true`) {
		t.Error("the service page reloaded instead of updating in place")
	}
	b.screenshot("service-live")

	// The other pages, for the accessibility check and the artifacts.
	for _, p := range []struct{ path, shot string }{
		{"/events", "events"}, {"/events?type=Scan", "events-scan"}, {"/rules", "rules"}, {"/dead-letters", "dead-letters"},
		{"/policies", "policies"},
	} {
		b.open(p.path, p.shot)
	}
	// An advisory's page: the images it affects, by the package.
	b.open("/vulnerabilities/CVE-2023-45853", "vulnerability")
	b.waitText(5*time.Second, "shop/"+name+"@"+strings.TrimPrefix(rejected.ImageDigest, "sha256:")[:12], "zlib1g", "no running task")
	// Tokens are an admin's.
	if status, _ := fetchIn(b, "/tokens", "GET", ""); status != http.StatusForbidden {
		t.Errorf("an approver's /tokens: %d, want 403", status)
	}
	b.logout()
	b.login(h.s.Token)
	b.open("/tokens", "tokens")
	b.within(30*time.Second, "name a token", func(ctx contextT) error { return sendKeys(ctx, "#t-name", "console-made-"+h.id) })
	b.click("#new-h + form button")
	b.check("token-created")
	secret := eval[string](b, `document.getElementById("new-secret").textContent`)
	if !strings.HasPrefix(secret, "sgt_") {
		t.Fatalf("the new token's secret: %q", secret)
	}
	if status, _ := h.s.APIAs(t, secret, "GET", "/api/v1/images", nil); status != http.StatusOK {
		t.Errorf("the console's new token: %d", status)
	}
	b.open("/tokens", "")
	if strings.Contains(b.text(), secret) {
		t.Error("the token's secret is shown again")
	}

	// An admin adds an exception to the pipeline's policy, then expires it
	// early: each is a new version of the pipeline.
	b.open("/policies", "")
	b.within(30*time.Second, "fill the exception", func(ctx contextT) error {
		for sel, v := range map[string]string{"#x-id-" + name: "CVE-2023-45853", "#x-pkg-" + name: "zlib1g", "#x-why-" + name: "minizip is not built", "#x-exp-" + name: time.Now().AddDate(0, 1, 0).Format("2006-01-02")} {
			if err := sendKeys(ctx, sel, v); err != nil {
				return err
			}
		}
		return nil
	})
	b.click("form[action='/pipelines/" + name + "/exceptions'] button")
	b.check("policies-exception")
	b.waitText(10*time.Second, "exception added", "minizip is not built")
	b.click("form[action='/pipelines/" + name + "/exceptions/expire'] button")
	b.waitText(10*time.Second, "exception expired", "(expired)")
	var def pipeline.Definition
	h.decode(h.api("GET", "/api/v1/pipelines/"+name, nil, http.StatusOK), &def)
	if ex := def.Approval.Policy.Exceptions; def.Version != 3 || len(ex) != 1 || ex[0].ID != "CVE-2023-45853" || ex[0].Package != "zlib1g" || ex[0].Expires == "" {
		t.Errorf("the pipeline after the console's changes: version %d, exceptions %+v", def.Version, def.Approval.Policy.Exceptions)
	}

	// The check itself: axe does see a field without a label.
	eval[bool](b, `document.querySelector("main").insertAdjacentHTML("beforeend", "<input type=text id=unlabelled>"); true`)
	found := false
	for _, v := range b.axeViolations() {
		found = found || v.ID == "label" && (v.Impact == "serious" || v.Impact == "critical")
	}
	if !found {
		t.Error("axe did not report a field without a label: the accessibility check checks nothing")
	}

	// For the README: the pipeline page and the findings page.
	if os.Getenv("SCANGATE_DOCS_SCREENSHOTS") != "" {
		for _, s := range []struct{ path, file string }{{"/pipelines", "console-pipelines.png"}, {findingsPage, "console-findings.png"}} {
			b.open(s.path, "")
			var data []byte
			b.within(30*time.Second, "screenshot", func(ctx contextT) (err error) {
				data, err = chromedp.Run(ctx, chromedp.CaptureScreenshot()) // the window, not the whole page
				return err
			})
			if err := os.WriteFile(filepath.Join("..", "..", "docs", s.file), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func findingsDownload(findingsPage, format string) string {
	return strings.Replace(findingsPage, "/findings?", "/findings/download?format="+format+"&", 1)
}
