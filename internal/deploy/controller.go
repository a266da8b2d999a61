package deploy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/scangate/scangate/internal/engine"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/store"
)

// Balancer is the load balancer of services that name a listener port.
type Balancer interface {
	Listen(name, addr string) (net.Addr, error)
	SetTargets(name string, targets []Target)
	// Drain takes a target out and waits for its requests to finish.
	Drain(ctx context.Context, name, targetID string) error
	Close(name string) error
}

// Target is one healthy task behind a service's load balancer.
type Target struct {
	ID   string // the task id
	Addr string // host:port
}

// Options configure the controller.
type Options struct {
	// Runtimes by name ("docker").
	Runtimes map[string]engine.Runtime
	// Registry is scangate's registry host: the only one images run from.
	Registry string
	// Credentials pull from Registry.
	Credentials engine.Credentials
	Verdicts    Verdicts
	Resolver    Resolver // tags to digests at registration; nil: digests only
	Judge       Judge    // weighs re-evaluated images of running services
	Balancer    Balancer // nil: services cannot have load balancers
	// Busy is how often the controller looks while something changes
	// (500ms); Idle while nothing does (1m): the full reconcile.
	Busy, Idle time.Duration
	// Changes, if not 0, is how often the controller looks for changes
	// other servers on the database made (a service created through
	// another replica's API, whose Trigger reaches only that replica): a
	// cheap read of the tables' counts and last updates, which starts a
	// reconcile when they moved. 0 leaves them to the Idle reconcile.
	Changes time.Duration
	// Settle is how long a task without a health check must run before it
	// counts as serving (3s).
	Settle time.Duration
	// Retention keeps stopped tasks this long (24h).
	Retention time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
	// OnRefusal counts admission refusals (metrics).
	OnRefusal func()
	// OnDeployment counts deployments by outcome (metrics).
	OnDeployment func(outcome string)
}

// Controller owns clusters, task definitions, services, deployments and
// tasks, and runs the services' tasks on their runtimes.
type Controller struct {
	st   *store.Store
	bus  *events.Bus
	opts Options

	trigger chan struct{}

	mu       sync.Mutex
	busy     map[string]bool   // task ids with a start or a stop under way
	networks map[string]string // clusters whose network exists, to their runtime
	watching map[string]bool   // clusters watched
	backoff  map[string]backoff
	lbAddrs  map[string]string
	defs     map[string]*TaskDefinition // revisions never change
	pruned   time.Time
	wg       sync.WaitGroup
}

// backoff throttles a service whose tasks keep failing.
type backoff struct {
	failures int
	next     time.Time
}

