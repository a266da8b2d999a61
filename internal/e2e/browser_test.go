package e2e

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// axe is axe-core's script (testdata/axe, MPL-2.0), injected into every page
// the browser tests visit; it is not part of scangate.
//
//go:embed testdata/axe/axe.min.js
var axeScript string

// browser is a headless Chromium driven by a test.
type browser struct {
	t         *testing.T
	ctx       context.Context
	base      string // http://127.0.0.1:PORT
	artifacts string
	shots     int
}

// newBrowser starts Debian's chromium, headless, with a profile of its own;
// a machine without it fails the test (.ci/run installs it).
func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("the console's tests need Debian's chromium (apt-get install chromium): ", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // as root, Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	dir := os.Getenv("SCANGATE_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	dir = filepath.Join(dir, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, ctx: ctx, base: base, artifacts: dir}
}

// within runs f with a deadline, so that a page that never shows what a
// step waits for fails the test instead of hanging it.
func (b *browser) within(d time.Duration, what string, f func(ctx context.Context) error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := f(ctx); err != nil {
		b.t.Fatalf("%s: %v\npage: %s", what, err, b.textNow())
	}
}

// textNow is the page's text, for failure messages.
func (b *browser) textNow() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.location.href + "\n" + document.body.innerText`))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(s) > 3000 {
		s = s[:3000] + "…"
	}
	return s
}

// open goes to path and checks the page: no serious accessibility
// violation, and a screenshot in the artifacts.
func (b *browser) open(path, shot string) {
	b.t.Helper()
	b.within(30*time.Second, "open "+path, func(ctx context.Context) error {
		if err := navigate(ctx, b.base+path); err != nil {
			return err
		}
		return chromedp.Do(ctx, chromedp.WaitReady(chromedp.CSS("main")))
	})
	b.check(shot)
}

// check runs axe on the page as it is and takes its screenshot.
func (b *browser) check(shot string) {
	b.t.Helper()
	b.axe()
	b.screenshot(shot)
}

// text is the page's text.
func (b *browser) text() string {
	b.t.Helper()
	var s string
	b.within(10*time.Second, "read the page", func(ctx context.Context) (err error) {
		s, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		return err
	})
	return s
}

// waitText waits until the page's text (which live updates change)
// contains every one of want.
func (b *browser) waitText(d time.Duration, want ...string) {
	b.t.Helper()
	js, _ := json.Marshal(want)
	b.within(d, fmt.Sprintf("wait for %q", want), func(ctx context.Context) error {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`%s.every(w => document.body.innerText.includes(w))`, js),
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0)))
		return err
	})
}

// eval runs JavaScript in the page and returns its value.
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	var v T
	b.within(30*time.Second, "evaluate "+firstLine(js), func(ctx context.Context) (err error) {
		v, err = chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
		return err
	})
	return v
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// axeViolation is what axe reports of a rule the page breaks.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target []any `json:"target"`
	} `json:"nodes"`
}

// axe runs axe-core's WCAG 2 A and AA rules on the page and fails the test
// on any serious or critical violation.
func (b *browser) axe() {
	b.t.Helper()
	vs := b.axeViolations()
	b.t.Logf("%s: axe: %d violations", b.location(), len(vs))
	for _, v := range vs {
		if v.Impact == "serious" || v.Impact == "critical" {
			var where []string
			for _, n := range v.Nodes {
				where = append(where, fmt.Sprint(n.Target...))
			}
			b.t.Errorf("%s: accessibility: %s (%s): %s at %s", b.location(), v.ID, v.Impact, v.Help, strings.Join(where, ", "))
		}
	}
}

func (b *browser) axeViolations() []axeViolation {
	b.t.Helper()
	if !eval[bool](b, `typeof axe !== "undefined"`) {
		eval[bool](b, axeScript+"\n;true")
	}
	out := eval[string](b, `axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}, resultTypes: ["violations"]})
		.then(r => JSON.stringify(r.violations))`)
	var vs []axeViolation
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		b.t.Fatalf("axe: %v: %s", err, out)
	}
	return vs
}

func (b *browser) location() string {
	b.t.Helper()
	return eval[string](b, `document.location.pathname + document.location.search`)
}

// screenshot writes the whole page as NN-name.png in the artifacts.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	if name == "" {
		return ""
	}
	var png []byte
	b.within(30*time.Second, "screenshot", func(ctx context.Context) (err error) {
		png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		return err
	})
	b.shots++
	path := filepath.Join(b.artifacts, fmt.Sprintf("%02d-%s.png", b.shots, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// login submits the login form with a token and returns the answer's
// status.
func (b *browser) login(token string) int64 {
	b.t.Helper()
	var status int64
	b.within(30*time.Second, "log in", func(ctx context.Context) error {
		if err := navigate(ctx, b.base+"/login"); err != nil {
			return err
		}
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("token"))); err != nil {
			return err
		}
		resp, err := chromedp.RunResponse(ctx, chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Submit(chromedp.ID("token")))
		if err == nil && resp != nil {
			status = resp.Status
		}
		return err
	})
	return status
}

// logout logs out with the header's button.
func (b *browser) logout() {
	b.t.Helper()
	b.within(30*time.Second, "log out", func(ctx context.Context) error {
		return chromedp.Do(ctx,
			chromedp.Click(chromedp.CSS("form.who button")),
			chromedp.WaitVisible(chromedp.ID("token")),
		)
	})
}

// click clicks what leads to another page (a link, a form's button) and
// returns the new page's HTTP status.
func (b *browser) click(sel string) int64 {
	b.t.Helper()
	var status int64
	b.within(30*time.Second, "click "+sel, func(ctx context.Context) error {
		resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
		if err == nil && resp != nil {
			status = resp.Status
		}
		return err
	})
	return status
}

type contextT = context.Context

func sendKeys(ctx context.Context, sel, text string) error {
	return chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(sel), text))
}

// pollJS waits until js is true in the page.
func pollJS(ctx context.Context, js string) error {
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0)))
	return err
}

// fetchIn makes a request from the page, with its cookies, as a script on
// it would, and returns the answer's status and text. body is the inside
// of a single-quoted JavaScript string, so it may splice values of the
// page in (' + document.querySelector(…).value + ').
func fetchIn(b *browser, path, method, body string) (int, string) {
	b.t.Helper()
	init := fmt.Sprintf(`{method: %q, redirect: "manual"}`, method)
	if method == "POST" {
		init = fmt.Sprintf(`{method: "POST", redirect: "manual", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: '%s'}`, body)
	}
	out := eval[string](b, fmt.Sprintf(`fetch(%q, %s).then(async r => JSON.stringify({status: r.status, text: await r.text()}))`, path, init))
	var res struct {
		Status int    `json:"status"`
		Text   string `json:"text"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		b.t.Fatalf("fetch %s: %v", path, err)
	}
	return res.Status, res.Text
}

// navigate loads url. Chromium drops a load when the machine's network
// changes, which the Docker Engine does as other tests make and remove
// their clusters' networks: a GET is then simply made again.
func navigate(ctx context.Context, url string) error {
	var err error
	for range 5 {
		if err = chromedp.Do(ctx, chromedp.Navigate(url)); err == nil || !strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}
