package deploy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/lazyregexp"
	"github.com/scangate/scangate/internal/taskdef"
)

// Statuses, as ECS names them.
const (
	// Task definitions.
	StatusActive   = "ACTIVE"
	StatusInactive = "INACTIVE"
	// Services (and ACTIVE).
	StatusDraining = "DRAINING"
	// Deployments (and ACTIVE, INACTIVE).
	StatusPrimary = "PRIMARY"

	// Rollout states of a deployment.
	RolloutInProgress = "IN_PROGRESS"
	RolloutCompleted  = "COMPLETED"
	RolloutFailed     = "FAILED"

	// Task statuses.
	TaskProvisioning   = "PROVISIONING"
	TaskPending        = "PENDING"
	TaskRunning        = "RUNNING"
	TaskDeprovisioning = "DEPROVISIONING"
	TaskStopped        = "STOPPED"

	// Task health.
	HealthHealthy   = "HEALTHY"
	HealthUnhealthy = "UNHEALTHY"
	HealthUnknown   = "UNKNOWN"

	// Stop codes.
	StopTaskFailedToStart           = "TaskFailedToStart"
	StopEssentialContainerExited    = "EssentialContainerExited"
	StopServiceSchedulerInitiated   = "ServiceSchedulerInitiated"
	StopUserInitiated               = "UserInitiated"
	RuntimeDocker                   = "docker"
	defaultMinimumHealthyPercent    = 100
	defaultMaximumPercent           = 200
	defaultDeploymentDeadline       = 30 * time.Minute
	defaultDeregistrationDelay      = 30 * time.Second
	defaultStoppedTaskRetention     = 24 * time.Hour
	defaultHealthCheckGracePeriod   = 0
	circuitBreakerMinimumThreshold  = 3
	circuitBreakerMaximumThreshold  = 200
	maxDesiredCount                 = 1000
	maxServiceEvents                = 100
	stoppedTaskLogLines             = 50
	defaultStopGrace                = 30 * time.Second
	defaultAdmissionOverrideMaxTerm = 90 * 24 * time.Hour
)

// Errors callers test with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrInvalid marks a request that can never succeed as given.
	ErrInvalid = errors.New("invalid")
	// ErrRefused is an admission refusal: the image may not run.
	ErrRefused = errors.New("admission refused")
)

var nameRe = lazyregexp.New(`^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$`)

func checkName(kind, name string) error {
	if !nameRe.MatchString(name) {
		return fmt.Errorf("%w: %s name %q: use 1 to 255 letters, digits, '-' or '_'", ErrInvalid, kind, name)
	}
	return nil
}

// Cluster is where services run: a name and a runtime.
type Cluster struct {
	Name    string `json:"clusterName"`
	Runtime string `json:"runtime"`
	// HostIP is where tasks' ports are published (127.0.0.1).
	HostIP string `json:"hostIp"`
	// AllowPrivileged lets task definitions ask for privileged containers.
	AllowPrivileged bool      `json:"allowPrivileged"`
	CreatedAt       time.Time `json:"createdAt"`
	// Counts, filled by Describe.
	ActiveServices    int `json:"activeServicesCount"`
	RunningTasksCount int `json:"runningTasksCount"`
}

// TaskDefinition is one registered revision of a family.
type TaskDefinition struct {
	Family         string              `json:"family"`
	Revision       int                 `json:"revision"`
	Status         string              `json:"status"`
	Definition     *taskdef.Definition `json:"definition"`
	RegisteredBy   string              `json:"registeredBy,omitempty"`
	RegisteredAt   time.Time           `json:"registeredAt"`
	DeregisteredAt *time.Time          `json:"deregisteredAt,omitempty"`
}

// Ref is family:revision.
func (t *TaskDefinition) Ref() string { return fmt.Sprintf("%s:%d", t.Family, t.Revision) }

// ParseRef splits "family:revision" ("family" alone is revision 0: the
// latest ACTIVE one).
func ParseRef(s string) (family string, revision int, err error) {
	family, rev, ok := strings.Cut(s, ":")
	if ok {
		revision, err = strconv.Atoi(rev)
		if err != nil || revision < 1 {
			return "", 0, fmt.Errorf("%w: task definition %q: want FAMILY:REVISION, such as shop-api:3", ErrInvalid, s)
		}
	}
	if err := checkName("task definition family", family); err != nil {
		return "", 0, err
	}
	return family, revision, nil
}

// DeploymentConfiguration bounds a rolling deployment, as ECS's does.
type DeploymentConfiguration struct {
	// MinimumHealthyPercent of the desired count stays healthy (100).
	MinimumHealthyPercent *int `json:"minimumHealthyPercent,omitempty" yaml:"minimumHealthyPercent,omitempty"`
	// MaximumPercent of the desired count may run at once (200).
	MaximumPercent *int                      `json:"maximumPercent,omitempty" yaml:"maximumPercent,omitempty"`
	CircuitBreaker *DeploymentCircuitBreaker `json:"deploymentCircuitBreaker,omitempty" yaml:"deploymentCircuitBreaker,omitempty"`
	// Deadline fails a deployment that has not completed by then (30m).
	Deadline Duration `json:"deadline,omitempty" yaml:"deadline,omitempty"`
}

// DeploymentCircuitBreaker fails a deployment whose tasks keep stopping.
type DeploymentCircuitBreaker struct {
	Enable   bool `json:"enable" yaml:"enable"`
	Rollback bool `json:"rollback" yaml:"rollback"`
}

