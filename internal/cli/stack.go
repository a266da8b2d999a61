package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/scanner"
	"github.com/scangate/scangate/internal/source"
	"github.com/scangate/scangate/internal/stack"
)

// The stack commands, up and down, make a server match a stack file (see
// package stack) through the REST API, as the CloudFormation template of
// the seed makes its resources.

const stackHelp = `

A stack file lists what an installation is made of: tokens for named roles,
hosted git repositories (optionally with initial content from a folder),
clusters, task definitions, services, event rules and their targets, and
pipelines with their approval policies and exceptions. See
examples/seed-walkthrough/stack.yaml. ${NAME} in a value is the parameter
NAME: --param NAME=VALUE, else its default in the file's parameters.

What up makes is recorded on the server under the stack's name (GET
/api/v1/stacks/NAME): down removes that and nothing else, and up never takes
over a resource of the same name that the stack did not make. up needs an
admin token.`

// stackFlags are the flags up and down share.
type stackFlags struct {
	sf     serverFlags
	file   string
	params []string
}

func (f *stackFlags) add(cmd *cobra.Command) {
	f.sf.add(cmd)
	cmd.Flags().StringVarP(&f.file, "file", "f", "", "the stack file (YAML)")
	cmd.Flags().StringArrayVar(&f.params, "param", nil, "NAME=VALUE: a parameter's value (repeatable)")
	_ = cmd.MarkFlagRequired("file")
}

func (f *stackFlags) read() (*stack.Stack, error) {
	params := map[string]string{}
	for _, p := range f.params {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--param %q: want NAME=VALUE", p)}
		}
		params[k] = v
	}
	st, err := stack.ReadFile(f.file, params)
	if err != nil {
		return nil, usageError{err}
	}
	return st, nil
}

func newUpCmd(g *globals) *cobra.Command {
	var f stackFlags
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "up -f STACK.yaml [--dry-run] [--param NAME=VALUE]...",
		Short: "Create or update what a stack file names (a client of the server)",
		Long: `Up prints a plan (what it creates, changes, deletes and leaves as it is),
then carries it out. A resource is changed only when its part of the stack
file changed since the last up, so a second up changes nothing, and what
was changed by other means since (a service's desired count, a task
definition's revision made by a deploy) stays as it is. Services start at
desired count 0 unless the file says otherwise. A token's secret is printed
once, when up creates it. A repository's content is pushed once, when up
creates it, after the pipelines, so that its first commit runs through them.
--dry-run prints the plan only.` + stackHelp + clientHelp,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := f.read()
			if err != nil {
				return err
			}
			c, err := g.apiClient(&f.sf)
			if err != nil {
				return err
			}
			b := &stackBackend{c: c, out: g.stdout}
			ctx := cmd.Context()
			rec, err := b.Record(ctx, st.Name)
			if err != nil {
				return err
			}
			live, err := stack.Observe(ctx, b, st, rec)
			if err != nil {
				return err
			}
			plan, err := stack.PlanUp(st, rec, live)
			if err != nil {
				return usageError{err}
			}
			plan.Print(g.stdout)
			if dryRun {
				return nil
			}
			return stack.Apply(ctx, b, plan, rec, g.stdout)
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan only")
	return cmd
}

func newDownCmd(g *globals) *cobra.Command {
	var f stackFlags
	var yes, purge bool
	cmd := &cobra.Command{
		Use:   "down -f STACK.yaml [--yes] [--purge]",
		Short: "Remove what up made for a stack (a client of the server)",
		Long: `Down removes every resource that up made for the stack file's stack, and
nothing else: a resource of the same name that the stack did not make stays.
It lists them and asks first, unless --yes. A service is deleted and its
tasks stopped before its cluster goes; a pipeline's executions in progress
are stopped first. Without --purge a pipeline's executions (their artifacts
and build logs) and the images it built stay; --purge removes them too.` + stackHelp + clientHelp,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := f.read()
			if err != nil {
				return err
			}
			c, err := g.apiClient(&f.sf)
			if err != nil {
				return err
			}
			b := &stackBackend{c: c, out: g.stdout}
			ctx := cmd.Context()
			rec, err := b.Record(ctx, st.Name)
			if err != nil {
				return err
			}
			if rec == nil {
				fmt.Fprintf(g.stdout, "stack %s: nothing recorded on %s: nothing to remove\n", st.Name, c.base)
				return nil
			}
			live, err := stack.Observe(ctx, b, nil, rec)
			if err != nil {
				return err
			}
			plan := stack.PlanDown(st.Name, rec, live)
			plan.Print(g.stdout)
			if purge {
				fmt.Fprintln(g.stdout, "--purge: the pipelines' images and executions go too")
			}
			if !yes {
				fmt.Fprintf(g.stdout, "Remove these %d resources? [y/N] ", len(plan.Steps))
				line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
					return usageError{errors.New("not confirmed: nothing removed (--yes answers for you)")}
				}
			}
			return stack.Destroy(ctx, b, plan, rec, purge, g.stdout)
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask")
	cmd.Flags().BoolVar(&purge, "purge", false, "also remove the pipelines' images and executions (artifacts, build logs)")
	return cmd
}

