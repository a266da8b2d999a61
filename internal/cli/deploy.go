package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/policy"
	"github.com/scangate/scangate/internal/taskdef"
)

// The deploy commands are clients of the server's API (see apiclient.go):
// clusters, task definitions, services and tasks, as Amazon ECS has them.

// apiClient checks the output format (client commands print table, wide,
// json or yaml) and makes the client.
func (g *globals) apiClient(sf *serverFlags) (*apiClient, error) {
	if err := g.documentFormat(); err != nil {
		return nil, err
	}
	return sf.client(g.stderr)
}

func pathOf(parts ...string) string {
	var b strings.Builder
	b.WriteString("/api/v1")
	for _, p := range parts {
		b.WriteString("/" + url.PathEscape(p))
	}
	return b.String()
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func whenPtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return when(*t)
}

func newClusterCmd(g *globals) *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Create, list and delete clusters (a client of the server)",
		Long:  "A cluster is where services run: on the Docker Engine, a network their tasks join, with their ports published on the cluster's host address." + clientHelp,
	}
	sf.add(cmd)
	var hostIP string
	var privileged bool
	create := &cobra.Command{
		Use:   "create NAME [--host-ip IP] [--allow-privileged]",
		Short: "Create a cluster (deployer)",
		Long: `Create makes a cluster. Its tasks publish their ports, and its services'
load balancers listen, on --host-ip (127.0.0.1: this machine only).
--allow-privileged lets its services run task definitions with privileged
containers, which can reach the whole machine: leave it off unless a task
needs it.` + clientHelp,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			var cl deploy.Cluster
			in := map[string]any{"clusterName": a[0], "hostIp": hostIP, "allowPrivileged": privileged}
			if err := c.call(cmd.Context(), "POST", pathOf("clusters"), nil, in, &cl); err != nil {
				return err
			}
			if g.structured() {
				return g.write(cl)
			}
			note := ""
			if cl.AllowPrivileged {
				note = "; privileged containers allowed"
			}
			_, err = fmt.Fprintf(g.stdout, "cluster %s created (%s, tasks on %s%s)\n", cl.Name, cl.Runtime, cl.HostIP, note)
			return err
		},
	}
	create.Flags().StringVar(&hostIP, "host-ip", "127.0.0.1", "where tasks publish their ports and load balancers listen")
	create.Flags().BoolVar(&privileged, "allow-privileged", false, "let task definitions run privileged containers in this cluster")
	list := &cobra.Command{
		Use: "list", Short: "List clusters with their services and running tasks", Long: "List lists the clusters." + clientHelp,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			var out struct {
				Clusters []deploy.Cluster `json:"clusters"`
			}
			if err := c.call(cmd.Context(), "GET", pathOf("clusters"), nil, nil, &out); err != nil {
				return err
			}
			if g.structured() {
				return g.write(orEmpty(out.Clusters))
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tRUNTIME\tHOST IP\tPRIVILEGED\tSERVICES\tRUNNING TASKS\tCREATED")
			for _, cl := range out.Clusters {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%d\t%d\t%s\n", cl.Name, cl.Runtime, cl.HostIP, cl.AllowPrivileged, cl.ActiveServices, cl.RunningTasksCount, when(cl.CreatedAt))
			}
			return tw.Flush()
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a cluster that has no services (deployer)",
		Long: "Delete removes a cluster; delete its services first." + clientHelp,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			if err := c.call(cmd.Context(), "DELETE", pathOf("clusters", a[0]), nil, nil, nil); err != nil {
				return err
			}
			if g.structured() {
				return g.write(map[string]string{"clusterName": a[0], "status": "DELETED"})
			}
			_, err = fmt.Fprintf(g.stdout, "cluster %s deleted\n", a[0])
			return err
		},
	}
	cmd.AddCommand(create, list, del)
	return cmd
}

