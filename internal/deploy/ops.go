package deploy

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"

	"github.com/distribution/reference"

	"github.com/scangate/scangate/internal/engine"
	"github.com/scangate/scangate/internal/scanner"
	"github.com/scangate/scangate/internal/taskdef"
)

// Resolver turns a tag of scangate's registry into the digest it names now.
type Resolver interface {
	Resolve(ctx context.Context, repository, tag string) (string, error)
}

// CreateCluster makes a cluster.
func (c *Controller) CreateCluster(ctx context.Context, cl Cluster) (*Cluster, error) {
	if err := checkName("cluster", cl.Name); err != nil {
		return nil, err
	}
	if cl.Runtime == "" {
		cl.Runtime = RuntimeDocker
	}
	if cl.Runtime != RuntimeDocker {
		return nil, fmt.Errorf("%w: runtime %q: this server runs docker", ErrInvalid, cl.Runtime)
	}
	if cl.HostIP == "" {
		cl.HostIP = "127.0.0.1"
	}
	if net.ParseIP(cl.HostIP) == nil {
		return nil, fmt.Errorf("%w: host address %q is not an IP address", ErrInvalid, cl.HostIP)
	}
	cl.CreatedAt = c.opts.Now().UTC()
	err := c.st.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := loadCluster(ctx, tx, cl.Name); err == nil {
			return fmt.Errorf("cluster %s: %w", cl.Name, ErrExists)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO clusters (name, runtime, host_ip, allow_privileged, created_at) VALUES ($1, $2, $3, $4, $5)`,
			cl.Name, cl.Runtime, cl.HostIP, cl.AllowPrivileged, formatTime(cl.CreatedAt))
		return err
	})
	if err != nil {
		return nil, err
	}
	c.Trigger()
	return &cl, nil
}

// Clusters lists the clusters with their counts.
func (c *Controller) Clusters(ctx context.Context) ([]*Cluster, error) {
	cls, err := queryAll(ctx, c.st.Reader(), scanCluster, `SELECT `+clusterColumns+` FROM clusters ORDER BY name`)
	if err != nil {
		return nil, err
	}
	for _, cl := range cls {
		if err := c.st.Reader().QueryRowContext(ctx, `SELECT
			(SELECT COUNT(*) FROM services WHERE cluster = $1 AND status = 'ACTIVE'),
			(SELECT COUNT(*) FROM tasks WHERE cluster = $1 AND last_status = 'RUNNING')`, cl.Name).Scan(&cl.ActiveServices, &cl.RunningTasksCount); err != nil {
			return nil, err
		}
	}
	return cls, nil
}

// DeleteCluster removes a cluster that has no services; the next reconcile
// removes what the engine had for it.
func (c *Controller) DeleteCluster(ctx context.Context, name string) error {
	defer c.Trigger()
	return c.st.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := loadCluster(ctx, tx, name); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM services WHERE cluster = $1`, name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: cluster %s has %d services: delete them first", ErrInvalid, name, n)
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM clusters WHERE name = $1`, name)
		return err
	})
}

// RegisterTaskDefinition stores def as its family's next revision, with
// every image pinned by digest: a tag of scangate's registry is resolved
// now, so that a revision always runs the image it was registered with.
func (c *Controller) RegisterTaskDefinition(ctx context.Context, def *taskdef.Definition, by string) (*TaskDefinition, error) {
	def = def.Clone()
	// Privileged containers are checked against the cluster when a
	// service uses the revision.
	if err := def.Validate(taskdef.Options{AllowPrivileged: true}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for i := range def.ContainerDefinitions {
		pinned, err := c.pin(ctx, def.ContainerDefinitions[i].Image)
		if err != nil {
			return nil, fmt.Errorf("containerDefinitions[%d] (%s): %w", i, def.ContainerDefinitions[i].Name, err)
		}
		def.ContainerDefinitions[i].Image = pinned
	}
	var td *TaskDefinition
	err := c.st.InTx(ctx, func(tx *sql.Tx) (err error) {
		td, err = c.register(ctx, tx, def, by)
		return err
	})
	return td, err
}

func (c *Controller) register(ctx context.Context, tx *sql.Tx, def *taskdef.Definition, by string) (*TaskDefinition, error) {
	doc, err := json.Marshal(def)
	if err != nil {
		return nil, err
	}
	var rev int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(revision), 0) + 1 FROM task_definitions WHERE family = $1`, def.Family).Scan(&rev); err != nil {
		return nil, err
	}
	now := c.opts.Now().UTC()
	if _, err := tx.ExecContext(ctx, `INSERT INTO task_definitions (family, revision, status, doc, registered_by, registered_at)
		VALUES ($1, $2, 'ACTIVE', $3, $4, $5)`, def.Family, rev, string(doc), by, formatTime(now)); err != nil {
		return nil, err
	}
	return &TaskDefinition{Family: def.Family, Revision: rev, Status: StatusActive, Definition: def, RegisteredBy: by, RegisteredAt: now}, nil
}

