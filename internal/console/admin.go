package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/events/pattern"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/policy"
	"github.com/scangate/scangate/internal/scan"
)

type eventRow struct {
	events.Logged
	Detail string // indented JSON
}

type eventsData struct {
	Type, Since, Until string
	Types              []string
	Events             []eventRow
	OlderURL           string
}

// parseTimeInput reads a time from a form: RFC 3339, a datetime-local
// value (taken as UTC) or a date.
func parseTimeInput(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, badInput("time %q: want 2026-12-04, 2026-12-04T10:00 or RFC 3339", s)
}

func (c *Console) eventsPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	q := r.URL.Query()
	data := eventsData{Type: q.Get("type"), Since: q.Get("since"), Until: q.Get("until")}
	since, err := parseTimeInput(data.Since)
	if err != nil {
		c.fail(w, r, s, http.StatusBadRequest, err)
		return
	}
	until, err := parseTimeInput(data.Until)
	if err != nil {
		c.fail(w, r, s, http.StatusBadRequest, err)
		return
	}
	var before int64
	if b := q.Get("before"); b != "" {
		if before, err = strconv.ParseInt(b, 10, 64); err != nil || before < 0 {
			c.fail(w, r, s, http.StatusBadRequest, badInput("before %q: want an event's sequence number", b))
			return
		}
	}
	const limit = 100
	list, err := c.Bus.Recent(ctx, events.LogFilter{DetailType: data.Type, Since: since, Until: until, Before: before, Limit: limit})
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	if data.Types, err = c.Bus.DetailTypes(ctx); err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	for _, l := range list {
		var buf bytes.Buffer
		if json.Indent(&buf, l.Event.Detail, "", "  ") != nil {
			buf.Reset()
			buf.Write(l.Event.Detail)
		}
		data.Events = append(data.Events, eventRow{Logged: l, Detail: buf.String()})
	}
	if len(list) == limit {
		v := url.Values{"type": {data.Type}, "since": {data.Since}, "until": {data.Until}, "before": {strconv.FormatInt(list[len(list)-1].Seq, 10)}}
		data.OlderURL = "/events?" + v.Encode()
	}
	c.render(w, r, s, http.StatusOK, "events", &view{Title: "Events", Nav: "events", Data: data})
}

type rulesData struct {
	Rules []ruleRow
	// The pattern tester's input and answer.
	Pattern, Event string
	Tested         bool
	Matched        bool
	TestError      string
}

type ruleRow struct {
	events.Rule
	PatternText string
}

func (c *Console) rules(r *http.Request, s *session) ([]ruleRow, error) {
	list, err := c.Bus.Rules(r.Context())
	if err != nil {
		return nil, err
	}
	// As the API shows them: secrets never, a webhook's URL whole to
	// admins only (chat services put their token in it).
	full := s.Role.Allows(auth.RoleAdmin)
	out := make([]ruleRow, 0, len(list))
	for _, ru := range list {
		for j := range ru.Targets {
			t := &ru.Targets[j]
			if t.Secret != "" {
				t.Secret = "********"
			}
			if !full {
				t.Webhook = events.RedactURL(t.Webhook)
			}
		}
		var buf bytes.Buffer
		if json.Indent(&buf, ru.Pattern, "", "  ") != nil {
			buf.Reset()
			buf.Write(ru.Pattern)
		}
		out = append(out, ruleRow{Rule: ru, PatternText: buf.String()})
	}
	return out, nil
}

func (c *Console) rulesPage(w http.ResponseWriter, r *http.Request, s *session) {
	rules, err := c.rules(r, s)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	data := rulesData{Rules: rules}
	// A rule's pattern, to start the tester from.
	if name := r.URL.Query().Get("test"); name != "" {
		for _, ru := range rules {
			if ru.Name == name {
				data.Pattern = ru.PatternText
			}
		}
	}
	c.render(w, r, s, http.StatusOK, "rules", &view{Title: "Rules", Nav: "rules", Data: data})
}

// testPattern is EventBridge's sandbox: a pattern and an event in, whether
// it matches out. It changes nothing; it is a POST for the size of its
// input.
func (c *Console) testPattern(w http.ResponseWriter, r *http.Request, s *session) {
	rules, err := c.rules(r, s)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	data := rulesData{Rules: rules, Pattern: r.PostForm.Get("pattern"), Event: r.PostForm.Get("event"), Tested: true}
	data.Matched, err = matchPattern([]byte(data.Pattern), []byte(data.Event))
	status := http.StatusOK
	if err != nil {
		data.TestError = err.Error()
		status = http.StatusBadRequest
	}
	c.render(w, r, s, status, "rules", &view{Title: "Rules", Nav: "rules", Data: data})
}

// matchPattern reports whether pattern matches event, as `scangate rules
// test` (EventBridge's TestEventPattern) answers: the pattern language's
// matcher, with its size and depth limits, on an event whose envelope
// EventBridge would take.
func matchPattern(patternJSON, event []byte) (bool, error) {
	p, err := pattern.Compile(patternJSON)
	if err != nil {
		return false, fmt.Errorf("pattern: %w", err)
	}
	if err := events.CheckEvent(event); err != nil {
		return false, err
	}
	ok, err := p.Match(event)
	if err != nil {
		return false, fmt.Errorf("event: %w", err)
	}
	return ok, nil
}

