package deploy

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/scangate/scangate/internal/taskdef"
)

// querier is a connection pool or a transaction.
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

type rowScanner interface{ Scan(...any) error }

// timeLayout writes times in a fixed width, so that they sort as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func parseNullTime(s sql.NullString) *time.Time {
	if !s.Valid || s.String == "" {
		return nil
	}
	t := parseTime(s.String)
	return &t
}

func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return formatTime(*t)
}

// newID is a random 128-bit hex id; task ids name containers, so they are
// kept to 32 characters.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

func queryAll[T any](ctx context.Context, q querier, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

const clusterColumns = `name, runtime, host_ip, allow_privileged, created_at`

func scanCluster(r rowScanner) (*Cluster, error) {
	var c Cluster
	var created string
	if err := r.Scan(&c.Name, &c.Runtime, &c.HostIP, &c.AllowPrivileged, &created); err != nil {
		return nil, err
	}
	c.CreatedAt = parseTime(created)
	return &c, nil
}

func loadCluster(ctx context.Context, q querier, name string) (*Cluster, error) {
	c, err := scanCluster(q.QueryRowContext(ctx, `SELECT `+clusterColumns+` FROM clusters WHERE name = $1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("cluster %s: %w", name, ErrNotFound)
	}
	return c, err
}

const taskDefColumns = `family, revision, status, doc, registered_by, registered_at, deregistered_at`

func scanTaskDef(r rowScanner) (*TaskDefinition, error) {
	var t TaskDefinition
	var doc, registered string
	var dereg sql.NullString
	if err := r.Scan(&t.Family, &t.Revision, &t.Status, &doc, &t.RegisteredBy, &registered, &dereg); err != nil {
		return nil, err
	}
	t.RegisteredAt, t.DeregisteredAt = parseTime(registered), parseNullTime(dereg)
	t.Definition = new(taskdef.Definition)
	if err := json.Unmarshal([]byte(doc), t.Definition); err != nil {
		return nil, fmt.Errorf("task definition %s:%d: %w", t.Family, t.Revision, err)
	}
	return &t, nil
}

// loadTaskDef loads family:revision; revision 0 is the latest ACTIVE one.
func loadTaskDef(ctx context.Context, q querier, family string, revision int) (*TaskDefinition, error) {
	var row *sql.Row
	if revision == 0 {
		row = q.QueryRowContext(ctx, `SELECT `+taskDefColumns+` FROM task_definitions WHERE family = $1 AND status = 'ACTIVE'
			ORDER BY revision DESC LIMIT 1`, family)
	} else {
		row = q.QueryRowContext(ctx, `SELECT `+taskDefColumns+` FROM task_definitions WHERE family = $1 AND revision = $2`, family, revision)
	}
	t, err := scanTaskDef(row)
	if errors.Is(err, sql.ErrNoRows) {
		if revision == 0 {
			return nil, fmt.Errorf("task definition %s: %w (no ACTIVE revision)", family, ErrNotFound)
		}
		return nil, fmt.Errorf("task definition %s:%d: %w", family, revision, ErrNotFound)
	}
	return t, err
}

const serviceColumns = `cluster, name, status, family, revision, desired_count, config, created_at, updated_at`

func scanService(r rowScanner) (*Service, error) {
	var s Service
	var config, created, updated string
	if err := r.Scan(&s.Cluster, &s.Name, &s.Status, &s.family, &s.revision, &s.DesiredCount, &config, &created, &updated); err != nil {
		return nil, err
	}
	s.TaskDefinition = fmt.Sprintf("%s:%d", s.family, s.revision)
	s.CreatedAt, s.UpdatedAt = parseTime(created), parseTime(updated)
	if err := json.Unmarshal([]byte(config), &s.Config); err != nil {
		return nil, fmt.Errorf("service %s/%s: %w", s.Cluster, s.Name, err)
	}
	return &s, nil
}

func loadService(ctx context.Context, q querier, cluster, name string) (*Service, error) {
	s, err := scanService(q.QueryRowContext(ctx, `SELECT `+serviceColumns+` FROM services WHERE cluster = $1 AND name = $2`, cluster, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("service %s in cluster %s: %w", name, cluster, ErrNotFound)
	}
	return s, err
}

const deploymentColumns = `id, cluster, service, status, rollout_state, reason, family, revision, desired_count, failed_tasks,
	execution_id, rollback_of, created_at, updated_at`

func scanDeployment(r rowScanner) (*Deployment, error) {
	var d Deployment
	var created, updated string
	if err := r.Scan(&d.ID, &d.cluster, &d.service, &d.Status, &d.RolloutState, &d.RolloutStateReason, &d.family, &d.revision,
		&d.DesiredCount, &d.FailedTasks, &d.ExecutionID, &d.RollbackOf, &created, &updated); err != nil {
		return nil, err
	}
	d.TaskDefinition = fmt.Sprintf("%s:%d", d.family, d.revision)
	d.CreatedAt, d.UpdatedAt = parseTime(created), parseTime(updated)
	return &d, nil
}

// serviceDeployments lists a service's deployments that are not INACTIVE,
// newest first (the PRIMARY one first).
func serviceDeployments(ctx context.Context, q querier, cluster, service string, all bool) ([]*Deployment, error) {
	cond := ` AND status <> 'INACTIVE'`
	if all {
		cond = ``
	}
	return queryAll(ctx, q, scanDeployment, `SELECT `+deploymentColumns+` FROM deployments WHERE cluster = $1 AND service = $2`+cond+`
		ORDER BY created_at DESC LIMIT 50`, cluster, service)
}

func loadDeployment(ctx context.Context, q querier, id string) (*Deployment, error) {
	d, err := scanDeployment(q.QueryRowContext(ctx, `SELECT `+deploymentColumns+` FROM deployments WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("deployment %s: %w", id, ErrNotFound)
	}
	return d, err
}

const taskColumns = `id, cluster, service, deployment_id, family, revision, last_status, desired_status, health, containers,
	stop_code, stopped_reason, failed, log_tail, created_at, started_at, stopping_at, stopped_at`

func scanTask(r rowScanner) (*Task, error) {
	var t Task
	var containers, created string
	var started, stopping, stopped sql.NullString
	if err := r.Scan(&t.ID, &t.Cluster, &t.Service, &t.DeploymentID, &t.family, &t.revision, &t.LastStatus, &t.DesiredStatus,
		&t.Health, &containers, &t.StopCode, &t.StoppedReason, &t.failed, &t.LogTail, &created, &started, &stopping, &stopped); err != nil {
		return nil, err
	}
	t.TaskDefinition = fmt.Sprintf("%s:%d", t.family, t.revision)
	t.CreatedAt = parseTime(created)
	t.StartedAt, t.StoppingAt, t.StoppedAt = parseNullTime(started), parseNullTime(stopping), parseNullTime(stopped)
	if err := json.Unmarshal([]byte(containers), &t.Containers); err != nil {
		return nil, fmt.Errorf("task %s: %w", t.ID, err)
	}
	return &t, nil
}

func loadTask(ctx context.Context, q querier, id string) (*Task, error) {
	t, err := scanTask(q.QueryRowContext(ctx, `SELECT `+taskColumns+` FROM tasks WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	return t, err
}

// liveTasks are a service's tasks that have not stopped.
func liveTasks(ctx context.Context, q querier, cluster, service string) ([]*Task, error) {
	return queryAll(ctx, q, scanTask, `SELECT `+taskColumns+` FROM tasks WHERE cluster = $1 AND service = $2 AND last_status <> 'STOPPED'
		ORDER BY created_at`, cluster, service)
}

// saveTask writes a task's mutable fields.
func saveTask(ctx context.Context, tx *sql.Tx, t *Task) error {
	containers, err := json.Marshal(t.Containers)
	if err != nil {
		return err
	}
	if t.Containers == nil {
		containers = []byte("[]")
	}
	_, err = tx.ExecContext(ctx, `UPDATE tasks SET last_status = $1, desired_status = $2, health = $3, containers = $4, stop_code = $5,
		stopped_reason = $6, failed = $7, log_tail = $8, started_at = $9, stopping_at = $10, stopped_at = $11 WHERE id = $12`,
		t.LastStatus, t.DesiredStatus, t.Health, string(containers), t.StopCode, t.StoppedReason, t.failed, t.LogTail,
		nullTime(t.StartedAt), nullTime(t.StoppingAt), nullTime(t.StoppedAt), t.ID)
	return err
}

func scanEvent(r rowScanner) (Event, error) {
	var e Event
	var created string
	err := r.Scan(&e.ID, &e.Message, &created)
	e.CreatedAt = parseTime(created)
	return e, err
}

func serviceEvents(ctx context.Context, q querier, cluster, service string, limit int) ([]Event, error) {
	return queryAll(ctx, q, scanEvent, `SELECT id, message, created_at FROM service_events WHERE cluster = $1 AND service = $2
		ORDER BY id DESC LIMIT $3`, cluster, service, limit)
}