// pin returns image pinned by digest in scangate's registry.
func (c *Controller) pin(ctx context.Context, image string) (string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", fmt.Errorf("%w: image %q: %v", ErrInvalid, image, err)
	}
	if host := reference.Domain(named); host != c.opts.Registry {
		return "", fmt.Errorf("%w: image %s is not in scangate's registry (%s): only images scangate scanned can run", ErrInvalid, image, c.opts.Registry)
	}
	if canon, ok := named.(reference.Canonical); ok {
		return reference.TrimNamed(named).String() + "@" + canon.Digest().String(), nil
	}
	tag := "latest"
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	if c.opts.Resolver == nil {
		return "", fmt.Errorf("%w: image %s: pin it by digest (REPOSITORY@sha256:…)", ErrInvalid, image)
	}
	digest, err := c.opts.Resolver.Resolve(ctx, reference.Path(named), tag)
	if err != nil {
		return "", fmt.Errorf("%w: image %s: %v", ErrInvalid, image, err)
	}
	return reference.TrimNamed(named).String() + "@" + digest, nil
}

// TaskDefinitions lists a family's revisions (every family's, newest
// first, if family is empty).
func (c *Controller) TaskDefinitions(ctx context.Context, family string) ([]*TaskDefinition, error) {
	q := `SELECT ` + taskDefColumns + ` FROM task_definitions`
	args := []any{}
	if family != "" {
		q += ` WHERE family = $1`
		args = append(args, family)
	}
	return queryAll(ctx, c.st.Reader(), scanTaskDef, q+` ORDER BY family, revision DESC LIMIT 1000`, args...)
}

// TaskDefinition returns family:revision ("family" alone: the latest
// ACTIVE revision).
func (c *Controller) TaskDefinition(ctx context.Context, ref string) (*TaskDefinition, error) {
	family, rev, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	return loadTaskDef(ctx, c.st.Reader(), family, rev)
}

