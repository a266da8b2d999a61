package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/source"
)

// pipelineHelp ends the help of the pipeline, execution and repo commands.
const pipelineHelp = clientHelp

// readPipeline reads a definition file and checks it here first, so that
// its mistakes name the file, the line and the field before anything is
// sent.
func readPipeline(file string) ([]byte, *pipeline.Definition, error) {
	data, err := readSmallFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("-f: %w", err)
	}
	d, err := pipeline.ParseDefinition(data)
	if err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, nil, fmt.Errorf("%s: %v", file, yamlError(te))
		}
		return nil, nil, fmt.Errorf("%s: %v", file, strings.TrimPrefix(strings.Replace(err.Error(), "pipeline definition: yaml: ", "", 1), "pipeline definition: "))
	}
	return data, d, nil
}

func newPipelineCmd(g *globals) *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{Use: "pipeline", Short: "Define, list, start and stop pipelines", Long: "Pipelines: a source, a build, an approval and a deployment." + pipelineHelp}
	sf.add(cmd)
	var file string
	var allowPrivate []string
	put := &cobra.Command{
		Use:   "put -f PIPELINE.yaml",
		Short: "Create a pipeline or store a new version of it (admin)",
		Long: `Put stores a pipeline definition (YAML) as the pipeline's next version.
Executions already running keep the version they started with. A hosted
repository that does not exist is refused; a branch with no commit yet is
warned about (the first push to it starts an execution).

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
    container: api` + pipelineHelp,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, d, err := readPipeline(file)
			if err != nil {
				return usageError{err}
			}
			if len(allowPrivate) > 0 {
				fmt.Fprintln(g.stderr, "note: --allow-private-targets is the server's setting now; the server checks the source's address")
			}
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			var out struct {
				Name     string   `json:"name"`
				Version  int      `json:"version"`
				Warnings []string `json:"warnings"`
			}
			if err := c.call(cmd.Context(), http.MethodPut, pathOf("pipelines", d.Name), nil, rawBody{"application/yaml", data}, &out); err != nil {
				return err
			}
			for _, w := range out.Warnings {
				fmt.Fprintf(g.stderr, "warning: %s\n", w)
			}
			if g.structured() {
				out.Warnings = orEmpty(out.Warnings)
				return g.write(out)
			}
			_, err = fmt.Fprintf(g.stdout, "pipeline %s version %d\n", out.Name, out.Version)
			return err
		},
	}
	put.Flags().StringVarP(&file, "file", "f", "", "the pipeline definition")
	put.Flags().StringSliceVar(&allowPrivate, "allow-private-targets", nil, "ignored: the server's --allow-private-targets decides")
	_ = put.Flags().MarkHidden("allow-private-targets")
	_ = put.MarkFlagRequired("file")

	list := &cobra.Command{
		Use: "list", Short: "List pipelines and their latest execution", Long: "List lists the pipelines." + pipelineHelp, Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			var out struct {
				Pipelines []pipeline.Definition `json:"pipelines"`
			}
			if err := c.call(cmd.Context(), http.MethodGet, pathOf("pipelines"), nil, nil, &out); err != nil {
				return err
			}
			if g.structured() {
				return g.write(orEmpty(out.Pipelines))
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tSOURCE\tIMAGE\tAPPROVAL\tLATEST EXECUTION")
			for _, d := range out.Pipelines {
				latest := "-"
				var exs struct {
					Executions []pipeline.Execution `json:"executions"`
				}
				q := url.Values{"pipeline": {d.Name}, "limit": {"1"}}
				if err := c.call(cmd.Context(), http.MethodGet, pathOf("executions"), q, nil, &exs); err == nil && len(exs.Executions) > 0 {
					latest = exs.Executions[0].ID + " " + exs.Executions[0].Status
				}
				src := d.Source.Repository
				if src == "" {
					src = d.Source.URL
				}
				fmt.Fprintf(tw, "%s\t%d\t%s@%s\t%s\t%s\t%s\n", d.Name, d.Version, src, d.Source.Branch, d.Build.Repository, d.Approval.Mode, latest)
			}
			return tw.Flush()
		},
	}
	get := &cobra.Command{
		Use: "get NAME", Short: "Show a pipeline's definition (as YAML in table format; never its secrets)", Long: "Get shows a pipeline's latest version." + pipelineHelp,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			var d pipeline.Definition
			if err := c.call(cmd.Context(), http.MethodGet, pathOf("pipelines", a[0]), nil, nil, &d); err != nil {
				return err
			}
			if g.format == formatJSON {
				return g.write(d)
			}
			return writeYAML(g.stdout, d)
		},
	}
	var commit string
	start := &cobra.Command{
		Use:   "start NAME [--commit SHA]",
		Short: "Start an execution of the branch head, or of a commit (admin)",
		Long:  "Start starts an execution: of the commit the pipeline's branch names now, or of --commit." + pipelineHelp,
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			var out struct {
				ID string `json:"id"`
			}
			if err := c.call(cmd.Context(), http.MethodPost, pathOf("pipelines", a[0], "executions"), nil, map[string]string{"commit": commit}, &out); err != nil {
				return err
			}
			if g.structured() {
				return g.write(out)
			}
			_, err = fmt.Fprintln(g.stdout, out.ID)
			return err
		},
	}
	start.Flags().StringVar(&commit, "commit", "", "the commit to build (default: the branch head)")
	var reason string
	stop := &cobra.Command{
		Use: "stop EXECUTION [--reason TEXT]", Short: "Stop an execution in progress (admin)", Long: "Stop stops an execution." + pipelineHelp, Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			if err := c.call(cmd.Context(), http.MethodPost, pathOf("executions", a[0], "stop"), nil, map[string]string{"reason": reason}, nil); err != nil {
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "execution %s stopped\n", a[0])
			return err
		},
	}
	stop.Flags().StringVar(&reason, "reason", "", "why")
	cmd.AddCommand(put, list, get, start, stop)
	return cmd
}

