package deploy

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/engine"
	"github.com/scangate/scangate/internal/taskdef"
)

// taskDef returns a revision, from the cache: revisions never change.
func (c *Controller) taskDef(ctx context.Context, family string, revision int) (*TaskDefinition, error) {
	key := fmt.Sprintf("%s:%d", family, revision)
	c.mu.Lock()
	td := c.defs[key]
	c.mu.Unlock()
	if td != nil {
		return td, nil
	}
	td, err := loadTaskDef(ctx, c.st.Reader(), family, revision)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.defs[key] = td
	c.mu.Unlock()
	return td, nil
}

// observe brings a task's record up to date with what the engine says, and
// starts or finishes its start or stop when nothing is doing it.
func (c *Controller) observe(ctx context.Context, cl *Cluster, rt engine.Runtime, s *Service, t *Task, onEngine map[string]engine.TaskState) (bool, error) {
	es, on := onEngine[t.ID]
	switch {
	case t.LastStatus == TaskDeprovisioning:
		c.goTask(ctx, t.ID, func(ctx context.Context) { c.finishStop(ctx, rt, s, t) })
		return true, nil
	case t.LastStatus == TaskProvisioning || (t.LastStatus == TaskPending && !on):
		c.goTask(ctx, t.ID, func(ctx context.Context) { c.start(ctx, cl, rt, s, t) })
		return true, nil
	case !on:
		if c.isBusy(t.ID) {
			return true, nil
		}
		return true, c.stopTask(ctx, t, StopTaskFailedToStart, "Task stopped: its containers are gone from the engine", true)
	}
	td, err := c.taskDef(ctx, t.family, t.revision)
	if err != nil {
		return true, err
	}
	for _, cd := range td.Definition.ContainerDefinitions {
		if _, digest, ok := strings.Cut(cd.Image, "@"); ok {
			why, err := c.noncompliantPastDeadline(ctx, c.st.Reader(), s.Cluster, s.Name, digest)
			if err != nil {
				return true, err
			}
			if why != "" {
				return true, c.stopTask(ctx, t, StopServiceSchedulerInitiated, "Task stopped: its image "+digest+" "+why, false)
			}
		}
	}
	before, _ := json.Marshal(t)
	wasHealthy := t.Health == HealthHealthy
	t.Containers = containersOf(td.Definition, es, t.Containers)
	// An essential container that exited ends the task.
	for i, cd := range td.Definition.ContainerDefinitions {
		ct := t.Containers[i]
		if !cd.IsEssential() || ct.LastStatus != engine.StateExited {
			continue
		}
		reason := fmt.Sprintf("Essential container in task exited: %s exited with code %d", ct.Name, derefInt(ct.ExitCode))
		if ct.OOMKilled {
			reason = fmt.Sprintf("Essential container in task exited: OutOfMemoryError: %s was killed for using more than its memory limit (%d MiB)", ct.Name, cd.Memory)
		}
		if ct.Reason != "" {
			reason += ": " + ct.Reason
		}
		return true, c.stopTask(ctx, t, StopEssentialContainerExited, reason, true)
	}
	running := true
	for i, cd := range td.Definition.ContainerDefinitions {
		if cd.IsEssential() && t.Containers[i].LastStatus != engine.StateRunning {
			running = false
		}
	}
	if running && t.LastStatus != TaskRunning {
		t.LastStatus = TaskRunning
		now := c.opts.Now().UTC()
		t.StartedAt = &now
	}
	t.Health = taskHealth(t.Containers)
	if t.Health == HealthUnhealthy && t.StartedAt != nil && c.opts.Now().Sub(*t.StartedAt) >= time.Duration(s.Config.HealthCheckGracePeriod) {
		out := ""
		for _, ct := range t.Containers {
			if ct.Health == HealthUnhealthy && ct.HealthOutput != "" {
				out = ": " + ct.Name + ": " + lastLines(ct.HealthOutput, 3)
			}
		}
		return true, c.stopTask(ctx, t, StopServiceSchedulerInitiated, "Task failed container health checks"+out, true)
	}
	if t.Health == HealthHealthy && !wasHealthy {
		c.noteHealthy(s.Cluster + "/" + s.Name)
	}
	after, _ := json.Marshal(t)
	if bytes.Equal(before, after) {
		return t.LastStatus != TaskRunning || t.Health == HealthUnknown && hasHealthCheck(t), nil
	}
	return true, c.st.InTx(ctx, func(tx *sql.Tx) error {
		cur, err := loadTask(ctx, tx, t.ID)
		if err != nil || cur.LastStatus == TaskStopped || cur.LastStatus == TaskDeprovisioning {
			return err
		}
		if err := saveTask(ctx, tx, t); err != nil {
			return err
		}
		return c.publishTask(ctx, tx, t)
	})
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// containersOf maps the engine's view of a task onto its definition's
// containers, in the definition's order.
func containersOf(def *taskdef.Definition, es engine.TaskState, prev []TaskContainer) []TaskContainer {
	out := make([]TaskContainer, len(def.ContainerDefinitions))
	for i, cd := range def.ContainerDefinitions {
		// A container without a health check has no health (""), one with
		// a check is UNKNOWN until the check says otherwise.
		ct := TaskContainer{Name: cd.Name, Image: cd.Image, LastStatus: TaskPending}
		if cd.HealthCheck != nil {
			ct.Health = HealthUnknown
		}
		if i < len(prev) && prev[i].Name == cd.Name {
			ct.Image = prev[i].Image
		}
		for _, c := range es.Containers {
			if c.Name != cd.Name {
				continue
			}
			ct.RuntimeID, ct.LastStatus = c.ID, c.State
			if c.State == engine.StateExited {
				code := c.ExitCode
				ct.ExitCode = &code
			}
			ct.OOMKilled, ct.Reason = c.OOMKilled, c.Error
			if cd.HealthCheck != nil {
				ct.Health, ct.HealthOutput = containerHealth(c.Health), c.HealthOutput
			}
			for _, p := range c.Ports {
				ct.Ports = append(ct.Ports, HostBinding{ContainerPort: p.ContainerPort, HostIP: p.HostIP, HostPort: p.HostPort, Protocol: p.Protocol})
			}
		}
		out[i] = ct
	}
	return out
}

func containerHealth(h string) string {
	switch h {
	case engine.HealthHealthy:
		return HealthHealthy
	case engine.HealthUnhealthy:
		return HealthUnhealthy
	}
	return HealthUnknown
}

// taskHealth is ECS's: UNHEALTHY if any container is, HEALTHY if all
// checked ones are, else UNKNOWN.
func taskHealth(cs []TaskContainer) string {
	checked, healthy := 0, 0
	for _, c := range cs {
		switch c.Health {
		case HealthUnhealthy:
			return HealthUnhealthy
		case HealthHealthy:
			checked++
			healthy++
		case HealthUnknown:
			checked++
		}
	}
	if checked > 0 && healthy == checked {
		return HealthHealthy
	}
	return HealthUnknown
}

// createTask records a new task of deployment d and starts it, or records
// at once why it could not start (an image the gate did not admit).
func (c *Controller) createTask(ctx context.Context, cl *Cluster, rt engine.Runtime, s *Service, d *Deployment) error {
	td, err := c.taskDef(ctx, d.family, d.revision)
	if err != nil {
		return err
	}
	now := c.opts.Now().UTC()
	t := &Task{ID: newID(), Cluster: s.Cluster, Service: s.Name, DeploymentID: d.ID, TaskDefinition: d.TaskDefinition,
		LastStatus: TaskProvisioning, DesiredStatus: TaskRunning, Health: HealthUnknown, CreatedAt: now, family: d.family, revision: d.revision}
	t.Containers = containersOf(td.Definition, engine.TaskState{}, nil)
	var refused error
	err = c.st.InTx(ctx, func(tx *sql.Tx) error {
		for _, cd := range td.Definition.ContainerDefinitions {
			if _, err := c.admit(ctx, tx, s.Cluster, s.Name, cd.Image); err != nil {
				if !errors.Is(err, ErrRefused) && !errors.Is(err, ErrInvalid) {
					return err
				}
				refused = err
				break
			}
		}
		if refused != nil {
			t.LastStatus, t.DesiredStatus, t.StopCode, t.failed = TaskStopped, TaskStopped, StopTaskFailedToStart, true
			t.StoppedReason = "CannotStartContainerError: " + refused.Error()
			t.StoppingAt, t.StoppedAt = &now, &now
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO tasks (id, cluster, service, deployment_id, family, revision, last_status, desired_status,
			health, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, t.ID, t.Cluster, t.Service, t.DeploymentID, t.family,
			t.revision, t.LastStatus, t.DesiredStatus, t.Health, formatTime(now)); err != nil {
			return err
		}
		if err := saveTask(ctx, tx, t); err != nil {
			return err
		}
		if refused != nil {
			if err := c.countFailure(ctx, tx, t); err != nil {
				return err
			}
			if err := c.serviceEvent(ctx, tx, s.Cluster, s.Name, "WARN", EventTaskStartImpaired, "was unable to start a task: "+refused.Error()); err != nil {
				return err
			}
		} else if err := c.serviceEvent(ctx, tx, s.Cluster, s.Name, "INFO", "TASK_STARTED", "has started 1 tasks: (task "+t.ID+")."); err != nil {
			return err
		}
		return c.publishTask(ctx, tx, t)
	})
	if err != nil || refused != nil {
		if refused != nil {
			c.noteFailure(s.Cluster + "/" + s.Name)
		}
		return err
	}
	c.goTask(ctx, t.ID, func(ctx context.Context) { c.start(ctx, cl, rt, s, t) })
	return nil
}

// countFailure counts a failed task against its deployment's circuit
// breaker while the deployment is in progress.
func (c *Controller) countFailure(ctx context.Context, tx *sql.Tx, t *Task) error {
	_, err := tx.ExecContext(ctx, `UPDATE deployments SET failed_tasks = failed_tasks + 1, updated_at = $1 WHERE id = $2 AND rollout_state = 'IN_PROGRESS'`,
		formatTime(c.opts.Now()), t.DeploymentID)
	return err
}

// taskSpec is what the engine needs to start t.
func (c *Controller) taskSpec(cl *Cluster, s *Service, t *Task, def *taskdef.Definition) engine.TaskSpec {
	spec := engine.TaskSpec{Cluster: cl.Name, Service: s.Name, TaskID: t.ID, Family: t.family, Revision: t.revision,
		HostIP: cl.HostIP, Aliases: []string{s.Name}}
	if c.opts.Credentials != (engine.Credentials{}) {
		spec.Auth = map[string]engine.Credentials{c.opts.Registry: c.opts.Credentials}
	}
	for _, cd := range def.ContainerDefinitions {
		cs := engine.ContainerSpec{Name: cd.Name, Image: cd.Image, Command: cd.Command, Entrypoint: cd.EntryPoint,
			CPU: cd.Cpu, MemoryMiB: cd.Memory, MemoryReservationMiB: cd.MemoryReservation, Essential: cd.IsEssential(),
			Privileged: cd.Privileged && cl.AllowPrivileged, StopTimeout: time.Duration(cd.StopTimeout) * time.Second}
		if len(cd.Environment) > 0 {
			cs.Env = map[string]string{}
			for _, kv := range cd.Environment {
				cs.Env[kv.Name] = kv.Value
			}
		}
		for _, p := range cd.PortMappings {
			cs.Ports = append(cs.Ports, engine.PortMapping{ContainerPort: p.ContainerPort, HostPort: p.HostPort, Protocol: p.Protocol})
		}
		if h := cd.HealthCheck; h != nil {
			cs.Health = &engine.HealthCheck{Command: h.Command, Interval: time.Duration(h.Interval) * time.Second,
				Timeout: time.Duration(h.Timeout) * time.Second, Retries: h.Retries, StartPeriod: time.Duration(h.StartPeriod) * time.Second}
		}
		for _, dep := range cd.DependsOn {
			cs.DependsOn = append(cs.DependsOn, engine.Dependency{Container: dep.ContainerName, Condition: dep.Condition})
		}
		spec.Containers = append(spec.Containers, cs)
	}
	return spec
}

// start starts a recorded task on the engine; a task that cannot start is
// stopped with the reason.
func (c *Controller) start(ctx context.Context, cl *Cluster, rt engine.Runtime, s *Service, t *Task) {
	td, err := c.taskDef(ctx, t.family, t.revision)
	if err != nil {
		c.opts.Logger.Warn("start task", "task", t.ID, "err", err)
		return
	}
	// Admission is checked again at the start itself: an override may
	// have expired, or the image been rejected, since the task was made.
	for _, cd := range td.Definition.ContainerDefinitions {
		if _, err := c.admit(ctx, c.st.Reader(), s.Cluster, s.Name, cd.Image); err != nil {
			if errors.Is(err, ErrRefused) || errors.Is(err, ErrInvalid) {
				c.stopAndFinish(ctx, rt, s, t, StopTaskFailedToStart, "CannotStartContainerError: "+err.Error(), true)
			}
			return
		}
	}
	st, err := rt.StartTask(ctx, c.taskSpec(cl, s, t, td.Definition))
	if ctx.Err() != nil {
		return // stopping: the next server starts it again
	}
	if err != nil {
		if errors.Is(err, engine.ErrUnavailable) {
			c.opts.Logger.Warn("start task: engine unavailable", "task", t.ID, "err", err)
			return
		}
		reason := "CannotStartContainerError: " + err.Error()
		if errors.Is(err, engine.ErrImagePull) {
			reason = "CannotPullContainerError: " + err.Error()
		}
		c.stopAndFinish(ctx, rt, s, t, StopTaskFailedToStart, reason, true)
		return
	}
	err = c.st.InTx(ctx, func(tx *sql.Tx) error {
		cur, err := loadTask(ctx, tx, t.ID)
		if err != nil || (cur.LastStatus != TaskProvisioning && cur.LastStatus != TaskPending) {
			return err
		}
		cur.Containers = containersOf(td.Definition, st, cur.Containers)
		cur.LastStatus = TaskPending
		if err := saveTask(ctx, tx, cur); err != nil {
			return err
		}
		return c.publishTask(ctx, tx, cur)
	})
	if err != nil {
		c.opts.Logger.Warn("start task", "task", t.ID, "err", err)
	}
}

// stopAndFinish stops a task from within its own start.
func (c *Controller) stopAndFinish(ctx context.Context, rt engine.Runtime, s *Service, t *Task, code, reason string, failed bool) {
	if err := c.markStopping(ctx, t, code, reason, failed); err != nil {
		c.opts.Logger.Warn("stop task", "task", t.ID, "err", err)
		return
	}
	c.finishStop(ctx, rt, s, t)
}

// stopTask asks for a task to stop, with its stop code and reason; failed
// counts it against its deployment.
func (c *Controller) stopTask(ctx context.Context, t *Task, code, reason string, failed bool) error {
	if err := c.markStopping(ctx, t, code, reason, failed); err != nil {
		return err
	}
	c.Trigger()
	return nil
}

func (c *Controller) markStopping(ctx context.Context, t *Task, code, reason string, failed bool) error {
	err := c.st.InTx(ctx, func(tx *sql.Tx) error {
		cur, err := loadTask(ctx, tx, t.ID)
		if err != nil || cur.LastStatus == TaskStopped || cur.LastStatus == TaskDeprovisioning {
			return err
		}
		now := c.opts.Now().UTC()
		cur.Containers = t.Containers
		cur.DesiredStatus, cur.LastStatus, cur.StoppingAt, cur.StopCode, cur.StoppedReason, cur.failed =
			TaskStopped, TaskDeprovisioning, &now, code, reason, failed
		if err := saveTask(ctx, tx, cur); err != nil {
			return err
		}
		if failed {
			if err := c.countFailure(ctx, tx, cur); err != nil {
				return err
			}
		}
		*t = *cur
		return c.publishTask(ctx, tx, cur)
	})
	if err == nil && failed {
		c.noteFailure(t.Cluster + "/" + t.Service)
		c.opts.Logger.Info("task stopped", "cluster", t.Cluster, "service", t.Service, "task", t.ID, "reason", reason)
	}
	return err
}

// finishStop drains a stopping task from the load balancer, stops its
// containers, keeps their exit codes and last lines, removes them and
// records the task STOPPED. Every step may be done again after a crash.
func (c *Controller) finishStop(ctx context.Context, rt engine.Runtime, s *Service, t *Task) {
	if lb := s.Config.LoadBalancer; lb != nil && c.opts.Balancer != nil {
		delay := time.Duration(lb.DeregistrationDelay)
		if delay == 0 {
			delay = defaultDeregistrationDelay
		}
		dctx, cancel := context.WithTimeout(ctx, delay)
		_ = c.opts.Balancer.Drain(dctx, lbName(s), t.ID)
		cancel()
	}
	if err := rt.StopTask(ctx, t.Cluster, t.ID, defaultStopGrace); err != nil && !errors.Is(err, engine.ErrNotFound) {
		c.opts.Logger.Warn("stop task", "task", t.ID, "err", err)
		return
	}
	final, err := rt.Task(ctx, t.Cluster, t.ID)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return
	}
	var logs strings.Builder
	for _, ct := range final.Containers {
		var buf bytes.Buffer
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = rt.Logs(lctx, t.Cluster, t.ID, ct.Name, engine.LogOptions{Tail: stoppedTaskLogLines}, &buf)
		cancel()
		if buf.Len() == 0 {
			continue
		}
		if len(final.Containers) > 1 {
			fmt.Fprintf(&logs, "--- %s\n", ct.Name)
		}
		logs.Write(buf.Bytes())
	}
	if ctx.Err() != nil {
		return
	}
	if err := rt.RemoveTask(ctx, t.Cluster, t.ID); err != nil && !errors.Is(err, engine.ErrNotFound) {
		c.opts.Logger.Warn("remove task", "task", t.ID, "err", err)
		return
	}
	err = c.st.InTx(ctx, func(tx *sql.Tx) error {
		cur, err := loadTask(ctx, tx, t.ID)
		if err != nil || cur.LastStatus == TaskStopped {
			return err
		}
		if td, err := c.taskDef(ctx, cur.family, cur.revision); err == nil && len(final.Containers) > 0 {
			cur.Containers = containersOf(td.Definition, final, cur.Containers)
		}
		for i := range cur.Containers {
			cur.Containers[i].LastStatus = TaskStopped
		}
		now := c.opts.Now().UTC()
		cur.LastStatus, cur.StoppedAt = TaskStopped, &now
		if logs.Len() > 0 {
			cur.LogTail = logs.String()
		}
		if err := saveTask(ctx, tx, cur); err != nil {
			return err
		}
		return c.publishTask(ctx, tx, cur)
	})
	if err != nil {
		c.opts.Logger.Warn("stop task", "task", t.ID, "err", err)
	}
}

// lastLines is the last n lines of s, joined by " | ".
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	lines = slices.DeleteFunc(lines, func(l string) bool { return strings.TrimSpace(l) == "" })
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