// readTaskDef reads a task definition file, refusing one past ECS's size
// before it is sent.
func readTaskDef(path string) ([]byte, error) {
	var fh *os.File
	if path == "-" {
		fh = os.Stdin
	} else {
		var err error
		if fh, err = os.Open(path); err != nil {
			return nil, err
		}
		defer fh.Close()
	}
	data, err := io.ReadAll(io.LimitReader(fh, taskdef.MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > taskdef.MaxSize {
		return nil, fmt.Errorf("%s is larger than %d bytes, the most a task definition may have (ECS's limit)", path, taskdef.MaxSize)
	}
	return data, nil
}

// definitionYAML writes a task definition as scangate's YAML, in ECS's
// field order (its JSON's), ready to edit and register again.
func definitionYAML(w io.Writer, def *taskdef.Definition) error { return writeYAML(w, def) }

var oldBools = map[string]bool{"y": true, "yes": true, "n": true, "no": true, "on": true, "off": true}

func newTaskDefCmd(g *globals) *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{
		Use:   "taskdef",
		Short: "Register, list, describe and deregister task definitions (a client of the server)",
		Long: `A task definition is the containers of a task, in Amazon ECS's shape; each
registration of a family is its next revision, which never changes.` + clientHelp,
	}
	sf.add(cmd)
	var file string
	register := &cobra.Command{
		Use:   "register -f FILE",
		Short: "Register a task definition (YAML or ECS JSON) as its family's next revision (deployer)",
		Long: `Register reads a task definition of at most 64 KiB and registers it as its
family's next revision. The file is ECS's JSON (what register-task-definition
takes, or what aws ecs describe-task-definition prints) or scangate's YAML
with the same field names ("-" reads standard input):

  family: shop-api
  containerDefinitions:
    - name: app
      image: 127.0.0.1:5000/shop/api:latest   # resolved now to its digest
      portMappings: [{containerPort: 8080}]
      memory: 256
      environment: [{name: MESSAGE, value: hello}]
      healthCheck: {command: [CMD, /app, probe, "http://127.0.0.1:8080/health"], interval: 10}

Images must be in scangate's registry: a tag is resolved to the digest it
names now, and the revision keeps the digest. ECS fields that mean nothing
here (IAM roles, log configuration, tags) are listed as ignored; fields
scangate cannot honour are refused.` + clientHelp,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			data, err := readTaskDef(file)
			if err != nil {
				return usageError{fmt.Errorf("-f: %w", err)}
			}
			ct := "application/yaml"
			if t := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\ufeff")), " \t\r\n"); len(t) > 0 && t[0] == '{' {
				ct = "application/json"
			}
			var out struct {
				TaskDefinition *deploy.TaskDefinition `json:"taskDefinition"`
				Ignored        []string               `json:"ignored"`
			}
			if err := c.call(cmd.Context(), "POST", pathOf("task-definitions"), nil, rawBody{ct, data}, &out); err != nil {
				return err
			}
			if g.structured() {
				out.Ignored = orEmpty(out.Ignored)
				return g.write(out)
			}
			td := out.TaskDefinition
			fmt.Fprintf(g.stdout, "registered %s\n", td.Ref())
			for _, cd := range td.Definition.ContainerDefinitions {
				fmt.Fprintf(g.stdout, "  %s: %s\n", cd.Name, cd.Image)
			}
			if len(out.Ignored) > 0 {
				fmt.Fprintln(g.stdout, "ignored:")
				for _, s := range out.Ignored {
					fmt.Fprintf(g.stdout, "  %s\n", s)
				}
			}
			return nil
		},
	}
	register.Flags().StringVarP(&file, "file", "f", "", "the task definition: YAML or ECS JSON (- for standard input)")
	_ = register.MarkFlagRequired("file")

	list := &cobra.Command{
		Use: "list [FAMILY]", Short: "List task definition revisions, newest first",
		Long: "List lists the revisions of every family, or of one." + clientHelp,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			q := url.Values{}
			if len(a) == 1 {
				q.Set("family", a[0])
			}
			var out struct {
				TaskDefinitions []deploy.TaskDefinition `json:"taskDefinitions"`
			}
			if err := c.call(cmd.Context(), "GET", pathOf("task-definitions"), q, nil, &out); err != nil {
				return err
			}
			if g.structured() {
				return g.write(orEmpty(out.TaskDefinitions))
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TASK DEFINITION\tSTATUS\tCONTAINERS\tREGISTERED\tBY")
			for _, td := range out.TaskDefinitions {
				var cs []string
				for _, cd := range td.Definition.ContainerDefinitions {
					cs = append(cs, cd.Name+"="+shortImage(cd.Image))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", td.Ref(), td.Status, strings.Join(cs, " "), when(td.RegisteredAt), td.RegisteredBy)
			}
			return tw.Flush()
		},
	}
	describe := &cobra.Command{
		Use: "describe FAMILY[:REVISION]", Short: "Show a task definition revision (FAMILY alone: its latest ACTIVE one)",
		Long: `Describe prints a revision: in table format as scangate's YAML, which
register takes back (after a comment line saying which revision it is and
who registered it); in json as the API has it.` + clientHelp,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			var td deploy.TaskDefinition
			if err := c.call(cmd.Context(), "GET", pathOf("task-definitions", a[0]), nil, nil, &td); err != nil {
				return err
			}
			if g.structured() {
				return g.write(td)
			}
			fmt.Fprintf(g.stdout, "# %s %s, registered %s", td.Ref(), td.Status, when(td.RegisteredAt))
			if td.RegisteredBy != "" {
				fmt.Fprintf(g.stdout, " by %s", td.RegisteredBy)
			}
			if td.DeregisteredAt != nil {
				fmt.Fprintf(g.stdout, ", deregistered %s", whenPtr(td.DeregisteredAt))
			}
			fmt.Fprintln(g.stdout)
			return definitionYAML(g.stdout, td.Definition)
		},
	}
	deregister := &cobra.Command{
		Use: "deregister FAMILY:REVISION", Short: "Mark a revision INACTIVE: services running it go on, none can be given it (deployer)",
		Long: "Deregister marks a revision INACTIVE." + clientHelp,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			var td deploy.TaskDefinition
			if err := c.call(cmd.Context(), "DELETE", pathOf("task-definitions", a[0]), nil, nil, &td); err != nil {
				return err
			}
			if g.structured() {
				return g.write(td)
			}
			_, err = fmt.Fprintf(g.stdout, "%s is %s: services that run it go on, and no service can be given it\n", td.Ref(), td.Status)
			return err
		},
	}
	cmd.AddCommand(register, list, describe, deregister)
	return cmd
}