// LoadBalancer puts the service behind scangate's proxy: Port on the
// cluster's host address, to ContainerPort of ContainerName in each
// healthy task.
type LoadBalancer struct {
	Port          int    `json:"listenerPort" yaml:"listenerPort"`
	ContainerName string `json:"containerName" yaml:"containerName"`
	ContainerPort int    `json:"containerPort" yaml:"containerPort"`
	// DeregistrationDelay bounds how long a stopping task's requests
	// drain (30s).
	DeregistrationDelay Duration `json:"deregistrationDelay,omitempty" yaml:"deregistrationDelay,omitempty"`
}

// ServiceConfig is what a service's create and update set, beside its
// task definition and desired count.
type ServiceConfig struct {
	DeploymentConfiguration DeploymentConfiguration `json:"deploymentConfiguration"`
	// HealthCheckGracePeriod ignores failing health checks of a new task
	// for this long.
	HealthCheckGracePeriod Duration      `json:"healthCheckGracePeriod,omitempty"`
	LoadBalancer           *LoadBalancer `json:"loadBalancer,omitempty"`
}

// Service is a service as Describe shows it.
type Service struct {
	Cluster        string        `json:"clusterName"`
	Name           string        `json:"serviceName"`
	Status         string        `json:"status"`
	TaskDefinition string        `json:"taskDefinition"` // family:revision
	DesiredCount   int           `json:"desiredCount"`
	RunningCount   int           `json:"runningCount"`
	PendingCount   int           `json:"pendingCount"`
	Config         ServiceConfig `json:"config"`
	Deployments    []Deployment  `json:"deployments"`
	Events         []Event       `json:"events,omitempty"`
	// LoadBalancerAddr is where the proxy listens, when there is one.
	LoadBalancerAddr string    `json:"loadBalancerAddress,omitempty"`
	CreatedAt        time.Time `json:"createdAt"`
	UpdatedAt        time.Time `json:"updatedAt"`

	family   string
	revision int
}

// Deployment is one rollout of a service's task definition.
type Deployment struct {
	ID                 string    `json:"id"`
	Status             string    `json:"status"`
	RolloutState       string    `json:"rolloutState"`
	RolloutStateReason string    `json:"rolloutStateReason,omitempty"`
	TaskDefinition     string    `json:"taskDefinition"`
	DesiredCount       int       `json:"desiredCount"`
	RunningCount       int       `json:"runningCount"`
	PendingCount       int       `json:"pendingCount"`
	FailedTasks        int       `json:"failedTasks"`
	ExecutionID        string    `json:"executionId,omitempty"`
	RollbackOf         string    `json:"rollbackOf,omitempty"`
	CreatedAt          time.Time `json:"createdAt"`
	UpdatedAt          time.Time `json:"updatedAt"`

	cluster, service string
	family           string
	revision         int
}

// Event is a service event message ("has reached a steady state.").
type Event struct {
	ID        int64     `json:"id"`
	Message   string    `json:"message"`
	CreatedAt time.Time `json:"createdAt"`
}

// Task is one instance of a task-definition revision.
type Task struct {
	ID             string          `json:"taskId"`
	Cluster        string          `json:"clusterName"`
	Service        string          `json:"serviceName"`
	DeploymentID   string          `json:"deploymentId"`
	TaskDefinition string          `json:"taskDefinition"`
	LastStatus     string          `json:"lastStatus"`
	DesiredStatus  string          `json:"desiredStatus"`
	Health         string          `json:"healthStatus"`
	Containers     []TaskContainer `json:"containers"`
	StopCode       string          `json:"stopCode,omitempty"`
	StoppedReason  string          `json:"stoppedReason,omitempty"`
	CreatedAt      time.Time       `json:"createdAt"`
	StartedAt      *time.Time      `json:"startedAt,omitempty"`
	StoppingAt     *time.Time      `json:"stoppingAt,omitempty"`
	StoppedAt      *time.Time      `json:"stoppedAt,omitempty"`
	// LogTail is the last lines of the containers' output, kept when the
	// task stopped.
	LogTail string `json:"logTail,omitempty"`

	family   string
	revision int
	failed   bool
}

// TaskContainer is a container of a task.
type TaskContainer struct {
	Name         string        `json:"name"`
	Image        string        `json:"image"`
	RuntimeID    string        `json:"runtimeId,omitempty"`
	LastStatus   string        `json:"lastStatus"`
	ExitCode     *int          `json:"exitCode,omitempty"`
	OOMKilled    bool          `json:"oomKilled,omitempty"`
	Health       string        `json:"healthStatus"`
	HealthOutput string        `json:"healthOutput,omitempty"`
	Reason       string        `json:"reason,omitempty"`
	Ports        []HostBinding `json:"networkBindings,omitempty"`
}

// HostBinding is a published port.
type HostBinding struct {
	ContainerPort int    `json:"containerPort"`
	HostIP        string `json:"bindIP"`
	HostPort      int    `json:"hostPort"`
	Protocol      string `json:"protocol"`
}

// Duration is a time.Duration written as "90s" or "2h" in JSON and YAML.
type Duration time.Duration

// MarshalText writes the duration as Go does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads "90s", "2h" or "7d".
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 3650 {
			return fmt.Errorf("duration %q: want 90s, 2h or 7d", s)
		}
		*d = Duration(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("duration %q: want 90s, 2h or 7d", s)
	}
	*d = Duration(v)
	return nil
}