// New returns the controller; Run starts it.
func New(st *store.Store, bus *events.Bus, opts Options) *Controller {
	if opts.Busy == 0 {
		opts.Busy = 500 * time.Millisecond
	}
	if opts.Idle == 0 {
		opts.Idle = time.Minute
	}
	if opts.Settle == 0 {
		opts.Settle = 3 * time.Second
	}
	if opts.Retention == 0 {
		opts.Retention = defaultStoppedTaskRetention
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OnRefusal == nil {
		opts.OnRefusal = func() {}
	}
	if opts.OnDeployment == nil {
		opts.OnDeployment = func(string) {}
	}
	return &Controller{st: st, bus: bus, opts: opts, trigger: make(chan struct{}, 1),
		busy: map[string]bool{}, networks: map[string]string{}, watching: map[string]bool{}, backoff: map[string]backoff{}, lbAddrs: map[string]string{},
		defs: map[string]*TaskDefinition{}}
}

// Trigger asks for a reconcile soon.
func (c *Controller) Trigger() {
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// Run reconciles until ctx ends, then waits for the starts and stops under
// way (they end with ctx; what they left is finished at the next start).
func (c *Controller) Run(ctx context.Context) {
	defer c.wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var changes <-chan time.Time
	var seen changeMark
	if c.opts.Changes > 0 {
		t := time.NewTicker(c.opts.Changes)
		defer t.Stop()
		changes = t.C
		seen, _ = c.changeMark(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.trigger:
		case <-timer.C:
		case <-changes:
			m, err := c.changeMark(ctx)
			if err != nil || m == seen {
				continue
			}
			seen = m
		}
		busy, err := c.Reconcile(ctx)
		if err != nil && ctx.Err() == nil {
			c.opts.Logger.Warn("reconcile services", "err", err)
			busy = true
		}
		next := c.opts.Idle
		if busy {
			next = c.opts.Busy
		}
		timer.Reset(next)
	}
}

// changeMark is what moves when anyone changes what the controller runs:
// clusters, services, deployments, stop requests, overrides (which write a
// service event).
type changeMark struct {
	clusters, services, deployments, stopping int64
	servicesUpdated                           string
	lastEvent                                 int64
}

func (c *Controller) changeMark(ctx context.Context) (m changeMark, err error) {
	err = c.st.Reader().QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM clusters),
		(SELECT COUNT(*) FROM services),
		(SELECT COALESCE(MAX(updated_at), '') FROM services),
		(SELECT COUNT(*) FROM deployments),
		(SELECT COUNT(*) FROM tasks WHERE desired_status = 'STOPPED'),
		(SELECT COALESCE(MAX(id), 0) FROM service_events)`).
		Scan(&m.clusters, &m.services, &m.servicesUpdated, &m.deployments, &m.stopping, &m.lastEvent)
	if err != nil {
		return changeMark{}, fmt.Errorf("look for changes: %w", err)
	}
	return m, nil
}

// Reconcile brings every service one step nearer to what it should be; busy
// reports that something is still changing.
func (c *Controller) Reconcile(ctx context.Context) (busy bool, err error) {
	clusters, err := queryAll(ctx, c.st.Reader(), scanCluster, `SELECT `+clusterColumns+` FROM clusters ORDER BY name`)
	if err != nil {
		return false, err
	}
	var errs []error
	c.removeDeleted(ctx, clusters)
	for _, cl := range clusters {
		b, err := c.reconcileCluster(ctx, cl)
		busy = busy || b
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", cl.Name, err))
		}
	}
	if err := c.prune(ctx); err != nil {
		errs = append(errs, err)
	}
	return busy, errors.Join(errs...)
}

// removeDeleted removes from the engine what EnsureCluster made for the
// clusters deleted since (DeleteCluster only forgets the row: a network
// left behind holds one of the engine's few address pools for good). It
// runs here, between reconciles, so that a reconcile that listed a cluster
// before its deletion cannot make the network again after it went. A
// failure is logged, not retried: the cluster has no tasks by then, and
// a retry every half second would not change that.
func (c *Controller) removeDeleted(ctx context.Context, clusters []*Cluster) {
	c.mu.Lock()
	gone := map[string]string{}
	for name, rt := range c.networks {
		if !slices.ContainsFunc(clusters, func(cl *Cluster) bool { return cl.Name == name }) {
			gone[name] = rt
			delete(c.networks, name)
		}
	}
	c.mu.Unlock()
	for name, runtime := range gone {
		rt, err := c.runtime(&Cluster{Name: name, Runtime: runtime})
		if err == nil {
			err = rt.RemoveCluster(ctx, name)
		}
		if err != nil {
			c.opts.Logger.Warn("remove a deleted cluster from the engine", "cluster", name, "err", err)
		}
	}
}

func (c *Controller) runtime(cl *Cluster) (engine.Runtime, error) {
	rt := c.opts.Runtimes[cl.Runtime]
	if rt == nil {
		return nil, fmt.Errorf("no %s runtime in this server", cl.Runtime)
	}
	return rt, nil
}

func (c *Controller) reconcileCluster(ctx context.Context, cl *Cluster) (bool, error) {
	rt, err := c.runtime(cl)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	ready := c.networks[cl.Name] != ""
	c.mu.Unlock()
	if !ready {
		if err := rt.EnsureCluster(ctx, cl.Name); err != nil {
			return true, err
		}
		c.mu.Lock()
		c.networks[cl.Name] = cl.Runtime
		c.mu.Unlock()
	}
	c.watch(ctx, cl.Name, rt)
	onEngine, err := rt.Tasks(ctx, cl.Name)
	if err != nil {
		return true, err
	}
	byID := make(map[string]engine.TaskState, len(onEngine))
	for _, t := range onEngine {
		byID[t.TaskID] = t
	}
	services, err := queryAll(ctx, c.st.Reader(), scanService, `SELECT `+serviceColumns+` FROM services WHERE cluster = $1 ORDER BY name`, cl.Name)
	if err != nil {
		return true, err
	}
	busy := false
	var errs []error
	for _, s := range services {
		b, err := c.reconcileService(ctx, cl, rt, s, byID)
		busy = busy || b
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", s.Name, err))
		}
	}
	// Containers of tasks that are not live in the database: a stop that
	// removed the row's last trace, or a task of a deleted service.
	live, err := queryAll(ctx, c.st.Reader(), func(r rowScanner) (string, error) {
		var id string
		return id, r.Scan(&id)
	}, `SELECT id FROM tasks WHERE cluster = $1 AND last_status <> 'STOPPED'`, cl.Name)
	if err != nil {
		return true, err
	}
	for id := range byID {
		if slices.Contains(live, id) || c.isBusy(id) {
			continue
		}
		c.opts.Logger.Info("removing the containers of a task scangate does not run", "cluster", cl.Name, "task", id)
		if err := rt.RemoveTask(ctx, cl.Name, id); err != nil {
			errs = append(errs, err)
		}
	}
	return busy, errors.Join(errs...)
}

// watch follows the cluster's container events, each a reason to look
// again at once; the stream is started again when it breaks.
func (c *Controller) watch(ctx context.Context, cluster string, rt engine.Runtime) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watching[cluster] {
		return
	}
	c.watching[cluster] = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			c.mu.Lock()
			delete(c.watching, cluster)
			c.mu.Unlock()
		}()
		ch, err := rt.Watch(ctx, cluster)
		if err != nil {
			c.opts.Logger.Debug("watch the engine", "cluster", cluster, "err", err)
			return
		}
		for range ch {
			c.Trigger()
		}
	}()
}

func (c *Controller) isBusy(taskID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.busy[taskID]
}

// goTask runs fn for a task unless something already runs for it.
func (c *Controller) goTask(ctx context.Context, taskID string, fn func(context.Context)) {
	c.mu.Lock()
	if c.busy[taskID] {
		c.mu.Unlock()
		return
	}
	c.busy[taskID] = true
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			c.mu.Lock()
			delete(c.busy, taskID)
			c.mu.Unlock()
			c.Trigger()
		}()
		fn(ctx)
	}()
}

// percent helpers, as ECS rounds them: the minimum healthy count rounds up,
// the maximum count down.
func minHealthy(desired int, cfg DeploymentConfiguration) int {
	p := defaultMinimumHealthyPercent
	if cfg.MinimumHealthyPercent != nil {
		p = *cfg.MinimumHealthyPercent
	}
	return int(math.Ceil(float64(desired) * float64(p) / 100))
}

func maxRunning(desired int, cfg DeploymentConfiguration) int {
	p := defaultMaximumPercent
	if cfg.MaximumPercent != nil {
		p = *cfg.MaximumPercent
	}
	return int(math.Floor(float64(desired) * float64(p) / 100))
}

// breakerThreshold is ECS's: half the desired count, at least 3, at most
// 200.
func breakerThreshold(desired int) int {
	n := int(math.Ceil(float64(desired) / 2))
	return min(max(n, circuitBreakerMinimumThreshold), circuitBreakerMaximumThreshold)
}

// healthy reports whether a task counts as serving: running, and healthy
// when it has a health check.
func healthy(t *Task) bool {
	return t.LastStatus == TaskRunning && t.DesiredStatus == TaskRunning && t.Health != HealthUnhealthy &&
		(t.Health == HealthHealthy || !hasHealthCheck(t))
}

// settled reports whether a task serves for good: healthy by its health
// check, or, without one, running for the settle time. A task that starts
// and exits at once (a crash at start-up) must not complete a deployment,
// or replace an old task, in the moment it looked up.
func (c *Controller) settled(t *Task) bool {
	if !healthy(t) {
		return false
	}
	return hasHealthCheck(t) || (t.StartedAt != nil && c.opts.Now().Sub(*t.StartedAt) >= c.opts.Settle)
}

func hasHealthCheck(t *Task) bool {
	for _, ct := range t.Containers {
		if ct.Health != "" {
			return true
		}
	}
	return false
}

// reconcileService observes a service's tasks on the engine, then starts
// and stops tasks as its deployments ask.
func (c *Controller) reconcileService(ctx context.Context, cl *Cluster, rt engine.Runtime, s *Service, onEngine map[string]engine.TaskState) (bool, error) {
	tasks, err := liveTasks(ctx, c.st.Reader(), s.Cluster, s.Name)
	if err != nil {
		return true, err
	}
	busy := false
	for _, t := range tasks {
		b, err := c.observe(ctx, cl, rt, s, t, onEngine)
		if err != nil {
			return true, fmt.Errorf("task %s: %w", t.ID, err)
		}
		busy = busy || b
	}
	deps, err := serviceDeployments(ctx, c.st.Reader(), s.Cluster, s.Name, false)
	if err != nil {
		return true, err
	}
	if s.Status == StatusDraining {
		return c.drainService(ctx, s, tasks)
	}
	if len(deps) == 0 || deps[0].Status != StatusPrimary {
		return busy, fmt.Errorf("no PRIMARY deployment")
	}
	b, err := c.schedule(ctx, cl, rt, s, deps, tasks)
	c.setTargets(s, tasks)
	return busy || b, err
}

// schedule is one step of the service's rolling deployment.
func (c *Controller) schedule(ctx context.Context, cl *Cluster, rt engine.Runtime, s *Service, deps []*Deployment, tasks []*Task) (bool, error) {
	primary := deps[0]
	desired := s.DesiredCount
	var live, fresh, old []*Task
	for _, t := range tasks {
		if t.DesiredStatus != TaskRunning {
			continue
		}
		live = append(live, t)
		if t.DeploymentID == primary.ID {
			fresh = append(fresh, t)
		} else {
			old = append(old, t)
		}
	}
	cfg := s.Config.DeploymentConfiguration
	if primary.RolloutState == RolloutInProgress {
		if failed, reason := c.breakerTripped(primary, s, tasks); failed {
			return true, c.failDeployment(ctx, s, primary, deps, reason)
		}
	}
	// Busy while something is in motion; a deployment that waits only for
	// its throttle is woken when it ends, not looked at twice a second.
	busy := false
	// Start the primary deployment's tasks, within the maximum percent
	// while old tasks still run; a failed deployment starts none.
	if primary.RolloutState != RolloutFailed {
		room := desired - len(fresh)
		if len(old) > 0 {
			room = min(room, maxRunning(desired, cfg)-len(live))
		}
		if room > 0 && c.throttled(s) {
			room = 0
		}
		for range max(room, 0) {
			busy = true
			if err := c.createTask(ctx, cl, rt, s, primary); err != nil {
				return true, err
			}
		}
	}
	// Scale in: the primary's surplus, least healthy and newest first.
	if len(fresh) > desired {
		busy = true
		surplus := slices.Clone(fresh)
		slices.SortStableFunc(surplus, func(a, b *Task) int {
			if healthy(a) != healthy(b) {
				if healthy(a) {
					return 1
				}
				return -1
			}
			return b.CreatedAt.Compare(a.CreatedAt)
		})
		for _, t := range surplus[:len(fresh)-desired] {
			if err := c.stopTask(ctx, t, StopServiceSchedulerInitiated, "Scaling activity initiated by deployment "+primary.ID, false); err != nil {
				return true, err
			}
		}
	}
	// Stop old tasks while enough healthy ones remain: unhealthy ones at
	// once, healthy ones down to the minimum healthy count.
	serving := 0
	for _, t := range live {
		if c.settled(t) {
			serving++
		}
	}
	floor := minHealthy(desired, cfg)
	slices.SortStableFunc(old, func(a, b *Task) int {
		if healthy(a) == healthy(b) {
			return 0
		}
		if healthy(a) {
			return 1
		}
		return -1
	})
	for _, t := range old {
		busy = true
		if c.settled(t) {
			if serving-1 < floor {
				break
			}
			serving--
		}
		if err := c.stopTask(ctx, t, StopServiceSchedulerInitiated, "Task replaced by deployment "+primary.ID+" ("+primary.TaskDefinition+")", false); err != nil {
			return true, err
		}
	}
	if primary.RolloutState == RolloutInProgress {
		for _, t := range tasks {
			busy = busy || !c.settled(t)
		}
		return busy, c.maybeComplete(ctx, s, primary, tasks)
	}
	if len(live) != desired {
		busy = true
	}
	for _, t := range tasks {
		if t.LastStatus != TaskRunning || !healthy(t) {
			busy = true
		}
	}
	return busy, nil
}

// throttled reports whether the service waits before starting another task
// after failures (1 s doubling to 5 min, as ECS throttles).
func (c *Controller) throttled(s *Service) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.backoff[s.Cluster+"/"+s.Name]
	wait := b.next.Sub(c.opts.Now())
	if wait <= 0 {
		return false
	}
	time.AfterFunc(wait, c.Trigger)
	return true
}

func (c *Controller) noteFailure(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.backoff[s]
	b.failures++
	wait := time.Second << min(b.failures-1, 9)
	b.next = c.opts.Now().Add(min(wait, 5*time.Minute))
	c.backoff[s] = b
}

func (c *Controller) noteHealthy(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.backoff, s)
}

// breakerTripped reports whether the primary deployment has failed: too
// many of its tasks stopped, or its deadline passed.
func (c *Controller) breakerTripped(d *Deployment, s *Service, tasks []*Task) (bool, string) {
	cb := s.Config.DeploymentConfiguration.CircuitBreaker
	if cb == nil || !cb.Enable {
		return false, ""
	}
	if limit := breakerThreshold(d.DesiredCount); d.FailedTasks >= limit {
		return true, fmt.Sprintf("tasks failed to start or stay healthy (%d of the threshold %d)%s", d.FailedTasks, limit, c.lastFailure(d))
	}
	deadline := time.Duration(s.Config.DeploymentConfiguration.Deadline)
	if deadline == 0 {
		deadline = defaultDeploymentDeadline
	}
	if c.opts.Now().Sub(d.CreatedAt) > deadline {
		return true, fmt.Sprintf("not completed within its deadline of %s", deadline)
	}
	return false, ""
}

// lastFailure is the reason the deployment's last failed task stopped.
func (c *Controller) lastFailure(d *Deployment) string {
	var reason, logTail string
	err := c.st.Reader().QueryRow(`SELECT stopped_reason, log_tail FROM tasks WHERE deployment_id = $1 AND failed = 1
		ORDER BY stopping_at DESC LIMIT 1`, d.ID).Scan(&reason, &logTail)
	if err != nil || reason == "" {
		return ""
	}
	s := ": " + reason
	if tail := lastLines(logTail, 5); tail != "" {
		s += "; its last lines: " + tail
	}
	return s
}

// maybeComplete marks the primary deployment COMPLETED once its tasks all
// serve and no other deployment has tasks left.
func (c *Controller) maybeComplete(ctx context.Context, s *Service, d *Deployment, tasks []*Task) error {
	n := 0
	for _, t := range tasks {
		if t.DeploymentID != d.ID {
			return nil // old tasks still running or stopping
		}
		if !c.settled(t) {
			return nil
		}
		n++
	}
	if n != s.DesiredCount {
		return nil
	}
	return c.st.InTx(ctx, func(tx *sql.Tx) error {
		cur, err := loadDeployment(ctx, tx, d.ID)
		if err != nil || cur.RolloutState != RolloutInProgress || cur.Status != StatusPrimary {
			return err
		}
		now := formatTime(c.opts.Now())
		if _, err := tx.ExecContext(ctx, `UPDATE deployments SET rollout_state = 'COMPLETED', reason = $1, updated_at = $2 WHERE id = $3`,
			"ECS deployment "+d.ID+" completed.", now, d.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deployments SET status = 'INACTIVE', updated_at = $1 WHERE cluster = $2 AND service = $3 AND id <> $4 AND status <> 'INACTIVE'`,
			now, s.Cluster, s.Name, d.ID); err != nil {
			return err
		}
		c.opts.OnDeployment(RolloutCompleted)
		if err := c.serviceEvent(ctx, tx, s.Cluster, s.Name, "INFO", EventDeploymentCompleted, "(deployment "+d.ID+") deployment completed."); err != nil {
			return err
		}
		if err := c.serviceEvent(ctx, tx, s.Cluster, s.Name, "INFO", EventSteadyState, "has reached a steady state."); err != nil {
			return err
		}
		return c.publishDeployment(ctx, tx, cur, EventDeploymentCompleted, "deployment completed: "+strconv.Itoa(n)+" tasks of "+cur.TaskDefinition+" running", "")
	})
}