// shortImage drops the registry host and shortens the digest.
func shortImage(image string) string {
	if host, rest, ok := strings.Cut(image, "/"); ok && (strings.ContainsAny(host, ".:") || host == "localhost") {
		image = rest
	}
	if name, digest, ok := strings.Cut(image, "@"); ok {
		return name + "@" + shortDigest(digest)
	}
	return image
}

// serviceConfigFile is the file of service create and update's -f.
type serviceConfigFile struct {
	DeploymentConfiguration *deploy.DeploymentConfiguration `yaml:"deploymentConfiguration"`
	HealthCheckGracePeriod  deploy.Duration                 `yaml:"healthCheckGracePeriod"`
	LoadBalancer            *deploy.LoadBalancer            `yaml:"loadBalancer"`
}

const serviceConfigHelp = `
The service's configuration (-f, YAML or JSON) has ECS's names:

  deploymentConfiguration:
    minimumHealthyPercent: 100     # of the desired count, kept serving while tasks are replaced
    maximumPercent: 200            # of the desired count, running at once
    deploymentCircuitBreaker: {enable: true, rollback: true}
    deadline: 30m                  # a deployment not completed by then fails
  healthCheckGracePeriod: 60s      # failing health checks of a new task are ignored this long
  loadBalancer:                    # scangate's HTTP load balancer in front of the healthy tasks
    listenerPort: 8081             # on the cluster's host address
    containerName: app
    containerPort: 8080
    deregistrationDelay: 30s       # how long a stopping task's requests may drain`