// DeregisterTaskDefinition marks a revision INACTIVE: services that run it
// go on, new ones cannot use it.
func (c *Controller) DeregisterTaskDefinition(ctx context.Context, ref string) (*TaskDefinition, error) {
	family, rev, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	if rev == 0 {
		return nil, fmt.Errorf("%w: name the revision to deregister (%s:N)", ErrInvalid, family)
	}
	err = c.st.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := loadTaskDef(ctx, tx, family, rev); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE task_definitions SET status = 'INACTIVE', deregistered_at = $1 WHERE family = $2 AND revision = $3 AND status = 'ACTIVE'`,
			formatTime(c.opts.Now()), family, rev)
		return err
	})
	if err != nil {
		return nil, err
	}
	return loadTaskDef(ctx, c.st.Reader(), family, rev)
}

// ServiceInput creates a service.
type ServiceInput struct {
	Cluster        string        `json:"clusterName"`
	Name           string        `json:"serviceName"`
	TaskDefinition string        `json:"taskDefinition"`
	DesiredCount   int           `json:"desiredCount"`
	Config         ServiceConfig `json:"config"`
	// By is who asks, for the service's events.
	By string `json:"-"`
}

func checkConfig(cfg *ServiceConfig, desired int) error {
	if desired < 0 || desired > maxDesiredCount {
		return fmt.Errorf("%w: desired count %d: want 0 to %d", ErrInvalid, desired, maxDesiredCount)
	}
	dc := cfg.DeploymentConfiguration
	minP, maxP := defaultMinimumHealthyPercent, defaultMaximumPercent
	if dc.MinimumHealthyPercent != nil {
		minP = *dc.MinimumHealthyPercent
	}
	if dc.MaximumPercent != nil {
		maxP = *dc.MaximumPercent
	}
	if minP < 0 || minP > 100 {
		return fmt.Errorf("%w: minimumHealthyPercent %d: want 0 to 100", ErrInvalid, minP)
	}
	if maxP < 100 || maxP > 200 {
		return fmt.Errorf("%w: maximumPercent %d: want 100 to 200", ErrInvalid, maxP)
	}
	if minP == 100 && maxP == 100 {
		return fmt.Errorf("%w: minimumHealthyPercent 100 and maximumPercent 100 leave no room to replace a task", ErrInvalid)
	}
	if lb := cfg.LoadBalancer; lb != nil {
		if lb.Port < 1 || lb.Port > 65535 || lb.ContainerPort < 1 || lb.ContainerPort > 65535 {
			return fmt.Errorf("%w: loadBalancer: listenerPort and containerPort must be ports (1-65535)", ErrInvalid)
		}
		if lb.ContainerName == "" {
			return fmt.Errorf("%w: loadBalancer: name the container (containerName)", ErrInvalid)
		}
	}
	return nil
}

// checkRevision refuses a revision a service in cl cannot run; with admit,
// its images must also pass admission (a service created at desired count
// 0 may name an image not approved yet, as the seed's does).
func (c *Controller) checkRevision(ctx context.Context, q querier, cl *Cluster, service string, td *TaskDefinition, cfg ServiceConfig, admit bool) error {
	if td.Status != StatusActive {
		return fmt.Errorf("%w: task definition %s is %s", ErrInvalid, td.Ref(), td.Status)
	}
	if err := td.Definition.Validate(taskdef.Options{AllowPrivileged: cl.AllowPrivileged}); err != nil {
		return fmt.Errorf("%w: task definition %s in cluster %s: %v", ErrInvalid, td.Ref(), cl.Name, err)
	}
	if lb := cfg.LoadBalancer; lb != nil {
		found := false
		for _, cd := range td.Definition.ContainerDefinitions {
			for _, p := range cd.PortMappings {
				found = found || (cd.Name == lb.ContainerName && p.ContainerPort == lb.ContainerPort)
			}
		}
		if !found {
			return fmt.Errorf("%w: loadBalancer: %s has no container %s with port %d mapped", ErrInvalid, td.Ref(), lb.ContainerName, lb.ContainerPort)
		}
	}
	for _, cd := range td.Definition.ContainerDefinitions {
		if !admit {
			break
		}
		if _, err := c.admit(ctx, q, cl.Name, service, cd.Image); err != nil {
			return err
		}
	}
	return nil
}

// CreateService makes a service and its first deployment.
func (c *Controller) CreateService(ctx context.Context, in ServiceInput) (*Service, error) {
	if err := checkName("service", in.Name); err != nil {
		return nil, err
	}
	if err := checkConfig(&in.Config, in.DesiredCount); err != nil {
		return nil, err
	}
	family, rev, err := ParseRef(in.TaskDefinition)
	if err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(in.Config)
	if err != nil {
		return nil, err
	}
	err = c.st.InTx(ctx, func(tx *sql.Tx) error {
		cl, err := loadCluster(ctx, tx, in.Cluster)
		if err != nil {
			return err
		}
		if _, err := loadService(ctx, tx, in.Cluster, in.Name); err == nil {
			return fmt.Errorf("service %s in cluster %s: %w", in.Name, in.Cluster, ErrExists)
		}
		td, err := loadTaskDef(ctx, tx, family, rev)
		if err != nil {
			return err
		}
		if err := c.checkRevision(ctx, tx, cl, in.Name, td, in.Config, in.DesiredCount > 0); err != nil {
			return err
		}
		if err := c.checkListener(ctx, tx, in.Cluster, in.Name, in.Config.LoadBalancer); err != nil {
			return err
		}
		now := formatTime(c.opts.Now())
		if _, err := tx.ExecContext(ctx, `INSERT INTO services (cluster, name, status, family, revision, desired_count, config, created_at, updated_at)
			VALUES ($1, $2, 'ACTIVE', $3, $4, $5, $6, $7, $7)`, in.Cluster, in.Name, td.Family, td.Revision, in.DesiredCount, string(cfg), now); err != nil {
			return err
		}
		s, err := loadService(ctx, tx, in.Cluster, in.Name)
		if err != nil {
			return err
		}
		if _, err := c.newDeployment(ctx, tx, s, td.Family, td.Revision, "", ""); err != nil {
			return err
		}
		return c.serviceEvent(ctx, tx, in.Cluster, in.Name, "INFO", "SERVICE_CREATED", fmt.Sprintf("was created with %s, desired count %d%s.", td.Ref(), in.DesiredCount, by(in.By)))
	})
	if err != nil {
		return nil, err
	}
	c.Trigger()
	return c.DescribeService(ctx, in.Cluster, in.Name)
}

// checkListener refuses a listener port another service of the cluster
// has.
func (c *Controller) checkListener(ctx context.Context, q querier, cluster, service string, lb *LoadBalancer) error {
	if lb == nil {
		return nil
	}
	others, err := queryAll(ctx, q, scanService, `SELECT `+serviceColumns+` FROM services WHERE cluster = $1 AND name <> $2`, cluster, service)
	if err != nil {
		return err
	}
	for _, o := range others {
		if o.Config.LoadBalancer != nil && o.Config.LoadBalancer.Port == lb.Port {
			return fmt.Errorf("%w: listener port %d is service %s's", ErrInvalid, lb.Port, o.Name)
		}
	}
	return nil
}

// newDeployment makes a PRIMARY deployment of family:revision for s; the
// deployments before it become ACTIVE, their tasks to be replaced. An
// older deployment still in progress for a pipeline execution is told it
// was superseded.
func (c *Controller) newDeployment(ctx context.Context, tx *sql.Tx, s *Service, family string, revision int, executionID, rollbackOf string) (*Deployment, error) {
	prev, err := serviceDeployments(ctx, tx, s.Cluster, s.Name, false)
	if err != nil {
		return nil, err
	}
	now := c.opts.Now().UTC()
	d := &Deployment{ID: "ecs-svc-" + newID()[:20], Status: StatusPrimary, RolloutState: RolloutInProgress, DesiredCount: s.DesiredCount,
		ExecutionID: executionID, RollbackOf: rollbackOf, CreatedAt: now, UpdatedAt: now, cluster: s.Cluster, service: s.Name,
		family: family, revision: revision, TaskDefinition: fmt.Sprintf("%s:%d", family, revision)}
	for _, p := range prev {
		if _, err := tx.ExecContext(ctx, `UPDATE deployments SET status = 'ACTIVE', updated_at = $1 WHERE id = $2`, formatTime(now), p.ID); err != nil {
			return nil, err
		}
		if p.RolloutState == RolloutInProgress && p.ExecutionID != "" {
			if err := c.publishDeployment(ctx, tx, p, EventDeploymentSuperseded, "superseded by deployment "+d.ID+" ("+d.TaskDefinition+")", ""); err != nil {
				return nil, err
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO deployments (id, cluster, service, status, rollout_state, reason, family, revision, desired_count,
		execution_id, rollback_of, created_at, updated_at) VALUES ($1, $2, $3, 'PRIMARY', 'IN_PROGRESS', '', $4, $5, $6, $7, $8, $9, $9)`,
		d.ID, s.Cluster, s.Name, family, revision, s.DesiredCount, executionID, rollbackOf, formatTime(now)); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE services SET family = $1, revision = $2, updated_at = $3 WHERE cluster = $4 AND name = $5`,
		family, revision, formatTime(now), s.Cluster, s.Name); err != nil {
		return nil, err
	}
	c.mu.Lock()
	delete(c.backoff, s.Cluster+"/"+s.Name)
	c.mu.Unlock()
	return d, c.publishDeployment(ctx, tx, d, EventDeploymentInProgress, "deployment of "+d.TaskDefinition+" started", "")
}

// ServiceUpdate changes a service; nil fields stay as they are.
type ServiceUpdate struct {
	TaskDefinition     *string        `json:"taskDefinition,omitempty"`
	DesiredCount       *int           `json:"desiredCount,omitempty"`
	Config             *ServiceConfig `json:"config,omitempty"`
	ForceNewDeployment bool           `json:"forceNewDeployment,omitempty"`
	// By is who asks, for the service's events.
	By string `json:"-"`
}

// UpdateService changes a service's desired count, configuration or task
// definition; a new revision (or a forced deployment) starts a rolling
// deployment.
func (c *Controller) UpdateService(ctx context.Context, cluster, name string, u ServiceUpdate) (*Service, error) {
	err := c.st.InTx(ctx, func(tx *sql.Tx) error {
		_, err := c.updateService(ctx, tx, cluster, name, u, "")
		return err
	})
	if err != nil {
		return nil, err
	}
	c.Trigger()
	return c.DescribeService(ctx, cluster, name)
}

func (c *Controller) updateService(ctx context.Context, tx *sql.Tx, cluster, name string, u ServiceUpdate, executionID string) (*Deployment, error) {
	cl, err := loadCluster(ctx, tx, cluster)
	if err != nil {
		return nil, err
	}
	s, err := loadService(ctx, tx, cluster, name)
	if err != nil {
		return nil, err
	}
	if s.Status != StatusActive {
		return nil, fmt.Errorf("%w: service %s is %s", ErrInvalid, name, s.Status)
	}
	cfg, desired := s.Config, s.DesiredCount
	if u.Config != nil {
		cfg = *u.Config
	}
	if u.DesiredCount != nil {
		desired = *u.DesiredCount
	}
	if err := checkConfig(&cfg, desired); err != nil {
		return nil, err
	}
	if err := c.checkListener(ctx, tx, cluster, name, cfg.LoadBalancer); err != nil {
		return nil, err
	}
	family, rev := s.family, s.revision
	if u.TaskDefinition != nil {
		if family, rev, err = ParseRef(*u.TaskDefinition); err != nil {
			return nil, err
		}
	}
	td, err := loadTaskDef(ctx, tx, family, rev)
	if err != nil {
		return nil, err
	}
	changed := td.Family != s.family || td.Revision != s.revision
	// A new revision must be admitted now; a change of the desired count
	// alone is not refused (as in ECS): the tasks it starts are, each with
	// the reason, so that a service set to 1 before its first approved
	// image waits for it, as the seed's does.
	if changed {
		if err := c.checkRevision(ctx, tx, cl, name, td, cfg, desired > 0); err != nil {
			return nil, err
		}
	}
	doc, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	now := formatTime(c.opts.Now())
	if _, err := tx.ExecContext(ctx, `UPDATE services SET desired_count = $1, config = $2, updated_at = $3 WHERE cluster = $4 AND name = $5`,
		desired, string(doc), now, cluster, name); err != nil {
		return nil, err
	}
	if desired != s.DesiredCount {
		if _, err := tx.ExecContext(ctx, `UPDATE deployments SET desired_count = $1, updated_at = $2 WHERE cluster = $3 AND service = $4 AND status = 'PRIMARY'`,
			desired, now, cluster, name); err != nil {
			return nil, err
		}
		if err := c.serviceEvent(ctx, tx, cluster, name, "INFO", "SERVICE_DESIRED_COUNT", fmt.Sprintf("desired count changed from %d to %d%s.", s.DesiredCount, desired, by(u.By))); err != nil {
			return nil, err
		}
	}
	s.DesiredCount, s.Config = desired, cfg
	if changed || u.ForceNewDeployment || executionID != "" {
		return c.newDeployment(ctx, tx, s, td.Family, td.Revision, executionID, "")
	}
	deps, err := serviceDeployments(ctx, tx, cluster, name, false)
	if err != nil || len(deps) == 0 {
		return nil, err
	}
	return deps[0], nil
}

func by(who string) string {
	if who == "" {
		return ""
	}
	return " by " + who
}

// DeleteService stops a service's tasks and then forgets it.
func (c *Controller) DeleteService(ctx context.Context, cluster, name string) error {
	err := c.st.InTx(ctx, func(tx *sql.Tx) error {
		s, err := loadService(ctx, tx, cluster, name)
		if err != nil {
			return err
		}
		if s.Status == StatusDraining {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE services SET status = 'DRAINING', desired_count = 0, updated_at = $1 WHERE cluster = $2 AND name = $3`,
			formatTime(c.opts.Now()), cluster, name); err != nil {
			return err
		}
		return c.serviceEvent(ctx, tx, cluster, name, "INFO", "SERVICE_DRAINING", "is being deleted: its tasks are stopping.")
	})
	c.Trigger()
	return err
}

