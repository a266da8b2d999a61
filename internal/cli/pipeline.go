package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/source"
	"github.com/scangate/scangate/internal/store"
)

// withPipelines gives fn the pipeline service over the data folder: it
// records and queues, and the server does the work. allow are the
// prefixes of private addresses an external source may be on.
func (g *globals) withPipelines(ctx context.Context, fn func(*pipeline.Service, *store.Store) error, allow ...netip.Prefix) error {
	return g.withJobs(ctx, func(st *store.Store, client *jobs.Client, bus *events.Bus) error {
		key, err := pipeline.LoadKey(g.dataDir)
		if err != nil {
			return internalError{err}
		}
		return fn(pipeline.New(st, bus, client, pipeline.Options{Key: key, Egress: egress.New(allow)}), st)
	})
}

// pipelineError sorts the service's errors into exit codes.
func pipelineError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pipeline.ErrNoPipeline), errors.Is(err, pipeline.ErrNoExecution), errors.Is(err, pipeline.ErrNoApproval),
		errors.Is(err, pipeline.ErrDecided), errors.Is(err, pipeline.ErrNotRunning):
		return usageError{err}
	}
	return internalError{err}
}

func newPipelineCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "pipeline", Short: "Define, list, start and stop pipelines"}
	var file string
	var allowPrivate []string
	put := &cobra.Command{
		Use:   "put -f PIPELINE.yaml",
		Short: "Create a pipeline or store a new version of it",
		Long: `Put stores a pipeline definition (YAML) as the pipeline's next version.
Executions already running keep the version they started with.

  name: shop-api
  source:                      # a repository hosted by scangate (scangate repo create)...
    repository: shop-api
    branch: main
    # url: https://git.example.com/shop/api.git   # ...or an external one,
    # poll: 60s                                   # polled, or told by a push webhook
    # webhook-secret: ...                         # (GitHub, GitLab, Gitea)
  build:
    context: .
    dockerfile: Dockerfile
    args: {VERSION: "1"}
    # secret-args: {NPM_TOKEN: ...}   # sealed at rest, never shown, taken out of the build log
    repository: shop/api       # in scangate's registry; tagged with the commit SHA and latest
  approval:
    policy:
      thresholds: {CRITICAL: 0, HIGH: 0, MEDIUM: 5}
      ignore-unfixed: false
      exceptions:
        - {id: CVE-2023-45853, package: zlib1g, reason: MiniZip is not built, expires: 2027-01-31}
    timeout: 7d                # then the execution fails
    notify: approvals          # the rule whose webhooks tell people
  deploy:                      # where approved images go
    cluster: default
    service: shop-api
    container: api`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := readSmallFile(file)
			if err != nil {
				return usageError{fmt.Errorf("-f: %w", err)}
			}
			d, err := pipeline.ParseDefinition(data)
			if err != nil {
				return usageError{err}
			}
			allow, err := egress.ParseAllow(allowPrivate)
			if err != nil {
				return usageError{err}
			}
			return g.withPipelines(cmd.Context(), func(s *pipeline.Service, _ *store.Store) error {
				v, err := s.Put(cmd.Context(), d)
				if errors.Is(err, egress.ErrRefused) {
					return usageError{err}
				}
				if err != nil {
					return pipelineError(err)
				}
				_, err = fmt.Fprintf(g.stdout, "pipeline %s version %d\n", d.Name, v)
				return err
			}, allow...)
		},
	}
	put.Flags().StringVarP(&file, "file", "f", "", "the pipeline definition")
	put.Flags().StringSliceVar(&allowPrivate, "allow-private-targets", nil, "prefixes of loopback, link-local or private addresses the external source may be on (the server's setting of that name decides at each fetch)")
	_ = put.MarkFlagRequired("file")

	list := &cobra.Command{
		Use: "list", Short: "List pipelines and their latest execution", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withPipelines(cmd.Context(), func(s *pipeline.Service, _ *store.Store) error {
				defs, err := s.List(cmd.Context())
				if err != nil {
					return pipelineError(err)
				}
				for i, d := range defs {
					defs[i] = d.Redacted()
				}
				if g.structured() {
					return g.write(orEmpty(defs))
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tVERSION\tSOURCE\tIMAGE\tLATEST EXECUTION")
				for _, d := range defs {
					latest := "-"
					if exs, err := s.Executions(cmd.Context(), d.Name, 1); err == nil && len(exs) > 0 {
						latest = exs[0].ID + " " + exs[0].Status
					}
					src := d.Source.Repository
					if src == "" {
						src = d.Source.URL
					}
					fmt.Fprintf(tw, "%s\t%d\t%s@%s\t%s\t%s\n", d.Name, d.Version, src, d.Source.Branch, d.Build.Repository, latest)
				}
				return tw.Flush()
			})
		},
	}
	get := &cobra.Command{
		Use: "get NAME", Short: "Show a pipeline's definition (JSON)", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.withPipelines(cmd.Context(), func(s *pipeline.Service, _ *store.Store) error {
				d, err := s.Get(cmd.Context(), a[0], 0)
				if err != nil {
					return pipelineError(err)
				}
				return writeJSON(g.stdout, d.Redacted())
			})
		},
	}
	var commit string
	start := &cobra.Command{
		Use:   "start NAME [--commit SHA]",
		Short: "Start an execution of the branch head, or of a commit",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.withPipelines(cmd.Context(), func(s *pipeline.Service, _ *store.Store) error {
				c := commit
				if c == "" {
					d, err := s.Get(cmd.Context(), a[0], 0)
					if err != nil {
						return pipelineError(err)
					}
					if c, err = g.branchHead(cmd.Context(), d); err != nil {
						return usageError{err}
					}
				}
				id, err := s.Start(cmd.Context(), a[0], pipeline.Trigger{Kind: "manual", Commit: c, Ref: "refs/heads/" + branchOf(s, cmd.Context(), a[0])})
				if err != nil {
					return pipelineError(err)
				}
				_, err = fmt.Fprintln(g.stdout, id)
				return err
			})
		},
	}
	start.Flags().StringVar(&commit, "commit", "", "the commit to build (default: the branch head)")
	var reason string
	stop := &cobra.Command{
		Use: "stop EXECUTION [--reason TEXT]", Short: "Stop an execution in progress", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.withPipelines(cmd.Context(), func(s *pipeline.Service, _ *store.Store) error {
				return pipelineError(s.Stop(cmd.Context(), a[0], "stopped by "+whoAmI()+reasonSuffix(reason)))
			})
		},
	}
	stop.Flags().StringVar(&reason, "reason", "", "why")
	cmd.AddCommand(put, list, get, start, stop)
	return cmd
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