func newExecutionCmd(g *globals) *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{Use: "execution", Short: "Pipeline executions, their stages, decisions and artifacts", Long: "Executions of pipelines." + pipelineHelp}
	sf.add(cmd)
	var name string
	var limit int
	list := &cobra.Command{
		Use: "list [--pipeline NAME]", Short: "List executions, newest first", Long: "List lists executions, newest first." + pipelineHelp, Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if name != "" {
				q.Set("pipeline", name)
			}
			var out struct {
				Executions []pipeline.Execution `json:"executions"`
			}
			if err := c.call(cmd.Context(), http.MethodGet, pathOf("executions"), q, nil, &out); err != nil {
				return err
			}
			if g.structured() {
				return g.write(orEmpty(out.Executions))
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			head := "EXECUTION\tPIPELINE\tSTATUS\tCOMMIT\tSTARTED\tREASON"
			if g.wide() {
				head = "EXECUTION\tPIPELINE\tVERSION\tSTATUS\tCOMMIT\tTRIGGER\tSTARTED BY\tSTARTED\tENDED\tIMAGE\tREASON"
			}
			fmt.Fprintln(tw, head)
			for _, ex := range out.Executions {
				if g.wide() {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ex.ID, ex.Pipeline, ex.Version, ex.Status, ex.Commit, ex.Trigger,
						orDash(ex.StartedBy), when(ex.StartedAt), whenPtr(ex.EndedAt), orDash(ex.ImageURI), orDash(oneLine(ex.Reason, 200)))
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%.12s\t%s\t%s\n", ex.ID, ex.Pipeline, ex.Status, ex.Commit,
					ex.StartedAt.Format(time.RFC3339), oneLine(ex.Reason, 90))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&name, "pipeline", "", "only this pipeline's")
	list.Flags().IntVar(&limit, "limit", 50, "at most this many (1 to 1000)")
	var artifact, buildLog, wait, follow, watch bool
	get := &cobra.Command{
		Use:   "get EXECUTION [--artifact | --log | --wait [--follow] | --watch]",
		Short: "Show an execution: stages, approval and why; its artifact or build log; or wait for its decision",
		Long: `Get shows an execution: its stages, its approval with every reason, and why
it ended as it did. --artifact prints its imagedefinitions.json, --log its
build log. --wait prints each stage as it changes until the execution ends
or waits for a person's approval (then approval approve|reject answers it),
and exits 1 when it failed, was rejected or stopped; --follow also streams
the build log as it is written. --watch prints the execution again each
time it changes, until interrupted.` + pipelineHelp,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			switch {
			case artifact:
				var doc json.RawMessage
				if err := c.call(ctx, http.MethodGet, pathOf("executions", a[0], "artifact"), nil, nil, &doc); err != nil {
					return err
				}
				if g.format == formatYAML {
					return writeYAML(g.stdout, doc)
				}
				_, err = g.stdout.Write(append(doc, '\n'))
				return err
			case buildLog:
				return c.logs(ctx, pathOf("executions", a[0], "log"), nil, g.stdout)
			case wait || follow:
				return g.waitExecution(ctx, c, a[0], follow)
			}
			return g.show(ctx, watch, func() (any, string, error) {
				var ex pipeline.Execution
				if err := c.call(ctx, http.MethodGet, pathOf("executions", a[0]), nil, nil, &ex); err != nil {
					return nil, "", err
				}
				var b strings.Builder
				err := printExecution(g.with(&b), &ex)
				return ex, b.String(), err
			})
		},
	}
	get.Flags().BoolVar(&artifact, "artifact", false, "print the imagedefinitions.json artifact")
	get.Flags().BoolVar(&buildLog, "log", false, "print the build log")
	get.Flags().BoolVar(&wait, "wait", false, "print the stages as they change until the execution ends or waits for a person")
	get.Flags().BoolVarP(&follow, "follow", "f", false, "with --wait, also stream the build log")
	get.Flags().BoolVarP(&watch, "watch", "w", false, "print the execution again each time it changes, until interrupted")
	get.MarkFlagsMutuallyExclusive("artifact", "log", "wait", "watch")
	get.MarkFlagsMutuallyExclusive("artifact", "log", "follow", "watch")
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