// Services lists a cluster's services (every cluster's if cluster is "").
func (c *Controller) Services(ctx context.Context, cluster string) ([]*Service, error) {
	q := `SELECT ` + serviceColumns + ` FROM services`
	args := []any{}
	if cluster != "" {
		q += ` WHERE cluster = $1`
		args = append(args, cluster)
	}
	list, err := queryAll(ctx, c.st.Reader(), scanService, q+` ORDER BY cluster, name`, args...)
	if err != nil {
		return nil, err
	}
	for _, s := range list {
		if err := c.fill(ctx, s, false); err != nil {
			return nil, err
		}
	}
	return list, nil
}

// DescribeService is a service with its deployments and latest events.
func (c *Controller) DescribeService(ctx context.Context, cluster, name string) (*Service, error) {
	s, err := loadService(ctx, c.st.Reader(), cluster, name)
	if err != nil {
		return nil, err
	}
	return s, c.fill(ctx, s, true)
}

// fill counts a service's tasks per deployment.
func (c *Controller) fill(ctx context.Context, s *Service, withEvents bool) error {
	deps, err := serviceDeployments(ctx, c.st.Reader(), s.Cluster, s.Name, false)
	if err != nil {
		return err
	}
	tasks, err := liveTasks(ctx, c.st.Reader(), s.Cluster, s.Name)
	if err != nil {
		return err
	}
	s.Deployments = make([]Deployment, 0, len(deps))
	for _, d := range deps {
		d.count(tasks)
		s.RunningCount += d.RunningCount
		s.PendingCount += d.PendingCount
		s.Deployments = append(s.Deployments, *d)
	}
	c.mu.Lock()
	s.LoadBalancerAddr = c.lbAddrs[lbName(s)]
	c.mu.Unlock()
	if s.LoadBalancerAddr == "" && s.Config.LoadBalancer != nil {
		var ip string
		_ = c.st.Reader().QueryRowContext(ctx, `SELECT host_ip FROM clusters WHERE name = $1`, s.Cluster).Scan(&ip)
		s.LoadBalancerAddr = net.JoinHostPort(ip, fmt.Sprint(s.Config.LoadBalancer.Port))
	}
	if withEvents {
		s.Events, err = serviceEvents(ctx, c.st.Reader(), s.Cluster, s.Name, maxServiceEvents)
	}
	return err
}