func branchOf(s *pipeline.Service, ctx context.Context, name string) string {
	d, err := s.Get(ctx, name, 0)
	if err != nil {
		return "main"
	}
	return d.Source.Branch
}

// whoAmI names the person at the command line, for the record.
func whoAmI() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	if n := os.Getenv("USER"); n != "" {
		return "cli:" + n
	}
	return "cli"
}

func newExecutionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "execution", Short: "Pipeline executions, their stages, decisions and artifacts"}
	var name string
	var limit int
	list := &cobra.Command{
		Use: "list [--pipeline NAME]", Short: "List executions, newest first", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withPipelines(cmd.Context(), func(s *pipeline.Service, _ *store.Store) error {
				exs, err := s.Executions(cmd.Context(), name, limit)
				if err != nil {
					return pipelineError(err)
				}
				if g.structured() {
					return g.write(orEmpty(exs))
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "EXECUTION\tPIPELINE\tSTATUS\tCOMMIT\tSTARTED\tREASON")
				for _, ex := range exs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%.12s\t%s\t%s\n", ex.ID, ex.Pipeline, ex.Status, ex.Commit,
						ex.StartedAt.Format(time.RFC3339), oneLine(ex.Reason, 90))
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&name, "pipeline", "", "only this pipeline's")
	list.Flags().IntVar(&limit, "limit", 50, "at most this many")
	var artifact, buildLog bool
	get := &cobra.Command{
		Use:   "get EXECUTION [--artifact | --log]",
		Short: "Show an execution: stages, approval and why; or its imagedefinitions.json or build log",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.withPipelines(cmd.Context(), func(s *pipeline.Service, _ *store.Store) error {
				switch {
				case artifact:
					doc, err := s.Artifact(cmd.Context(), a[0])
					if err != nil {
						return usageError{err}
					}
					_, err = g.stdout.Write(append(doc, '\n'))
					return err
				case buildLog:
					log, err := s.BuildLog(cmd.Context(), a[0])
					if err != nil {
						return pipelineError(err)
					}
					_, err = fmt.Fprint(g.stdout, log)
					return err
				}
				ex, err := s.Execution(cmd.Context(), a[0])
				if err != nil {
					return pipelineError(err)
				}
				if g.structured() {
					return g.write(ex)
				}
				return printExecution(g, ex)
			})
		},
	}
	get.Flags().BoolVar(&artifact, "artifact", false, "print the imagedefinitions.json artifact")
	get.Flags().BoolVar(&buildLog, "log", false, "print the build log")
	cmd.AddCommand(list, get)
	return cmd
}

