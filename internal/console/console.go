// Package console serves scangate's web console at /: server-rendered HTML
// pages of pipelines and their executions, approvals, repositories, images
// and findings, clusters, services and tasks, events and rules, policies
// and tokens.
//
// Every page is readable without JavaScript. Two small vendored scripts
// (htmx and its server-sent-events extension, embedded with the templates
// and the stylesheet: no CDN, no build step) refresh the parts of a page
// that change as events are logged, and a few lines of the console's own
// sort tables and show times in the viewer's zone.
//
// People log in with a token; the session (auth.Sessions, in the database,
// so that every replica knows it) is named by an HttpOnly, SameSite=Strict
// cookie (Secure under TLS). The token is read again at every request, so
// a revoked or expired token ends its sessions; every form carries the session's CSRF token,
// checked on every POST; and each page and action needs the role its API
// route needs (package auth), so a reader sees no Review button and cannot
// post one either.
package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/scanner"
	"github.com/scangate/scangate/internal/source"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// MaxForm is the most bytes a form the console receives may have.
const MaxForm = 64 << 10

// Deps are the services the console shows and acts through: the same ones
// the API uses.
type Deps struct {
	// Results reads images and their scans.
	Results   *scanner.Results
	Tokens    *auth.Tokens
	Bus       *events.Bus
	Pipelines *pipeline.Service
	// Heads resolves a pipeline's branch head, for "Release change".
	Heads func(context.Context, *pipeline.Definition) (string, error)
	// Repos are the hosted git repositories (commit authors and messages).
	Repos  *source.Repos
	Deploy *deploy.Controller
	// Images reads stored images' configurations, for the Dockerfile
	// instruction that made each layer; nil leaves it out.
	Images ImageSource
	// Logger receives the audit lines of logins and changes.
	Logger *slog.Logger
	// Version is scangate's version, shown in the footer and written in
	// downloaded reports.
	Version string
	// SessionTTL ends a session this long after login (12 hours).
	SessionTTL time.Duration
	// LivePoll is how often the live stream looks for new events (1 s).
	LivePoll time.Duration
	// WriteTimeout bounds each write of the live stream (60 s).
	WriteTimeout time.Duration
}

// ImageSource reads an image stored in scangate's registry.
type ImageSource interface {
	Image(ctx context.Context, repository, digest string) (v1.Image, error)
}

// Console is the console's handler.
type Console struct {
	Deps
	pages    map[string]*template.Template
	sessions *auth.Sessions
	mux      *http.ServeMux
	commits  *commitCache
	history  *historyCache
}

// New returns the console. It fails only if its embedded templates do not
// parse, which the package's tests catch.
func New(d Deps) (*Console, error) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.SessionTTL <= 0 {
		d.SessionTTL = 12 * time.Hour
	}
	if d.LivePoll <= 0 {
		d.LivePoll = time.Second
	}
	if d.WriteTimeout <= 0 {
		d.WriteTimeout = time.Minute
	}
	c := &Console{Deps: d, sessions: auth.NewSessions(d.Tokens), commits: newCommitCache(4096), history: &historyCache{m: map[string][]string{}}}
	if err := c.parse(); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

func (c *Console) parse() error {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	c.pages = map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimPrefix(n, "templates/")
		if base == "layout.html" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("console template %s: %w", base, err)
		}
		c.pages[strings.TrimSuffix(base, ".html")] = t
	}
	return nil
}

