package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/pipeline"
)

// stageOrder is the order CodePipeline draws an execution's stages in.
var stageOrder = []string{pipeline.StageSource, pipeline.StageBuild, pipeline.StageApproval, pipeline.StageDeploy}

// execRow is an execution as the lists show it.
type execRow struct {
	*pipeline.Execution
	Author, Subject string
}

type pipelineRow struct {
	Def  *pipeline.Definition
	Last *pipeline.Execution
	// Boxes are Last's stages in CodePipeline's order, with the stages it
	// did not reach yet as empty boxes.
	Boxes []pipeline.Stage
}

func boxes(ex *pipeline.Execution) []pipeline.Stage {
	out := make([]pipeline.Stage, 0, len(stageOrder))
	for _, name := range stageOrder {
		st := pipeline.Stage{Name: name, Status: "NotStarted"}
		if ex != nil {
			for _, s := range ex.Stages {
				if s.Name == name {
					st = s
				}
			}
		}
		out = append(out, st)
	}
	return out
}

// definitions returns the pipelines, by name, as stored (with secrets:
// only for the console's own use, such as finding commits).
func (c *Console) definitions(ctx context.Context) ([]*pipeline.Definition, map[string]*pipeline.Definition, error) {
	defs, err := c.Pipelines.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	m := make(map[string]*pipeline.Definition, len(defs))
	for _, d := range defs {
		m[d.Name] = d
	}
	return defs, m, nil
}

// shown is a definition as the viewer may see it, as the API shows it.
func shown(s *session, d *pipeline.Definition) *pipeline.Definition {
	if s.Role.Allows(auth.RoleAdmin) {
		return d.Redacted()
	}
	return d.ForReaders()
}

// withCommits adds each execution's commit author and subject.
func (c *Console) withCommits(ctx context.Context, exs []*pipeline.Execution, defs map[string]*pipeline.Definition) []execRow {
	rows := make([]execRow, len(exs))
	missing := map[string][]string{} // pipeline -> shas
	for i, ex := range exs {
		rows[i].Execution = ex
		if ci, ok := c.commits.get(ex.Commit); ok {
			rows[i].Author, rows[i].Subject = ci.Author, ci.Subject
		} else {
			missing[ex.Pipeline] = append(missing[ex.Pipeline], ex.Commit)
		}
	}
	if c.Repos == nil {
		return rows
	}
	for name, shas := range missing {
		d := defs[name]
		if d == nil {
			continue
		}
		got, err := c.Repos.Commits(ctx, d.Source.Repository, d.Source.URL, shas)
		if err != nil {
			c.Logger.Debug("console: commits", "pipeline", name, "err", err)
			continue
		}
		for sha, ci := range got {
			c.commits.put(sha, commitInfo{Author: ci.Author, Subject: ci.Subject})
		}
	}
	for i := range rows {
		if ci, ok := c.commits.get(rows[i].Commit); ok {
			rows[i].Author, rows[i].Subject = ci.Author, ci.Subject
		}
	}
	return rows
}

type pipelinesData struct {
	Pipelines  []pipelineRow
	Executions []execRow
}

func (c *Console) pipelinesPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	defs, byName, err := c.definitions(ctx)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	exs, err := c.Pipelines.Executions(ctx, "", 50)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	var data pipelinesData
	for _, d := range defs {
		row := pipelineRow{Def: shown(s, d)}
		for _, ex := range exs {
			if ex.Pipeline == d.Name {
				row.Last = ex
				break
			}
		}
		if row.Last == nil {
			// Older than the page: ask for the pipeline's own newest.
			if last, err := c.Pipelines.Executions(ctx, d.Name, 1); err == nil && len(last) > 0 {
				row.Last = last[0]
			}
		}
		if row.Last != nil {
			full, err := c.Pipelines.Execution(ctx, row.Last.ID)
			if err != nil {
				c.fail(w, r, s, statusOf(err), err)
				return
			}
			row.Last = full
		}
		row.Boxes = boxes(row.Last)
		data.Pipelines = append(data.Pipelines, row)
	}
	data.Executions = c.withCommits(ctx, exs, byName)
	c.render(w, r, s, http.StatusOK, "pipelines", &view{Title: "Pipelines", Nav: "pipelines", Data: data})
}

type pipelineData struct {
	Def        *pipeline.Definition
	Last       *pipeline.Execution
	Boxes      []pipeline.Stage
	Executions []execRow
}

func (c *Console) pipelinePage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	d, err := c.Pipelines.Get(ctx, r.PathValue("name"), 0)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	exs, err := c.Pipelines.Executions(ctx, d.Name, 200)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	data := pipelineData{Def: shown(s, d), Executions: c.withCommits(ctx, exs, map[string]*pipeline.Definition{d.Name: d})}
	if len(exs) > 0 {
		if data.Last, err = c.Pipelines.Execution(ctx, exs[0].ID); err != nil {
			c.fail(w, r, s, statusOf(err), err)
			return
		}
	}
	data.Boxes = boxes(data.Last)
	c.render(w, r, s, http.StatusOK, "pipeline", &view{Title: "Pipeline " + d.Name, Nav: "pipelines", Data: data})
}