func readServiceConfig(path string) (*deploy.ServiceConfig, error) {
	data, err := readSmallFile(path)
	if err != nil {
		return nil, err
	}
	var f serviceConfigFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s is empty", path)
		}
		return nil, fmt.Errorf("%s: %v (the fields are deploymentConfiguration, healthCheckGracePeriod and loadBalancer, as service create --help shows)", path, err)
	}
	cfg := &deploy.ServiceConfig{HealthCheckGracePeriod: f.HealthCheckGracePeriod, LoadBalancer: f.LoadBalancer}
	if f.DeploymentConfiguration != nil {
		cfg.DeploymentConfiguration = *f.DeploymentConfiguration
	}
	return cfg, nil
}

func newServiceCmd(g *globals) *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Create, update, describe, list and delete services (a client of the server)",
		Long: `A service keeps a desired count of tasks of a task definition revision
running in a cluster, and replaces them in a rolling deployment when the
revision changes. A task starts only if its images are admitted: approved
by a pipeline's gate, or let in by an admin's override.` + clientHelp,
	}
	sf.add(cmd)
	var cluster, name, taskDef, configFile string
	var desired int
	var force bool
	show := func(s *deploy.Service) error {
		if g.structured() {
			return g.write(s)
		}
		return printService(g.stdout, s, 10)
	}
	create := &cobra.Command{
		Use:   "create --cluster C --name N --taskdef FAMILY[:REVISION] [--desired-count N] [-f CONFIG]",
		Short: "Create a service (deployer)",
		Long: `Create makes a service and its first deployment. At --desired-count 0 (the
default) the revision's images need no approval yet; above 0 they must be
admitted now.
` + serviceConfigHelp + clientHelp,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			in := deploy.ServiceInput{Cluster: cluster, Name: name, TaskDefinition: taskDef, DesiredCount: desired}
			if configFile != "" {
				cfg, err := readServiceConfig(configFile)
				if err != nil {
					return usageError{fmt.Errorf("-f: %w", err)}
				}
				in.Config = *cfg
			}
			var s deploy.Service
			if err := c.call(cmd.Context(), "POST", pathOf("services"), nil, in, &s); err != nil {
				return err
			}
			return show(&s)
		},
	}
	create.Flags().StringVar(&cluster, "cluster", "", "the service's cluster")
	create.Flags().StringVar(&name, "name", "", "the service's name")
	create.Flags().StringVar(&taskDef, "taskdef", "", "its task definition: FAMILY:REVISION, or FAMILY for the latest ACTIVE revision")
	create.Flags().IntVar(&desired, "desired-count", 0, "how many tasks to keep running")
	create.Flags().StringVarP(&configFile, "file", "f", "", "the service's configuration (YAML or JSON)")
	for _, f := range []string{"cluster", "name", "taskdef"} {
		_ = create.MarkFlagRequired(f)
	}

	update := &cobra.Command{
		Use:   "update --cluster C NAME [--desired-count N] [--taskdef FAMILY:REVISION] [--force-new-deployment] [-f CONFIG]",
		Short: "Change a service's desired count, revision or configuration (deployer)",
		Long: `Update changes what it is given. A new revision (or --force-new-deployment)
starts a rolling deployment, and its images must be admitted now; a new
desired count alone is not refused, and the tasks it starts that are not
admitted stop at once, each with the reason, in the service's events. -f
replaces the whole configuration.
` + serviceConfigHelp + clientHelp,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			var u deploy.ServiceUpdate
			if cmd.Flags().Changed("desired-count") {
				u.DesiredCount = &desired
			}
			if taskDef != "" {
				u.TaskDefinition = &taskDef
			}
			u.ForceNewDeployment = force
			if configFile != "" {
				if u.Config, err = readServiceConfig(configFile); err != nil {
					return usageError{fmt.Errorf("-f: %w", err)}
				}
			}
			if u.DesiredCount == nil && u.TaskDefinition == nil && u.Config == nil && !force {
				return usageError{errors.New("nothing to change: give --desired-count, --taskdef, --force-new-deployment or -f")}
			}
			var s deploy.Service
			if err := c.call(cmd.Context(), "PATCH", pathOf("clusters", cluster, "services", a[0]), nil, u, &s); err != nil {
				return err
			}
			return show(&s)
		},
	}
	update.Flags().StringVar(&cluster, "cluster", "", "the service's cluster")
	update.Flags().IntVar(&desired, "desired-count", 0, "how many tasks to keep running")
	update.Flags().StringVar(&taskDef, "taskdef", "", "a new revision: FAMILY:REVISION, or FAMILY for the latest ACTIVE one")
	update.Flags().BoolVar(&force, "force-new-deployment", false, "replace every task, even with the same revision")
	update.Flags().StringVarP(&configFile, "file", "f", "", "a new configuration (YAML or JSON), replacing the whole of it")
	_ = update.MarkFlagRequired("cluster")

	var events int
	var watchService bool
	describe := &cobra.Command{
		Use:   "describe --cluster C NAME",
		Short: "Show a service: its deployments, task counts, load balancer and latest events",
		Long:  "Describe shows a service with its deployments, newest first, and its latest events." + clientHelp,
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			view := func() (any, string, error) {
				var s deploy.Service
				if err := c.call(cmd.Context(), "GET", pathOf("clusters", cluster, "services", a[0]), nil, nil, &s); err != nil {
					return nil, "", err
				}
				var b strings.Builder
				err := printService(&b, &s, events)
				return s, b.String(), err
			}
			return g.show(cmd.Context(), watchService, view)
		},
	}
	describe.Flags().BoolVarP(&watchService, "watch", "w", false, "print the service again each time it changes, until interrupted")
	describe.Flags().StringVar(&cluster, "cluster", "", "the service's cluster")
	describe.Flags().IntVar(&events, "events", 10, "how many of the latest events to show")
	_ = describe.MarkFlagRequired("cluster")

	list := &cobra.Command{
		Use: "list [--cluster C]", Short: "List services with their counts and rollout state",
		Long: "List lists the services of every cluster, or of one." + clientHelp,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			q := url.Values{}
			if cluster != "" {
				q.Set("cluster", cluster)
			}
			var out struct {
				Services []deploy.Service `json:"services"`
			}
			if err := c.call(cmd.Context(), "GET", pathOf("services"), q, nil, &out); err != nil {
				return err
			}
			if g.structured() {
				return g.write(orEmpty(out.Services))
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CLUSTER\tSERVICE\tSTATUS\tTASK DEFINITION\tDESIRED\tRUNNING\tPENDING\tROLLOUT\tLOAD BALANCER")
			for _, s := range out.Services {
				rollout := "-"
				if len(s.Deployments) > 0 {
					rollout = s.Deployments[0].RolloutState
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", s.Cluster, s.Name, s.Status, s.TaskDefinition, s.DesiredCount,
					s.RunningCount, s.PendingCount, rollout, orDash(s.LoadBalancerAddr))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&cluster, "cluster", "", "only this cluster's services")

	del := &cobra.Command{
		Use: "delete --cluster C NAME", Short: "Delete a service: its tasks stop, then it is gone (deployer)",
		Long: "Delete sets the service DRAINING at desired count 0; it is forgotten once its tasks have stopped." + clientHelp,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			if err := c.call(cmd.Context(), "DELETE", pathOf("clusters", cluster, "services", a[0]), nil, nil, nil); err != nil {
				return err
			}
			if g.structured() {
				return g.write(map[string]string{"clusterName": cluster, "serviceName": a[0], "status": deploy.StatusDraining})
			}
			_, err = fmt.Fprintf(g.stdout, "service %s in cluster %s is draining: its tasks stop, then it is gone\n", a[0], cluster)
			return err
		},
	}
	del.Flags().StringVar(&cluster, "cluster", "", "the service's cluster")
	_ = del.MarkFlagRequired("cluster")

	var digest, reason, expires string
	override := &cobra.Command{
		Use:   `override --cluster C NAME --digest sha256:… --reason "…" --expires 2027-01-31`,
		Short: "Let an image the gate did not approve run in one service, for a reason, until a date (admin)",
		Long: `Override lets the image with --digest run in the service although no
pipeline's gate approved it, as a policy exception does: for --reason, which
is kept and shown in the service's events, until --expires (a date, meaning
midnight UTC at its start, or an RFC 3339 time; at most 90 days ahead).
Overriding the same digest again replaces the reason and the expiry. Only an
admin token may.` + clientHelp,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			at, err := policy.ParseExpiry(expires)
			if err != nil {
				return usageError{fmt.Errorf("--expires: %w", err)}
			}
			var o deploy.Override
			in := map[string]any{"imageDigest": digest, "reason": reason, "expiresAt": at}
			if err := c.call(cmd.Context(), "POST", pathOf("clusters", cluster, "services", a[0], "overrides"), nil, in, &o); err != nil {
				return err
			}
			if g.structured() {
				return g.write(o)
			}
			_, err = fmt.Fprintf(g.stdout, "%s may run in service %s of cluster %s until %s: %s\n", o.Digest, o.Service, o.Cluster, when(o.ExpiresAt), o.Reason)
			return err
		},
	}
	override.Flags().StringVar(&cluster, "cluster", "", "the service's cluster")
	override.Flags().StringVar(&digest, "digest", "", "the image's digest (sha256:…)")
	override.Flags().StringVar(&reason, "reason", "", "why it may run, for the record")
	override.Flags().StringVar(&expires, "expires", "", "until when: a date (2027-01-31) or an RFC 3339 time")
	for _, f := range []string{"cluster", "digest", "reason", "expires"} {
		_ = override.MarkFlagRequired(f)
	}
	cmd.AddCommand(create, update, describe, list, del, override)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printService writes a service as describe shows it, with its latest