// stackBackend is stack.Backend over the REST API.
type stackBackend struct {
	c   *apiClient
	out interface{ Write([]byte) (int, error) }
}

var _ stack.Backend = (*stackBackend)(nil)

func (b *stackBackend) Record(ctx context.Context, name string) (*stack.Record, error) {
	// The record's absence is a 404, which call makes an error like any
	// other 4xx; the server's message, which names ErrNoStack, tells it
	// apart.
	var rec stack.Record
	err := b.c.call(ctx, http.MethodGet, pathOf("stacks", name), nil, nil, &rec)
	if err != nil {
		if strings.Contains(err.Error(), stack.ErrNoStack.Error()) {
			return nil, nil
		}
		return nil, err
	}
	return &rec, nil
}

func (b *stackBackend) SaveRecord(ctx context.Context, rec *stack.Record) error {
	return b.c.call(ctx, http.MethodPut, pathOf("stacks", rec.Name), nil, rec, nil)
}

func (b *stackBackend) DeleteRecord(ctx context.Context, name string) error {
	return b.c.call(ctx, http.MethodDelete, pathOf("stacks", name), nil, nil, nil)
}

func (b *stackBackend) Exists(ctx context.Context, kind stack.Kind, name string) (bool, error) {
	switch kind {
	case stack.KindToken:
		return listHas(ctx, b.c, pathOf("tokens"), "tokens", nil, func(t auth.Token) bool { return t.Name == name })
	case stack.KindRepository:
		return listHas(ctx, b.c, pathOf("repositories"), "repositories", nil, func(r source.Repo) bool { return r.Name == name })
	case stack.KindCluster:
		return listHas(ctx, b.c, pathOf("clusters"), "clusters", nil, func(c deploy.Cluster) bool { return c.Name == name })
	case stack.KindTaskDefinition:
		return listHas(ctx, b.c, pathOf("task-definitions"), "taskDefinitions", url.Values{"family": {name}}, func(td deploy.TaskDefinition) bool {
			return td.Family == name && td.Status == deploy.StatusActive
		})
	case stack.KindService:
		svc, err := b.service(ctx, name)
		return svc != nil, err
	case stack.KindRule:
		return listHas(ctx, b.c, pathOf("rules"), "rules", nil, func(r events.Rule) bool { return r.Name == name && !r.Builtin })
	case stack.KindPipeline:
		return listHas(ctx, b.c, pathOf("pipelines"), "pipelines", nil, func(p pipeline.Definition) bool { return p.Name == name })
	}
	return false, fmt.Errorf("unknown resource kind %q", kind)
}

// listHas reports whether the list the API answers at path, under key,
// holds an item that match accepts.
func listHas[T any](ctx context.Context, c *apiClient, path, key string, q url.Values, match func(T) bool) (bool, error) {
	var out map[string]json.RawMessage
	if err := c.call(ctx, http.MethodGet, path, q, nil, &out); err != nil {
		return false, err
	}
	var items []T
	if raw, ok := out[key]; ok {
		if err := json.Unmarshal(raw, &items); err != nil {
			return false, fmt.Errorf("%s: %w", path, err)
		}
	}
	return slices.ContainsFunc(items, match), nil
}

// service returns the service CLUSTER/NAME, or nil if there is none (one
// being deleted counts: its name is not free yet).
func (b *stackBackend) service(ctx context.Context, name string) (*deploy.Service, error) {
	cluster, svc := stack.SplitService(name)
	var out struct{ Services []deploy.Service }
	if err := b.c.call(ctx, http.MethodGet, pathOf("services"), nil, nil, &out); err != nil {
		return nil, err
	}
	for i, s := range out.Services {
		if s.Cluster == cluster && s.Name == svc {
			return &out.Services[i], nil
		}
	}
	return nil, nil
}