// startExecution is "Release change": the branch head, built again, as the
// API's POST /pipelines/{name}/executions without a commit.
func (c *Console) startExecution(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	name := r.PathValue("name")
	d, err := c.Pipelines.Get(ctx, name, 0)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	if c.Heads == nil {
		c.fail(w, r, s, http.StatusServiceUnavailable, errors.New("this server cannot read branch heads"))
		return
	}
	commit, err := c.Heads(ctx, d)
	if err != nil {
		c.fail(w, r, s, http.StatusBadRequest, fmt.Errorf("branch %s of pipeline %s: %w", d.Source.Branch, name, err))
		return
	}
	id, err := c.Pipelines.Start(ctx, name, pipeline.Trigger{Kind: "manual", Commit: commit, Ref: "refs/heads/" + d.Source.Branch, By: "token:" + s.TokenName})
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	c.audit(r, s, "execution started", "pipeline", name, "execution", id, "commit", commit)
	c.redirect(w, r, s, "/executions/"+id, "Release change: execution started.", "")
}

func (c *Console) stopExecution(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	reason := "stopped by token:" + s.TokenName
	if why := strings.TrimSpace(r.PostForm.Get("reason")); why != "" {
		reason += ": " + why
	}
	if err := c.Pipelines.Stop(r.Context(), id, reason); err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	c.audit(r, s, "execution stopped", "execution", id)
	c.redirect(w, r, s, "/executions/"+id, "Execution stopped.", "")
}

type executionData struct {
	Ex     *pipeline.Execution
	Commit execRow
	Boxes  []pipeline.Stage
	Log    string
	// LogCut says Log is the end of a longer log.
	LogCut bool
	// CanApprove, CanReject and CanOverride say which answers the
	// approval takes now (the viewer's role aside).
	CanApprove, CanReject, CanOverride bool
	// FindingsURL is the console's page of the image's findings.
	FindingsURL string
}

// maxLogShown is the most of a build log a page shows; the whole log is at
// /executions/{id}/log.
const maxLogShown = 64 << 10

func (c *Console) executionPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	ex, err := c.Pipelines.Execution(ctx, r.PathValue("id"))
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	data := executionData{Ex: ex, Boxes: boxes(ex)}
	var defs map[string]*pipeline.Definition
	if d, err := c.Pipelines.Get(ctx, ex.Pipeline, ex.Version); err == nil {
		defs = map[string]*pipeline.Definition{d.Name: d}
	}
	data.Commit = c.withCommits(ctx, []*pipeline.Execution{ex}, defs)[0]
	log, err := c.Pipelines.BuildLog(ctx, ex.ID)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	if len(log) > maxLogShown {
		log, data.LogCut = log[len(log)-maxLogShown:], true
	}
	data.Log = log
	if a := ex.Approval; a != nil {
		pending := a.Status == pipeline.StatePending
		data.CanReject = pending
		data.CanApprove = pending && a.Mode != pipeline.ModePolicy && a.Policy != nil &&
			(a.Mode == pipeline.ModePerson || a.Policy.Result == pipeline.VerdictPassed)
		data.CanOverride = a.Status == pipeline.StateRejected && a.Policy != nil && a.Policy.Result == pipeline.VerdictFailed && a.DecidedBy == pipeline.Evaluator
		if a.ImageDigest != "" {
			data.FindingsURL = "/findings?image=" + url.QueryEscape(a.Repository+"@"+a.ImageDigest)
		}
	}
	if data.FindingsURL == "" && ex.ImageDigest != "" {
		repo := ex.ImageURI
		if i := strings.Index(repo, "/"); i >= 0 {
			repo = repo[i+1:]
		}
		repo, _, _ = strings.Cut(repo, "@")
		data.FindingsURL = "/findings?image=" + url.QueryEscape(repo+"@"+ex.ImageDigest)
	}
	c.render(w, r, s, http.StatusOK, "execution", &view{Title: "Execution " + shortSHA(ex.ID) + " of " + ex.Pipeline, Nav: "pipelines", Data: data})
}

// buildLog is an execution's whole build log, as text.
func (c *Console) buildLog(w http.ResponseWriter, r *http.Request, s *session) {
	log, err := c.Pipelines.BuildLog(r.Context(), r.PathValue("id"))
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, log)
}

// review records a person's answer through the very call the API's POST
// /executions/{id}/approval makes. The approval request's token, which the
// API makes its caller fetch and present, is fetched here on the server
// for the approver: it never reaches the page.
func (c *Console) review(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	id := r.PathValue("id")
	decision := r.PostForm.Get("decision")
	if decision != pipeline.ActionApprove && decision != pipeline.ActionReject && decision != pipeline.ActionOverride {
		c.fail(w, r, s, http.StatusBadRequest, badInput(`decision: "approve", "reject" or "override"`))
		return
	}
	comment := strings.TrimSpace(r.PostForm.Get("comment"))
	if len(comment) > 4096 {
		c.fail(w, r, s, http.StatusBadRequest, badInput("the comment is over 4096 bytes"))
		return
	}
	a, err := c.Pipelines.ApprovalFor(ctx, id)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	ans := pipeline.Answer{Action: decision, Token: a.Token, By: "token:" + s.TokenName, Comment: comment}
	expires := strings.TrimSpace(r.PostForm.Get("expires"))
	if expires != "" {
		t, err := pipeline.ParseExpiry(expires)
		if err != nil {
			c.fail(w, r, s, http.StatusBadRequest, badInput("%v", err))
			return
		}
		ans.Expires = t
	}
	decided, err := c.Pipelines.Respond(ctx, id, ans)
	if err != nil {
		c.Logger.Warn("audit: approval answer refused", "token", s.TokenName, "via", "console", "execution", id, "decision", decision, "err", err)
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	c.audit(r, s, "approval answered", "execution", id, "approval", decided.ID, "decision", decision, "status", decided.Status, "comment", comment, "expires", expires)
	c.redirect(w, r, s, "/executions/"+id, "Your answer is recorded: "+decided.Status+".", "")
}