// events (newest first).
func printService(w io.Writer, s *deploy.Service, events int) error {
	fmt.Fprintf(w, "service %s in cluster %s: %s, %s\n", s.Name, s.Cluster, s.Status, s.TaskDefinition)
	fmt.Fprintf(w, "desired %d, running %d, pending %d\n", s.DesiredCount, s.RunningCount, s.PendingCount)
	if lb := s.Config.LoadBalancer; lb != nil {
		fmt.Fprintf(w, "load balancer http://%s to %s:%d\n", s.LoadBalancerAddr, lb.ContainerName, lb.ContainerPort)
	}
	dc := s.Config.DeploymentConfiguration
	minP, maxP := "100", "200"
	if dc.MinimumHealthyPercent != nil {
		minP = strconv.Itoa(*dc.MinimumHealthyPercent)
	}
	if dc.MaximumPercent != nil {
		maxP = strconv.Itoa(*dc.MaximumPercent)
	}
	breaker := "off"
	if cb := dc.CircuitBreaker; cb != nil && cb.Enable {
		breaker = "on"
		if cb.Rollback {
			breaker += ", with rollback"
		}
	}
	fmt.Fprintf(w, "deployments: minimum healthy %s%%, maximum %s%%, circuit breaker %s", minP, maxP, breaker)
	if dc.Deadline != 0 {
		fmt.Fprintf(w, ", deadline %s", time.Duration(dc.Deadline))
	}
	if s.Config.HealthCheckGracePeriod != 0 {
		fmt.Fprintf(w, "; health check grace period %s", time.Duration(s.Config.HealthCheckGracePeriod))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nDEPLOYMENT\tSTATUS\tROLLOUT\tTASK DEFINITION\tDESIRED\tRUNNING\tPENDING\tFAILED\tCREATED\tREASON")
	for _, d := range s.Deployments {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", d.ID, d.Status, d.RolloutState, d.TaskDefinition, d.DesiredCount,
			d.RunningCount, d.PendingCount, d.FailedTasks, when(d.CreatedAt), oneLine(orDash(d.RolloutStateReason), 100))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Events) > 0 && events > 0 {
		fmt.Fprintln(w, "\nEVENTS")
		for i, e := range s.Events {
			if i == events {
				break
			}
			fmt.Fprintf(w, "%s  %s\n", when(e.CreatedAt), oneLine(e.Message, 300))
		}
	}
	return nil
}