func (b *stackBackend) Create(ctx context.Context, r stack.Resource) (stack.Entry, string, error) {
	e := stack.Entry{Kind: r.Kind, Name: r.Name}
	switch r.Kind {
	case stack.KindToken:
		var out struct {
			Secret string `json:"secret"`
		}
		if err := b.c.call(ctx, http.MethodPost, pathOf("tokens"), nil, rawBody{"application/json", r.Body}, &out); err != nil {
			return e, "", err
		}
		return e, out.Secret, nil
	case stack.KindRepository:
		return e, "", b.c.call(ctx, http.MethodPost, pathOf("repositories"), nil, rawBody{"application/json", r.Body}, nil)
	case stack.KindCluster:
		return e, "", b.c.call(ctx, http.MethodPost, pathOf("clusters"), nil, rawBody{"application/json", r.Body}, nil)
	case stack.KindTaskDefinition:
		rev, err := b.register(ctx, r)
		e.Revisions = []int{rev}
		return e, "", err
	case stack.KindService:
		return e, "", b.c.call(ctx, http.MethodPost, pathOf("services"), nil, rawBody{"application/json", r.Body}, nil)
	case stack.KindRule:
		return e, "", b.c.call(ctx, http.MethodPut, pathOf("rules", r.Name), nil, rawBody{"application/json", r.Body}, nil)
	case stack.KindPipeline:
		return e, "", b.c.call(ctx, http.MethodPut, pathOf("pipelines", r.Name), nil, rawBody{"application/yaml", r.Body}, nil)
	}
	return e, "", fmt.Errorf("unknown resource kind %q", r.Kind)
}

func (b *stackBackend) register(ctx context.Context, r stack.Resource) (int, error) {
	var out struct {
		TaskDefinition *deploy.TaskDefinition `json:"taskDefinition"`
	}
	if err := b.c.call(ctx, http.MethodPost, pathOf("task-definitions"), nil, rawBody{"application/yaml", r.Body}, &out); err != nil {
		return 0, err
	}
	if out.TaskDefinition == nil {
		return 0, errors.New("the server's answer names no revision")
	}
	return out.TaskDefinition.Revision, nil
}

func (b *stackBackend) Change(ctx context.Context, r stack.Resource, e stack.Entry) (stack.Entry, error) {
	switch r.Kind {
	case stack.KindTaskDefinition:
		rev, err := b.register(ctx, r)
		if err != nil {
			return e, err
		}
		e.Revisions = append(e.Revisions, rev)
		return e, nil
	case stack.KindService:
		var in deploy.ServiceInput
		if err := json.Unmarshal(r.Body, &in); err != nil {
			return e, err
		}
		u := deploy.ServiceUpdate{TaskDefinition: &in.TaskDefinition, DesiredCount: &in.DesiredCount, Config: &in.Config}
		cluster, svc := stack.SplitService(r.Name)
		return e, b.c.call(ctx, http.MethodPatch, pathOf("clusters", cluster, "services", svc), nil, u, nil)
	case stack.KindRule, stack.KindPipeline:
		_, _, err := b.Create(ctx, r)
		return e, err
	}
	return e, fmt.Errorf("%s %s %w", r.Kind, r.Name, stack.ErrImmutable)
}

func (b *stackBackend) Delete(ctx context.Context, e stack.Entry, purge bool) error {
	switch e.Kind {
	case stack.KindToken:
		return b.c.call(ctx, http.MethodDelete, pathOf("tokens", e.Name), nil, nil, nil)
	case stack.KindRepository:
		return b.c.call(ctx, http.MethodDelete, pathOf("repositories", e.Name), nil, nil, nil)
	case stack.KindCluster:
		return b.c.call(ctx, http.MethodDelete, pathOf("clusters", e.Name), nil, nil, nil)
	case stack.KindTaskDefinition:
		// The family is the stack's: every active revision goes, the
		// deploys' as well as up's, so that the next up makes the family
		// afresh rather than finding it someone else's.
		var out struct{ TaskDefinitions []deploy.TaskDefinition }
		if err := b.c.call(ctx, http.MethodGet, pathOf("task-definitions"), url.Values{"family": {e.Name}}, nil, &out); err != nil {
			return err
		}
		for _, td := range out.TaskDefinitions {
			if td.Family != e.Name || td.Status != deploy.StatusActive {
				continue
			}
			if err := b.c.call(ctx, http.MethodDelete, pathOf("task-definitions", td.Ref()), nil, nil, nil); err != nil {
				return err
			}
		}
		return nil
	case stack.KindService:
		return b.deleteService(ctx, e.Name)
	case stack.KindRule:
		return b.c.call(ctx, http.MethodDelete, pathOf("rules", e.Name), nil, nil, nil)
	case stack.KindPipeline:
		return b.deletePipeline(ctx, e.Name, purge)
	}
	return fmt.Errorf("unknown resource kind %q", e.Kind)
}

