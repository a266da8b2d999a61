// Package engine is the contract between scangate's service controller
// and the engines that run tasks: a task is a group of containers started
// together from one task-definition revision, as in Amazon ECS (a pod, on
// Kubernetes). Implementations live in sibling packages (engine/docker);
// the controller in package deploy sees only this interface, so that a
// Kubernetes runtime can follow without touching it.
//
// A runtime keeps no state of its own: every container it starts carries
// labels naming its cluster, service, task and revision, so that the
// controller can rebuild what runs from the engine alone after a restart,
// as Docker Compose does.
package engine

import (
	"context"
	"errors"
	"io"
	"time"
)

// Labels put on every container a runtime starts.
const (
	LabelCluster   = "io.scangate.cluster"
	LabelService   = "io.scangate.service"
	LabelTask      = "io.scangate.task"
	LabelFamily    = "io.scangate.family"
	LabelRevision  = "io.scangate.revision"
	LabelContainer = "io.scangate.container"
)

// Errors a runtime reports; callers test them with errors.Is.
var (
	// ErrNotFound: no such task (or cluster) on the engine.
	ErrNotFound = errors.New("not found on the engine")
	// ErrImagePull: the image could not be pulled (the message says why).
	ErrImagePull = errors.New("cannot pull the image")
	// ErrUnavailable: the engine could not be reached; worth a retry.
	ErrUnavailable = errors.New("engine unavailable")
)

// Runtime runs tasks on one engine. Methods are safe for concurrent use.
type Runtime interface {
	// Name is the runtime's kind, e.g. "docker".
	Name() string
	// EnsureCluster readies what a cluster's tasks share (on Docker, a
	// user-defined network named after the cluster). It is idempotent.
	EnsureCluster(ctx context.Context, cluster string) error
	// RemoveCluster removes what EnsureCluster made; the cluster must
	// have no containers left.
	RemoveCluster(ctx context.Context, cluster string) error
	// StartTask pulls the images and creates and starts the task's
	// containers in depends-on order. A container that already exists
	// for spec.TaskID is not made twice (names are derived from the task
	// id), so a start retried after a crash starts what is missing. On an
	// error the containers made so far are left for StopTask/RemoveTask,
	// and the returned state says how far it got.
	StartTask(ctx context.Context, spec TaskSpec) (TaskState, error)
	// StopTask stops a task's running containers: SIGTERM (or the
	// image's stop signal), then SIGKILL after grace. The containers are
	// kept, so that their exit codes and logs can be read.
	StopTask(ctx context.Context, cluster, taskID string, grace time.Duration) error
	// RemoveTask removes a task's containers, stopped or not.
	RemoveTask(ctx context.Context, cluster, taskID string) error
	// Tasks lists every task of the cluster found on the engine, running
	// or stopped, rebuilt from container labels.
	Tasks(ctx context.Context, cluster string) ([]TaskState, error)
	// Task is one task's state; ErrNotFound if it has no container.
	Task(ctx context.Context, cluster, taskID string) (TaskState, error)
	// Watch sends an Event for every change of a container of the
	// cluster (start, die, oom, health status, destroy) until ctx ends or
	// the engine's stream breaks, when the channel is closed; callers
	// reconcile fully after that and watch again.
	Watch(ctx context.Context, cluster string) (<-chan Event, error)
	// Logs writes a container's output (stdout and stderr interleaved,
	// as plain text) to w: the last Tail lines (all when 0), then, with
	// Follow, what it prints until ctx ends or the container stops.
	Logs(ctx context.Context, cluster, taskID, container string, opts LogOptions, w io.Writer) error
}

// TaskSpec is a task to start.
type TaskSpec struct {
	Cluster  string
	Service  string // "" for a standalone task
	TaskID   string // unique; short enough for container names (≤ 32)
	Family   string
	Revision int
	// HostIP is the address host ports are published on (127.0.0.1
	// unless the cluster says otherwise).
	HostIP string
	// Aliases are the network names of the task on the cluster's network
	// (the service's name).
	Aliases    []string
	Containers []ContainerSpec
	// Auth are the registry credentials for pulls, keyed by registry host.
	Auth map[string]Credentials
}