// count counts d's tasks among a service's live tasks: running, or on
// their way to it.
func (d *Deployment) count(tasks []*Task) {
	for _, t := range tasks {
		if t.DeploymentID != d.ID || t.DesiredStatus != TaskRunning {
			continue
		}
		if t.LastStatus == TaskRunning {
			d.RunningCount++
		} else {
			d.PendingCount++
		}
	}
}

// TaskFilter chooses tasks to list.
type TaskFilter struct {
	Cluster, Service string
	// Status is RUNNING (live tasks, the default) or STOPPED.
	Status string
	// Digest lists the live tasks that run an image digest.
	Digest string
}

// Tasks lists tasks, newest first.
func (c *Controller) Tasks(ctx context.Context, f TaskFilter) ([]*Task, error) {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if f.Cluster != "" {
		add("cluster = $%d", f.Cluster)
	}
	if f.Service != "" {
		add("service = $%d", f.Service)
	}
	switch f.Status {
	case "", TaskRunning:
		conds = append(conds, "last_status <> 'STOPPED'")
	case TaskStopped:
		conds = append(conds, "last_status = 'STOPPED'")
	default:
		return nil, fmt.Errorf("%w: status %q: want RUNNING or STOPPED", ErrInvalid, f.Status)
	}
	if f.Digest != "" {
		add("containers LIKE $%d", "%@"+f.Digest+"\"%")
	}
	return queryAll(ctx, c.st.Reader(), scanTask, `SELECT `+taskColumns+` FROM tasks WHERE `+strings.Join(conds, " AND ")+
		` ORDER BY created_at DESC LIMIT 1000`, args...)
}