// serviceDrainWait bounds the wait for a deleted service's tasks to stop
// (each gets its stop timeout, 30 s by default, then is killed).
const serviceDrainWait = 5 * time.Minute

// deleteService deletes a service and waits for it to be gone, so that
// its cluster can go next.
func (b *stackBackend) deleteService(ctx context.Context, name string) error {
	cluster, svc := stack.SplitService(name)
	s, err := b.service(ctx, name)
	if err != nil || s == nil {
		return err
	}
	if s.Status != deploy.StatusDraining {
		if err := b.c.call(ctx, http.MethodDelete, pathOf("clusters", cluster, "services", svc), nil, nil, nil); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, serviceDrainWait)
	defer cancel()
	for {
		s, err := b.service(ctx, name)
		if err != nil {
			return err
		}
		if s == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("service %s: its tasks did not stop within %s: %w", name, serviceDrainWait, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// deletePipeline stops the pipeline's executions in progress and deletes
// it; with purge, its executions and the images it built go too.
func (b *stackBackend) deletePipeline(ctx context.Context, name string, purge bool) error {
	var def pipeline.Definition
	if err := b.c.call(ctx, http.MethodGet, pathOf("pipelines", name), nil, nil, &def); err != nil {
		return err
	}
	var exs struct{ Executions []pipeline.Execution }
	if err := b.c.call(ctx, http.MethodGet, pathOf("executions"), url.Values{"pipeline": {name}, "limit": {"1000"}}, nil, &exs); err != nil {
		return err
	}
	for _, ex := range exs.Executions {
		if ex.Status != pipeline.StateInProgress {
			continue
		}
		body := map[string]string{"reason": "scangate down"}
		if err := b.c.call(ctx, http.MethodPost, pathOf("executions", ex.ID, "stop"), nil, body, nil); err != nil {
			return fmt.Errorf("stop execution %s: %w", ex.ID, err)
		}
	}
	q := url.Values{}
	if purge {
		q.Set("purge", "true")
	}
	if err := b.c.call(ctx, http.MethodDelete, pathOf("pipelines", name), q, nil, nil); err != nil {
		return err
	}
	if !purge || def.Build.Repository == "" {
		return nil
	}
	// The images the pipeline built: its build repository's manifests,
	// deleted through the registry's own API, as docker would.
	var imgs struct{ Images []scanner.Image }
	if err := b.c.call(ctx, http.MethodGet, pathOf("images"), url.Values{"repository": {def.Build.Repository}}, nil, &imgs); err != nil {
		return err
	}
	for _, img := range imgs.Images {
		if img.Repository != def.Build.Repository {
			continue
		}
		p := "/v2/" + img.Repository + "/manifests/" + img.Digest
		if err := b.c.call(ctx, http.MethodDelete, p, nil, nil, nil); err != nil {
			return fmt.Errorf("delete image %s@%s: %w", img.Repository, img.Digest, err)
		}
		fmt.Fprintf(b.out, "deleted image %s@%s\n", img.Repository, img.Digest)
	}
	return nil
}

// PushContent commits dir and pushes it to the hosted repository's main
// branch with real git over HTTP. The token goes in an Authorization
// header through git's environment (GIT_CONFIG_*), never in the URL, which
// git would keep in the clone's config and show in its messages.
func (b *stackBackend) PushContent(ctx context.Context, repo, dir string) error {
	work, err := os.MkdirTemp("", "scangate-up-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := os.CopyFS(work, os.DirFS(dir)); err != nil {
		return fmt.Errorf("copy %s: %w", dir, err)
	}
	env := append(os.Environ(),
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=scangate up", "GIT_AUTHOR_EMAIL=scangate@localhost",
		"GIT_COMMITTER_NAME=scangate up", "GIT_COMMITTER_EMAIL=scangate@localhost",
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader", "GIT_CONFIG_VALUE_0=Authorization: Bearer "+b.c.token)
	remote := b.c.base + "/git/" + repo + ".git"
	for _, args := range [][]string{
		{"init", "-q", "-b", source.DefaultBranch},
		{"add", "-A"},
		{"commit", "-q", "-m", "Initial content, from scangate up"},
		{"push", "-q", remote, "HEAD:refs/heads/" + source.DefaultBranch},
	} {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir, cmd.Env = work, env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v: %s", args[0], err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}