// failDeployment fails the primary deployment and, when the service asks,
// rolls back to the last completed one.
func (c *Controller) failDeployment(ctx context.Context, s *Service, d *Deployment, deps []*Deployment, reason string) error {
	return c.st.InTx(ctx, func(tx *sql.Tx) error {
		cur, err := loadDeployment(ctx, tx, d.ID)
		if err != nil || cur.RolloutState != RolloutInProgress || cur.Status != StatusPrimary {
			return err
		}
		now := formatTime(c.opts.Now())
		msg := "deployment failed: " + reason
		if _, err := tx.ExecContext(ctx, `UPDATE deployments SET rollout_state = 'FAILED', reason = $1, updated_at = $2 WHERE id = $3`, msg, now, d.ID); err != nil {
			return err
		}
		c.opts.OnDeployment(RolloutFailed)
		rolledBack := ""
		if cb := s.Config.DeploymentConfiguration.CircuitBreaker; cb != nil && cb.Rollback {
			last, err := lastCompleted(ctx, tx, s, d.ID)
			if err != nil {
				return err
			}
			if last != nil {
				rolledBack = last.TaskDefinition
				msg += "; rolling back to " + last.TaskDefinition
				if _, err := c.newDeployment(ctx, tx, s, last.family, last.revision, "", d.ID); err != nil {
					return err
				}
			} else {
				msg += "; no completed deployment to roll back to"
			}
		}
		if err := c.serviceEvent(ctx, tx, s.Cluster, s.Name, "ERROR", EventDeploymentFailed, "(deployment "+d.ID+" of "+d.TaskDefinition+") "+msg); err != nil {
			return err
		}
		cur.RolloutState = RolloutFailed
		return c.publishDeployment(ctx, tx, cur, EventDeploymentFailed, msg, rolledBack)
	})
}