// Task returns one task.
func (c *Controller) Task(ctx context.Context, id string) (*Task, error) {
	return loadTask(ctx, c.st.Reader(), id)
}

// StopTask stops a task at a person's request; its service starts another.
func (c *Controller) StopTask(ctx context.Context, id, reason string) (*Task, error) {
	t, err := loadTask(ctx, c.st.Reader(), id)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		reason = "Task stopped by user"
	}
	if err := c.stopTask(ctx, t, StopUserInitiated, reason, false); err != nil {
		return nil, err
	}
	return loadTask(ctx, c.st.Reader(), id)
}

// Logs writes a task container's output: from the engine while its
// containers exist, else the last lines kept when it stopped.
func (c *Controller) Logs(ctx context.Context, id, container string, opts engine.LogOptions, w io.Writer) error {
	t, err := loadTask(ctx, c.st.Reader(), id)
	if err != nil {
		return err
	}
	if container == "" && len(t.Containers) > 0 {
		container = t.Containers[0].Name
	}
	if t.LastStatus != TaskStopped {
		cl, err := loadCluster(ctx, c.st.Reader(), t.Cluster)
		if err != nil {
			return err
		}
		rt, err := c.runtime(cl)
		if err != nil {
			return err
		}
		err = rt.Logs(ctx, t.Cluster, t.ID, container, opts, w)
		if !errors.Is(err, engine.ErrNotFound) {
			return err
		}
	}
	_, err = io.WriteString(w, t.LogTail)
	return err
}