func printExecution(g *globals, ex *pipeline.Execution) error {
	fmt.Fprintf(g.stdout, "execution %s of %s (version %d): %s\n", ex.ID, ex.Pipeline, ex.Version, ex.Status)
	fmt.Fprintf(g.stdout, "commit %s (%s, %s)\n", ex.Commit, ex.Ref, ex.Trigger)
	if ex.ImageURI != "" {
		fmt.Fprintf(g.stdout, "image %s\n", ex.ImageURI)
	}
	if ex.Reason != "" {
		fmt.Fprintf(g.stdout, "reason: %s\n", ex.Reason)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSTAGE\tSTATUS\tMESSAGE")
	for _, st := range ex.Stages {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", st.Name, st.Status, oneLine(st.Message, 100))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if a := ex.Approval; a != nil {
		fmt.Fprintf(g.stdout, "\napproval %s: %s", a.ID, a.Status)
		if a.DecidedBy != "" {
			fmt.Fprintf(g.stdout, " by %s", a.DecidedBy)
		}
		if a.Status == pipeline.StatePending {
			fmt.Fprintf(g.stdout, " (expires %s)", a.ExpiresAt.Format(time.RFC3339))
		}
		fmt.Fprintln(g.stdout)
		if a.Summary != "" {
			fmt.Fprintf(g.stdout, "%s\n", a.Summary)
		}
		for _, r := range a.Reasons {
			fmt.Fprintf(g.stdout, "  %s\n", r)
		}
		if a.Comment != "" {
			fmt.Fprintf(g.stdout, "comment: %s\n", a.Comment)
		}
	}
	return nil
}

func newApprovalCmd(g *globals) *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{
		Use:   "approval",
		Short: "See, approve, reject or override the approval an execution waits for",
		Long: `An execution's approval stage waits for its pipeline's policy, for a person,
or both (the pipeline's approval mode). A person with the approver role
answers it: approve (where a person decides), reject (always, while it
waits), or override a policy's rejection (with a comment, and an optional
expiry after which the image is refused again). Each answer presents the
request's token, as CodePipeline's PutApprovalResult does; these commands
fetch it first.` + clientHelp,
	}
	sf.add(cmd)
	get := &cobra.Command{
		Use:   "get EXECUTION",
		Short: "Show an execution's approval: mode, status, the policy's verdict and every reason",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			var ap pipeline.Approval
			if err := c.call(cmd.Context(), http.MethodGet, pathOf("executions", a[0], "approval"), nil, nil, &ap); err != nil {
				return err
			}
			ap.Token = "" // shown to nobody: the commands below fetch it when they answer
			if g.structured() {
				return g.write(ap)
			}
			printApproval(g.stdout, &ap)
			return nil
		},
	}
	cmd.AddCommand(get)
	for _, verb := range []string{pipeline.ActionApprove, pipeline.ActionReject, pipeline.ActionOverride} {
		var comment, expires string
		short := map[string]string{
			pipeline.ActionApprove:  "Approve the image an execution waits with (approval modes person and policy+person)",
			pipeline.ActionReject:   "Reject the image an execution waits with",
			pipeline.ActionOverride: "Let through an image the policy rejected, saying why; --expires ends the acceptance",
		}[verb]
		c := &cobra.Command{
			Use:   verb + " EXECUTION --comment TEXT",
			Short: short,
			Args:  args(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, a []string) error {
				c, err := g.apiClient(&sf)
				if err != nil {
					return err
				}
				path := pathOf("executions", a[0], "approval")
				var cur pipeline.Approval
				if err := c.call(cmd.Context(), http.MethodGet, path, nil, nil, &cur); err != nil {
					return err
				}
				body := map[string]string{"decision": verb, "comment": comment, "token": cur.Token}
				if expires != "" {
					body["expires"] = expires
				}
				var ap pipeline.Approval
				if err := c.call(cmd.Context(), http.MethodPost, path, nil, body, &ap); err != nil {
					return err
				}
				if g.structured() {
					return g.write(ap)
				}
				_, err = fmt.Fprintf(g.stdout, "%s: %s\n", ap.Status, ap.Summary)
				return err
			},
		}
		c.Flags().StringVar(&comment, "comment", "", "why, for the record")
		_ = c.MarkFlagRequired("comment")
		if verb == pipeline.ActionOverride {
			c.Flags().StringVar(&expires, "expires", "", "when the acceptance ends: a date (2027-01-31) or an RFC 3339 time")
		}
		cmd.AddCommand(c)
	}
	return cmd
}