func (c *Console) deadLettersPage(w http.ResponseWriter, r *http.Request, s *session) {
	list, err := c.Bus.DeadLetters(r.Context(), false)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	full := s.Role.Allows(auth.RoleAdmin)
	for i := range list {
		if list[i].Target.Secret != "" {
			list[i].Target.Secret = "********"
		}
		if !full {
			list[i].Target.Webhook = events.RedactURL(list[i].Target.Webhook)
		}
	}
	c.render(w, r, s, http.StatusOK, "deadletters", &view{Title: "Dead letters", Nav: "events", Data: list})
}

func (c *Console) replayDeadLetters(w http.ResponseWriter, r *http.Request, s *session) {
	var ids []int64
	for _, v := range r.PostForm["id"] {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			c.fail(w, r, s, http.StatusBadRequest, badInput("dead letter %q: want its number", v))
			return
		}
		ids = append(ids, id)
	}
	if len(ids) > 1000 {
		c.fail(w, r, s, http.StatusBadRequest, badInput("at most 1000 dead letters at once"))
		return
	}
	n, refused, err := c.Bus.ReplayDeadLetters(r.Context(), ids)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	c.audit(r, s, "dead letters replayed", "ids", ids, "replayed", n, "refused", len(refused))
	msg := fmt.Sprintf("%d dead letters replayed.", n)
	for _, rf := range refused {
		msg += fmt.Sprintf(" #%d refused: %s.", rf.ID, rf.Reason)
	}
	c.redirect(w, r, s, "/dead-letters", msg, "")
}

type policyRow struct {
	Def *pipeline.Definition
	// Exceptions are the policy's exceptions with what each suppresses in
	// the image of the pipeline's last execution.
	Exceptions []exceptionRow
	Image      string
}

type exceptionRow struct {
	pipeline.ExceptionSpec
	Expired    bool
	Suppresses []string
}

func (c *Console) policiesPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	defs, err := c.Pipelines.List(ctx)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	var rows []policyRow
	now := time.Now()
	for _, d := range defs {
		row := policyRow{Def: shown(s, d)}
		// Which findings each exception suppresses today: the policy
		// applied to the newest image the pipeline built.
		var findings map[int][]string
		if exs, err := c.Pipelines.Executions(ctx, d.Name, 20); err == nil {
			for _, ex := range exs {
				if ex.ImageDigest == "" {
					continue
				}
				repo := d.Build.Repository
				if rep, err := c.Results.Findings(ctx, repo+"@"+ex.ImageDigest); err == nil {
					row.Image = repo + "@" + ex.ImageDigest
					findings = suppressedBy(rep, d, now)
				}
				break
			}
		}
		for i, e := range d.Approval.Policy.Exceptions {
			er := exceptionRow{ExceptionSpec: e}
			if e.Expires != "" {
				if t, err := pipeline.ParseExpiry(e.Expires); err == nil && !t.After(now) {
					er.Expired = true
				}
			}
			er.Suppresses = findings[i]
			row.Exceptions = append(row.Exceptions, er)
		}
		rows = append(rows, row)
	}
	c.render(w, r, s, http.StatusOK, "policies", &view{Title: "Policies and exceptions", Nav: "policies", Data: rows})
}

// suppressedBy applies each of d's exceptions alone to a report and names,
// per exception (by its place in the list), the findings it suppresses now.
func suppressedBy(rep *scan.Report, d *pipeline.Definition, now time.Time) map[int][]string {
	out := map[int][]string{}
	p, err := d.Policy()
	if err != nil || len(p.Ignores) != len(d.Approval.Policy.Exceptions) {
		return out
	}
	for i, ig := range p.Ignores {
		r := *rep
		r.Findings = slices.Clone(rep.Findings) // Evaluate marks the findings it suppresses
		policy.Evaluate(&r, policy.Policy{Ignores: []policy.Ignore{ig}}, now)
		for _, f := range r.Findings {
			if f.Suppressed == nil || f.Suppressed.Kind != policy.KindIgnoreFile || f.Package < 0 || f.Package >= len(r.Packages) {
				continue
			}
			pk := r.Packages[f.Package]
			out[i] = append(out[i], f.ID+" in "+pk.Name+" "+pk.Version+" ("+f.Severity+")")
		}
	}
	return out
}

type tokensData struct {
	Tokens []auth.Token
	Roles  []auth.Role
	// Secret is a token just made, shown this once.
	Secret, SecretName string
}

func (c *Console) tokensPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.showTokens(w, r, s, http.StatusOK, "", "")
}

func (c *Console) showTokens(w http.ResponseWriter, r *http.Request, s *session, status int, name, secret string) {
	list, err := c.Tokens.List(r.Context())
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	c.render(w, r, s, status, "tokens", &view{Title: "Tokens", Nav: "tokens", Data: tokensData{Tokens: list, Roles: auth.Roles, Secret: secret, SecretName: name}})
}