// Use is an image's use by running tasks.
type Use struct {
	Tasks    int      `json:"runningTasks"`
	Services []string `json:"services,omitempty"` // cluster/service
}

// ImageUse is an image of the registry with the tasks that run it.
type ImageUse struct {
	scanner.Image
	Use
}

// WithUse adds to each image the tasks and services that run it.
func (c *Controller) WithUse(ctx context.Context, imgs []scanner.Image) ([]ImageUse, error) {
	inUse, err := c.InUse(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ImageUse, len(imgs))
	for i, im := range imgs {
		out[i].Image = im
		if u := inUse[im.Digest]; u != nil {
			out[i].Use = *u
		}
	}
	return out, nil
}

// InUse tells, for each image digest that a live task runs, how many tasks
// and which services run it: "which running tasks use this image?".
func (c *Controller) InUse(ctx context.Context) (map[string]*Use, error) {
	tasks, err := queryAll(ctx, c.st.Reader(), scanTask, `SELECT `+taskColumns+` FROM tasks WHERE last_status <> 'STOPPED'`)
	if err != nil {
		return nil, err
	}
	out := map[string]*Use{}
	for _, t := range tasks {
		for _, ct := range t.Containers {
			_, digest, ok := strings.Cut(ct.Image, "@")
			if !ok {
				continue
			}
			u := out[digest]
			if u == nil {
				u = &Use{}
				out[digest] = u
			}
			u.Tasks++
			if svc := t.Cluster + "/" + t.Service; !slices.Contains(u.Services, svc) {
				u.Services = append(u.Services, svc)
			}
		}
	}
	return out, nil
}