func newTaskCmd(g *globals) *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{
		Use:   "task",
		Short: "List, describe and stop tasks, and read their logs (a client of the server)",
		Long:  "A task is one instance of a service's task definition revision: its containers, on the engine. Stopped tasks are kept for 24 hours." + clientHelp,
	}
	sf.add(cmd)
	var cluster, service string
	var stopped, watchTasks bool
	list := &cobra.Command{
		Use: "list [--cluster C] [--service S] [--stopped]", Short: "List tasks, newest first: those not stopped, or --stopped ones",
		Long: "List lists tasks." + clientHelp,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			q := url.Values{}
			if cluster != "" {
				q.Set("cluster", cluster)
			}
			if service != "" {
				q.Set("service", service)
			}
			if stopped {
				q.Set("status", deploy.TaskStopped)
			}
			view := func() (any, string, error) {
				var out struct {
					Tasks []deploy.Task `json:"tasks"`
				}
				if err := c.call(cmd.Context(), "GET", pathOf("tasks"), q, nil, &out); err != nil {
					return nil, "", err
				}
				var b strings.Builder
				tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
				if stopped {
					fmt.Fprintln(tw, "TASK\tCLUSTER\tSERVICE\tTASK DEFINITION\tSTOPPED\tSTOP CODE\tREASON")
					for _, t := range out.Tasks {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Cluster, t.Service, t.TaskDefinition, whenPtr(t.StoppedAt), t.StopCode,
							oneLine(t.StoppedReason, 120))
					}
				} else {
					fmt.Fprintln(tw, "TASK\tCLUSTER\tSERVICE\tTASK DEFINITION\tSTATUS\tDESIRED\tHEALTH\tSTARTED\tPORTS")
					for _, t := range out.Tasks {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Cluster, t.Service, t.TaskDefinition, t.LastStatus, t.DesiredStatus,
							t.Health, whenPtr(t.StartedAt), orDash(taskPorts(&t)))
					}
				}
				err := tw.Flush()
				return orEmpty(out.Tasks), b.String(), err
			}
			return g.show(cmd.Context(), watchTasks, view)
		},
	}
	list.Flags().BoolVarP(&watchTasks, "watch", "w", false, "print the list again each time it changes, until interrupted")
	list.Flags().StringVar(&cluster, "cluster", "", "only this cluster's tasks")
	list.Flags().StringVar(&service, "service", "", "only this service's tasks")
	list.Flags().BoolVar(&stopped, "stopped", false, "list stopped tasks instead (kept 24 hours), with why they stopped")

	describe := &cobra.Command{
		Use: "describe ID", Short: "Show a task: its containers, ports, health, and why it stopped",
		Long: "Describe shows a task; a stopped one with the last lines its containers wrote." + clientHelp,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			var t deploy.Task
			if err := c.call(cmd.Context(), "GET", pathOf("tasks", a[0]), nil, nil, &t); err != nil {
				return err
			}
			if g.structured() {
				return g.write(t)
			}
			return printTask(g.stdout, &t)
		},
	}
	var reason string
	stop := &cobra.Command{
		Use: "stop ID [--reason R]", Short: "Stop a task; its service starts another to keep its desired count (deployer)",
		Long: "Stop stops a task: SIGTERM, then SIGKILL after the container's stop timeout." + clientHelp,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			var t deploy.Task
			if err := c.call(cmd.Context(), "POST", pathOf("tasks", a[0], "stop"), nil, map[string]string{"reason": reason}, &t); err != nil {
				return err
			}
			if g.structured() {
				return g.write(t)
			}
			_, err = fmt.Fprintf(g.stdout, "task %s: %s (%s: %s)\n", t.ID, t.LastStatus, t.StopCode, t.StoppedReason)
			return err
		},
	}
	stop.Flags().StringVar(&reason, "reason", "", `why, kept as the task's stopped reason (default "Task stopped by user")`)

	var container string
	var tail int
	var follow bool
	logs := &cobra.Command{
		Use:   "logs ID [--container NAME] [--tail N] [--follow]",
		Short: "Print a task container's output (stdout and stderr)",
		Long: `Logs prints what a task's container wrote: from the engine while the task's
containers exist, else the last lines kept when it stopped. --follow keeps
printing while the container runs (Ctrl-C ends it).` + clientHelp,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			if tail < 0 {
				return usageError{fmt.Errorf("--tail %d: want a number of lines (0 is all)", tail)}
			}
			q := url.Values{}
			if container != "" {
				q.Set("container", container)
			}
			if tail > 0 {
				q.Set("tail", strconv.Itoa(tail))
			}
			if follow {
				q.Set("follow", "true")
			}
			return c.logs(cmd.Context(), pathOf("tasks", a[0], "logs"), q, g.stdout)
		},
	}
	logs.Flags().StringVar(&container, "container", "", "the container (default the task's first)")
	logs.Flags().IntVar(&tail, "tail", 0, "only the last N lines (0: all)")
	logs.Flags().BoolVarP(&follow, "follow", "F", false, "keep printing while the container runs")
	cmd.AddCommand(list, describe, stop, logs)
	return cmd
}