// lastCompleted is the newest deployment of s that completed, other than
// the one failing.
func lastCompleted(ctx context.Context, q querier, s *Service, except string) (*Deployment, error) {
	all, err := serviceDeployments(ctx, q, s.Cluster, s.Name, true)
	if err != nil {
		return nil, err
	}
	for _, d := range all {
		if d.ID != except && d.RolloutState == RolloutCompleted {
			return d, nil
		}
	}
	return nil, nil
}

// drainService stops a deleted service's tasks, then forgets the service.
func (c *Controller) drainService(ctx context.Context, s *Service, tasks []*Task) (bool, error) {
	for _, t := range tasks {
		if t.DesiredStatus == TaskRunning {
			if err := c.stopTask(ctx, t, StopServiceSchedulerInitiated, "Service deleted", false); err != nil {
				return true, err
			}
		}
	}
	if len(tasks) > 0 {
		return true, nil
	}
	if c.opts.Balancer != nil && s.Config.LoadBalancer != nil {
		_ = c.opts.Balancer.Close(lbName(s))
		c.mu.Lock()
		delete(c.lbAddrs, lbName(s))
		c.mu.Unlock()
	}
	return false, c.st.InTx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{`DELETE FROM admission_overrides WHERE cluster = $1 AND service = $2`,
			`DELETE FROM services WHERE cluster = $1 AND name = $2 AND status = 'DRAINING'`} {
			if _, err := tx.ExecContext(ctx, q, s.Cluster, s.Name); err != nil {
				return err
			}
		}
		return nil
	})
}