func (c *Console) routes() {
	mux := http.NewServeMux()
	assets, _ := fs.Sub(assetFS, "assets")
	static := http.StripPrefix("/assets/", http.FileServerFS(assets))
	mux.Handle("GET /assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		static.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET "+auth.LoginPath, c.loginPage)
	mux.HandleFunc("POST "+auth.LoginPath, c.login)
	mux.Handle("POST /logout", c.action(auth.RoleReader, c.logout))
	mux.Handle("GET /{$}", c.page(auth.RoleReader, func(w http.ResponseWriter, r *http.Request, _ *session) {
		http.Redirect(w, r, "/pipelines", http.StatusSeeOther)
	}))

	mux.Handle("GET /pipelines", c.page(auth.RoleReader, c.pipelinesPage))
	mux.Handle("GET /pipelines/{name}", c.page(auth.RoleReader, c.pipelinePage))
	mux.Handle("POST /pipelines/{name}/start", c.action(auth.RoleAdmin, c.startExecution))
	mux.Handle("GET /executions/{id}", c.page(auth.RoleReader, c.executionPage))
	mux.Handle("GET /executions/{id}/log", c.page(auth.RoleReader, c.buildLog))
	mux.Handle("POST /executions/{id}/stop", c.action(auth.RoleAdmin, c.stopExecution))
	mux.Handle("POST /executions/{id}/review", c.action(auth.RoleApprover, c.review))

	mux.Handle("GET /repositories", c.page(auth.RoleReader, c.repositoriesPage))
	mux.Handle("GET /images", c.page(auth.RoleReader, c.imagesPage))
	mux.Handle("GET /findings", c.page(auth.RoleReader, c.findingsPage))
	mux.Handle("GET /findings/download", c.page(auth.RoleReader, c.download))
	mux.Handle("GET /vulnerabilities/{id}", c.page(auth.RoleReader, c.vulnerabilityPage))

	if c.Deploy != nil {
		mux.Handle("GET /clusters", c.page(auth.RoleReader, c.clustersPage))
		mux.Handle("GET /clusters/{cluster}/services/{service}", c.page(auth.RoleReader, c.servicePage))
		mux.Handle("POST /clusters/{cluster}/services/{service}/desired-count", c.action(auth.RoleDeployer, c.setDesiredCount))
		mux.Handle("GET /tasks/{id}", c.page(auth.RoleReader, c.taskPage))
		mux.Handle("GET /task-definitions/{ref}", c.page(auth.RoleReader, c.taskDefinitionPage))
	}

	mux.Handle("GET /events", c.page(auth.RoleReader, c.eventsPage))
	mux.Handle("GET /rules", c.page(auth.RoleReader, c.rulesPage))
	mux.Handle("POST /rules/test", c.action(auth.RoleReader, c.testPattern))
	mux.Handle("GET /dead-letters", c.page(auth.RoleReader, c.deadLettersPage))
	mux.Handle("POST /dead-letters/replay", c.action(auth.RoleAdmin, c.replayDeadLetters))
	mux.Handle("GET /policies", c.page(auth.RoleReader, c.policiesPage))
	mux.Handle("POST /pipelines/{name}/exceptions", c.action(auth.RoleAdmin, c.addException))
	mux.Handle("POST /pipelines/{name}/exceptions/expire", c.action(auth.RoleAdmin, c.expireException))
	mux.Handle("GET /tokens", c.page(auth.RoleAdmin, c.tokensPage))
	mux.Handle("POST /tokens", c.action(auth.RoleAdmin, c.createToken))
	mux.Handle("POST /tokens/{name}/revoke", c.action(auth.RoleAdmin, c.revokeToken))
	mux.Handle("GET /live", c.page(auth.RoleReader, c.live))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, nil, http.StatusNotFound, fmt.Errorf("no such page: %s", r.URL.Path))
	})
	c.mux = mux
}

// ServeHTTP serves the console, with headers that keep its pages out of
// frames and caches and let only its own scripts and styles run.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/assets/") {
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

// view is what every page's template gets.
type view struct {
	Title   string
	Nav     string // the nav entry to mark current
	Session *session
	Flash   string
	// Error is shown instead of the page's content.
	Error string
	Data  any
	// Secure says the page was served over TLS.
	Secure bool
}

// Can reports whether the viewer's role allows role's actions, so that a
// page shows only the buttons its viewer may press.
func (v *view) Can(role string) bool {
	return v.Session != nil && v.Session.Role.Allows(auth.Role(role))
}

// CSRF is the token every form of the page carries.
func (v *view) CSRF() string {
	if v.Session == nil {
		return ""
	}
	return v.Session.CSRF
}

// render writes page name with data; a template error is a 500, written
// before any byte of the page leaves.
func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, status int, name string, v *view) {
	t := c.pages[name]
	if t == nil {
		c.Logger.Error("console: no template", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	v.Session = s
	v.Secure = r.TLS != nil
	if v.Flash == "" {
		v.Flash = flash(r, s)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		c.Logger.Error("console: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail shows an error page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, status int, err error) {
	if status >= 500 {
		c.Logger.Error("console", "path", r.URL.Path, "err", err)
	}
	c.render(w, r, s, status, "error", &view{Title: http.StatusText(status), Error: err.Error()})
}

// statusOf maps the services' errors to HTTP statuses.
func statusOf(err error) int {
	switch {
	case errors.Is(err, pipeline.ErrNoPipeline), errors.Is(err, pipeline.ErrNoExecution), errors.Is(err, pipeline.ErrNoApproval),
		errors.Is(err, deploy.ErrNotFound), errors.Is(err, events.ErrNoRule), errors.Is(err, source.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, pipeline.ErrDecided), errors.Is(err, pipeline.ErrNotRunning), errors.Is(err, pipeline.ErrPolicyDecides),
		errors.Is(err, pipeline.ErrNoOverride), errors.Is(err, deploy.ErrExists), errors.Is(err, auth.ErrExists):
		return http.StatusConflict
	case errors.Is(err, pipeline.ErrBadToken), errors.Is(err, pipeline.ErrTwoPerson), errors.Is(err, deploy.ErrRefused):
		return http.StatusForbidden
	case errors.Is(err, pipeline.ErrBadAnswer), errors.Is(err, deploy.ErrInvalid), errors.Is(err, errBadInput):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// errBadInput marks a form or query the console cannot use.
var errBadInput = errors.New("bad input")

func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadInput, fmt.Sprintf(format, args...))
}

// audit logs a change and who made it, as the API's audit lines do.
func (c *Console) audit(r *http.Request, s *session, action string, args ...any) {
	c.Logger.Info("audit: "+action, append([]any{"token", s.TokenName, "via", "console", "client", r.RemoteAddr}, args...)...)
}