// Credentials for a registry.
type Credentials struct{ Username, Password string }

// ContainerSpec is one container of a task.
type ContainerSpec struct {
	Name       string
	Image      string // a reference pinned by digest: host/repo@sha256:…
	Command    []string
	Entrypoint []string
	Env        map[string]string
	Ports      []PortMapping
	// CPU is in ECS units (1024 = one core); 0 is no limit.
	CPU int
	// MemoryMiB is the hard limit; 0 is no limit. The container is killed
	// (OOM) past it.
	MemoryMiB int
	// MemoryReservationMiB is the soft limit.
	MemoryReservationMiB int
	Essential            bool
	Health               *HealthCheck
	DependsOn            []Dependency
	// Privileged is set only when the cluster allows it.
	Privileged bool
	// StopTimeout is the grace between SIGTERM and SIGKILL (0: the
	// engine's default).
	StopTimeout time.Duration
}

// PortMapping publishes a container port on the task's HostIP.
type PortMapping struct {
	ContainerPort int
	HostPort      int    // 0: any free port
	Protocol      string // tcp (default) or udp
}

// HealthCheck is a container's health check, as ECS's: Command is in
// Docker's form (["CMD", "prog", "arg"] or ["CMD-SHELL", "line"]).
type HealthCheck struct {
	Command     []string
	Interval    time.Duration
	Timeout     time.Duration
	Retries     int
	StartPeriod time.Duration
}

// Dependency orders a container after another one.
type Dependency struct {
	Container string
	Condition string // START, COMPLETE, SUCCESS or HEALTHY
}

// Dependency conditions, as ECS names them.
const (
	ConditionStart    = "START"
	ConditionComplete = "COMPLETE"
	ConditionSuccess  = "SUCCESS"
	ConditionHealthy  = "HEALTHY"
)

// TaskState is a task as the engine sees it.
type TaskState struct {
	Cluster    string
	Service    string
	TaskID     string
	Family     string
	Revision   int
	Containers []ContainerState
}

// Container states.
const (
	StateCreated = "created"
	StateRunning = "running"
	StateExited  = "exited" // stopped, with an exit code
)

// Health states of a container (Docker's words).
const (
	HealthNone      = ""          // no health check
	HealthStarting  = "starting"  // in its start period or not yet checked
	HealthHealthy   = "healthy"   // passed
	HealthUnhealthy = "unhealthy" // failed Retries times in a row
)

// ContainerState is one container of a task.
type ContainerState struct {
	Name     string // the name in the task definition
	ID       string
	Image    string
	State    string // StateCreated, StateRunning, StateExited
	ExitCode int
	// OOMKilled: the kernel killed it for its memory limit.
	OOMKilled bool
	// Error is the engine's error for a container that failed to start.
	Error  string
	Health string
	// HealthOutput is the last health check's output.
	HealthOutput string
	StartedAt    time.Time
	FinishedAt   time.Time
	// Ports are the published ports, with the host port the engine chose.
	Ports []PublishedPort
}

// PublishedPort is a container port and where it is published.
type PublishedPort struct {
	ContainerPort int
	Protocol      string
	HostIP        string
	HostPort      int
}

// Event kinds a Watch sends.
const (
	EventStart   = "start"
	EventDie     = "die"
	EventOOM     = "oom"
	EventHealth  = "health_status"
	EventDestroy = "destroy"
)

// Event is a change of one container.
type Event struct {
	Kind      string
	Cluster   string
	Service   string
	TaskID    string
	Container string // the name in the task definition
	// Health is the new health status of an EventHealth.
	Health string
	// ExitCode is set for EventDie.
	ExitCode int
	Time     time.Time
}

// LogOptions choose what Logs writes.
type LogOptions struct {
	Tail   int // the last lines; 0: all
	Follow bool
}