func newRepoCmd(g *globals) *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{Use: "repo", Short: "Git repositories hosted by scangate (clone and push at /git/NAME.git)", Long: "Git repositories hosted by scangate." + pipelineHelp}
	sf.add(cmd)
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a hosted repository (admin)",
		Long: `Create makes an empty repository (default branch main), served over git's
smart HTTP protocol at SERVER/git/NAME.git: clone and fetch need a reader
token, push a pusher token, given as the password. Keep the token out of
the URL (it would be stored in .git/config): let git ask scangate for it,

  git config --global credential.SERVER.helper '!scangate git-credential'

which answers with the token of the context for SERVER (scangate login).
A push to a branch a pipeline builds starts an execution, and git push says
which.` + pipelineHelp,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			var r source.Repo
			if err := c.call(cmd.Context(), http.MethodPost, pathOf("repositories"), nil, map[string]string{"name": a[0]}, &r); err != nil {
				return err
			}
			cloneURL := c.base + "/git/" + strings.TrimSuffix(r.Name, ".git") + ".git"
			if g.structured() {
				return g.write(map[string]string{"name": r.Name, "cloneUrl": cloneURL})
			}
			_, err = fmt.Fprintf(g.stdout, "repository %s: git clone %s (a token as the password)\n", r.Name, cloneURL)
			return err
		},
	}
	list := &cobra.Command{
		Use: "list", Short: "List hosted repositories", Long: "List lists the hosted repositories." + pipelineHelp, Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			var out struct {
				Repositories []source.Repo `json:"repositories"`
			}
			if err := c.call(cmd.Context(), http.MethodGet, pathOf("repositories"), nil, nil, &out); err != nil {
				return err
			}
			if g.structured() {
				return g.write(orEmpty(out.Repositories))
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tCLONE URL")
			for _, r := range out.Repositories {
				fmt.Fprintf(tw, "%s\t%s/git/%s.git\n", r.Name, c.base, strings.TrimSuffix(r.Name, ".git"))
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(create, list)
	return cmd
}