// printApproval writes an approval for people: status, who decided and
// why, the policy's verdict with every reason, and an override's terms.
func printApproval(w io.Writer, a *pipeline.Approval) {
	fmt.Fprintf(w, "approval %s (%s mode): %s\n", a.ID, a.Mode, a.Status)
	fmt.Fprintf(w, "image: %s@%s\n", a.Repository, a.ImageDigest)
	if a.Summary != "" {
		fmt.Fprintf(w, "summary: %s\n", a.Summary)
	}
	if a.DecidedBy != "" {
		fmt.Fprintf(w, "decided by %s at %s\n", a.DecidedBy, whenPtr(a.DecidedAt))
	}
	if a.Comment != "" {
		fmt.Fprintf(w, "comment: %s\n", a.Comment)
	}
	if a.Override != nil {
		fmt.Fprintf(w, "override: accepted %s", strings.Join(a.Override.Accepted, ", "))
		if a.Override.Expires != nil {
			fmt.Fprintf(w, " until %s", when(*a.Override.Expires))
		}
		fmt.Fprintln(w)
	}
	if p := a.Policy; p != nil {
		fmt.Fprintf(w, "policy: %s — %s\n", p.Result, p.Summary)
		for _, r := range p.Reasons {
			fmt.Fprintf(w, "  %s\n", r)
		}
	} else if a.Status == pipeline.StatePending {
		fmt.Fprintln(w, "policy: waiting for the image's scan")
	}
	if a.Status == pipeline.StatePending {
		fmt.Fprintf(w, "expires: %s\n", when(a.ExpiresAt))
	}
}

// branchHead resolves a hosted pipeline source's branch to a commit, with
// git itself: the server may be using the repositories at the same time.
func (g *globals) branchHead(ctx context.Context, d *pipeline.Definition) (string, error) {
	if d.Source.Repository == "" {
		return "", fmt.Errorf("give --commit: %s is an external repository", d.Source.URL)
	}
	dir := filepath.Join(g.dataDir, "git", d.Source.Repository+".git")
	out, err := exec.CommandContext(ctx, "git", "--git-dir", dir, "rev-parse", "--verify", "--end-of-options", "refs/heads/"+d.Source.Branch+"^{commit}").Output()
	if err != nil {
		return "", fmt.Errorf("branch %s of repository %s: no such branch (push to it first, or give --commit)", d.Source.Branch, d.Source.Repository)
	}
	return strings.TrimSpace(string(out)), nil
}

func newRepoCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "repo", Short: "Git repositories hosted by scangate (clone and push at /git/NAME.git)"}
	withRepos := func(fn func(*source.Repos) error) error {
		repos, err := source.New(filepath.Join(g.dataDir, "git"), nil, source.Options{Logger: g.log})
		if err != nil {
			return internalError{err}
		}
		return fn(repos)
	}
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a hosted repository",
		Long: `Create makes an empty repository (default branch main), served by the
server over git's smart HTTP protocol at http://ADDR/git/NAME.git: clone and
fetch need a reader token, push a pusher token, given as the password:

  git clone http://ci:$TOKEN@127.0.0.1:5000/git/shop-api.git

A push to a branch a pipeline builds starts an execution.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return withRepos(func(repos *source.Repos) error {
				err := repos.Create(cmd.Context(), a[0])
				if errors.Is(err, source.ErrExists) || errors.Is(err, source.ErrInvalid) {
					return usageError{err}
				}
				if err != nil {
					return internalError{err}
				}
				name := strings.TrimSuffix(a[0], ".git")
				_, err = fmt.Fprintf(g.stdout, "repository %s: clone it at http://ADDR/git/%s.git with a token as the password\n", name, name)
				return err
			})
		},
	}
	list := &cobra.Command{
		Use: "list", Short: "List hosted repositories", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withRepos(func(repos *source.Repos) error {
				list, err := repos.List(cmd.Context())
				if err != nil {
					return internalError{err}
				}
				if g.structured() {
					return g.write(orEmpty(list))
				}
				for _, r := range list {
					fmt.Fprintln(g.stdout, r.Name)
				}
				return nil
			})
		},
	}
	cmd.AddCommand(create, list)
	return cmd
}