func (c *Console) createToken(w http.ResponseWriter, r *http.Request, s *session) {
	name := strings.TrimSpace(r.PostForm.Get("name"))
	role, err := auth.ParseRole(r.PostForm.Get("role"))
	if err != nil {
		c.fail(w, r, s, http.StatusBadRequest, badInput("%v", err))
		return
	}
	var expires time.Time
	if e := strings.TrimSpace(r.PostForm.Get("expires")); e != "" {
		if expires, err = pipeline.ParseExpiry(e); err != nil {
			c.fail(w, r, s, http.StatusBadRequest, badInput("%v", err))
			return
		}
	}
	secret, tok, err := c.Tokens.CreateExpiring(r.Context(), name, role, expires)
	if err != nil {
		status := statusOf(err)
		if status == http.StatusInternalServerError {
			status = http.StatusBadRequest
		}
		c.fail(w, r, s, status, err)
		return
	}
	c.audit(r, s, "token created", "name", tok.Name, "role", tok.Role)
	// The secret is shown in this answer only: it is not stored, and the
	// page is not cached (Cache-Control: no-store).
	c.showTokens(w, r, s, http.StatusCreated, tok.Name, secret)
}

func (c *Console) revokeToken(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	if err := c.Tokens.Revoke(r.Context(), name); err != nil {
		c.fail(w, r, s, http.StatusNotFound, err)
		return
	}
	c.audit(r, s, "token revoked", "name", name)
	c.redirect(w, r, s, "/tokens", "Token "+name+" revoked.", "")
}

// changeExceptions stores a new version of a pipeline with its exceptions
// changed by edit, as `pipeline put` would. The form names the version it
// was made from: a pipeline changed since is refused, so that no change is
// lost.
func (c *Console) changeExceptions(w http.ResponseWriter, r *http.Request, s *session, what string, edit func(*pipeline.Definition) error) {
	ctx := r.Context()
	name := r.PathValue("name")
	d, err := c.Pipelines.Get(ctx, name, 0)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	if v := r.PostForm.Get("version"); v != strconv.Itoa(d.Version) {
		c.fail(w, r, s, http.StatusConflict, fmt.Errorf("pipeline %s changed (version %d) since the page was shown (version %s): reload it", name, d.Version, v))
		return
	}
	if err := edit(d); err != nil {
		c.fail(w, r, s, http.StatusBadRequest, err)
		return
	}
	if _, err := d.Policy(); err != nil {
		c.fail(w, r, s, http.StatusBadRequest, badInput("%v", err))
		return
	}
	v, err := c.Pipelines.Put(ctx, d)
	if err != nil {
		status := statusOf(err)
		if status == http.StatusInternalServerError {
			status = http.StatusBadRequest
		}
		c.fail(w, r, s, status, err)
		return
	}
	c.audit(r, s, what, "pipeline", name, "version", v)
	c.redirect(w, r, s, "/policies", fmt.Sprintf("Pipeline %s: %s (version %d).", name, what, v), name)
}

// maxExceptions bounds a policy's exceptions made through the console.
const maxExceptions = 1000

func (c *Console) addException(w http.ResponseWriter, r *http.Request, s *session) {
	e := pipeline.ExceptionSpec{ID: strings.TrimSpace(r.PostForm.Get("id")), Package: strings.TrimSpace(r.PostForm.Get("package")),
		Reason: strings.TrimSpace(r.PostForm.Get("reason")), Expires: strings.TrimSpace(r.PostForm.Get("expires"))}
	c.changeExceptions(w, r, s, "exception added", func(d *pipeline.Definition) error {
		switch {
		case e.ID == "" || len(e.ID) > 128:
			return badInput("the vulnerability's id: 1 to 128 characters")
		case e.Reason == "" || len(e.Reason) > 1024:
			return badInput("say why (reason): 1 to 1024 characters")
		case len(e.Package) > 256:
			return badInput("the package: at most 256 characters")
		case len(d.Approval.Policy.Exceptions) >= maxExceptions:
			return badInput("pipeline %s has %d exceptions already", d.Name, maxExceptions)
		}
		if e.Expires != "" {
			t, err := pipeline.ParseExpiry(e.Expires)
			if err != nil {
				return badInput("%v", err)
			}
			e.Expires = t.UTC().Format(time.RFC3339)
		}
		d.Approval.Policy.Exceptions = append(d.Approval.Policy.Exceptions, e)
		return nil
	})
}

func (c *Console) expireException(w http.ResponseWriter, r *http.Request, s *session) {
	i, err := strconv.Atoi(r.PostForm.Get("index"))
	if err != nil {
		c.fail(w, r, s, http.StatusBadRequest, badInput("index %q: want the exception's place", r.PostForm.Get("index")))
		return
	}
	c.changeExceptions(w, r, s, "exception expired", func(d *pipeline.Definition) error {
		if i < 0 || i >= len(d.Approval.Policy.Exceptions) {
			return badInput("pipeline %s has no exception %d", d.Name, i+1)
		}
		d.Approval.Policy.Exceptions[i].Expires = time.Now().UTC().Format(time.RFC3339)
		return nil
	})
}