func lbName(s *Service) string { return s.Cluster + "/" + s.Name }

// StepDown closes the load balancers this controller opened, once its Run
// has returned because another server's controller leads now: the leader
// listens for the services, and on this host it may be the next one.
func (c *Controller) StepDown() {
	if c.opts.Balancer == nil {
		return
	}
	c.mu.Lock()
	names := slices.Collect(maps.Keys(c.lbAddrs))
	clear(c.lbAddrs)
	c.mu.Unlock()
	for _, name := range names {
		_ = c.opts.Balancer.Close(name)
	}
}

// setTargets points the service's load balancer at its serving tasks.
func (c *Controller) setTargets(s *Service, tasks []*Task) {
	lb := s.Config.LoadBalancer
	if lb == nil || c.opts.Balancer == nil {
		return
	}
	name := lbName(s)
	c.mu.Lock()
	_, listening := c.lbAddrs[name]
	c.mu.Unlock()
	if !listening {
		addr, err := c.opts.Balancer.Listen(name, net.JoinHostPort(c.hostIP(s.Cluster), strconv.Itoa(lb.Port)))
		if err != nil {
			c.opts.Logger.Warn("load balancer", "service", name, "err", err)
			return
		}
		c.mu.Lock()
		c.lbAddrs[name] = addr.String()
		c.mu.Unlock()
	}
	var targets []Target
	for _, t := range tasks {
		if !healthy(t) {
			continue
		}
		for _, ct := range t.Containers {
			if ct.Name != lb.ContainerName {
				continue
			}
			for _, p := range ct.Ports {
				if p.ContainerPort == lb.ContainerPort && p.HostPort != 0 {
					targets = append(targets, Target{ID: t.ID, Addr: net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort))})
				}
			}
		}
	}
	c.opts.Balancer.SetTargets(name, targets)
}

func (c *Controller) hostIP(cluster string) string {
	var ip string
	if err := c.st.Reader().QueryRow(`SELECT host_ip FROM clusters WHERE name = $1`, cluster).Scan(&ip); err != nil || ip == "" {
		return "127.0.0.1"
	}
	return ip
}

// prune forgets stopped tasks past the retention, once a minute.
func (c *Controller) prune(ctx context.Context) error {
	if c.opts.Now().Sub(c.pruned) < time.Minute {
		return nil
	}
	c.pruned = c.opts.Now()
	cutoff := formatTime(c.opts.Now().Add(-c.opts.Retention))
	_, err := c.st.Writer().ExecContext(ctx, `DELETE FROM tasks WHERE last_status = 'STOPPED' AND stopped_at < $1`, cutoff)
	return err
}