// logs copies a task's output to w as it comes; an interrupt ends it
// without an error.
func (c *apiClient) logs(ctx context.Context, path string, q url.Values, w io.Writer) error {
	resp, err := c.send(ctx, c.stream, "GET", path, q, nil)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil && ctx.Err() == nil {
		return internalError{fmt.Errorf("server %s: the logs were cut short: %v", c.base, err)}
	}
	return nil
}

func taskPorts(t *deploy.Task) string {
	var ps []string
	for _, ct := range t.Containers {
		for _, p := range ct.Ports {
			ps = append(ps, fmt.Sprintf("%s:%d->%d/%s", p.HostIP, p.HostPort, p.ContainerPort, p.Protocol))
		}
	}
	return strings.Join(ps, " ")
}

func printTask(w io.Writer, t *deploy.Task) error {
	fmt.Fprintf(w, "task %s of service %s in cluster %s: %s (desired %s), health %s\n", t.ID, t.Service, t.Cluster, t.LastStatus, t.DesiredStatus, t.Health)
	fmt.Fprintf(w, "task definition %s, deployment %s\n", t.TaskDefinition, t.DeploymentID)
	fmt.Fprintf(w, "created %s, started %s", when(t.CreatedAt), whenPtr(t.StartedAt))
	if t.StoppedAt != nil {
		fmt.Fprintf(w, ", stopped %s", whenPtr(t.StoppedAt))
	}
	fmt.Fprintln(w)
	if t.StopCode != "" {
		fmt.Fprintf(w, "stopped: %s: %s\n", t.StopCode, t.StoppedReason)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nCONTAINER\tIMAGE\tSTATUS\tEXIT\tHEALTH\tPORTS\tREASON")
	for _, ct := range t.Containers {
		exit := "-"
		if ct.ExitCode != nil {
			exit = strconv.Itoa(*ct.ExitCode)
			if ct.OOMKilled {
				exit += " (OOM)"
			}
		}
		var ps []string
		for _, p := range ct.Ports {
			ps = append(ps, fmt.Sprintf("%s:%d->%d/%s", p.HostIP, p.HostPort, p.ContainerPort, p.Protocol))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ct.Name, shortImage(ct.Image), ct.LastStatus, exit, orDash(ct.Health),
			orDash(strings.Join(ps, " ")), oneLine(orDash(ct.Reason), 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if t.LogTail != "" {
		fmt.Fprintf(w, "\nlast lines:\n%s", t.LogTail)
		if !strings.HasSuffix(t.LogTail, "\n") {
			fmt.Fprintln(w)
		}
	}
	return nil
}
