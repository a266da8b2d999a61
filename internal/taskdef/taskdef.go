package taskdef

import (
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/distribution/reference"
)

// A Definition is one task definition: a family's containers. Its revision
// is the store's to assign. Field names and JSON names are ECS's.
type Definition struct {
	Family               string      `json:"family"`
	ContainerDefinitions []Container `json:"containerDefinitions"`
	// Cpu and Memory are ECS's task-level sizes, strings as ECS writes
	// them ("256", "0.25 vCPU"; "512", "1 GB"). They are kept, and listed
	// in Ignored: scangate limits each container, not the task.
	Cpu    string `json:"cpu,omitempty"`
	Memory string `json:"memory,omitempty"`
	// NetworkMode may be awsvpc or bridge (ignored: every task joins its
	// cluster's network); host is refused.
	NetworkMode string `json:"networkMode,omitempty"`
	// PidMode and IpcMode: host is refused, and ECS's task is unsupported.
	PidMode string `json:"pidMode,omitempty"`
	IpcMode string `json:"ipcMode,omitempty"`
	// Volumes are read so that Validate can refuse them by name: scangate
	// mounts no volumes, and a host path never.
	Volumes []Volume `json:"volumes,omitempty"`

	// Ignored lists the fields Parse accepted but scangate does not use,
	// each with why ("executionRoleArn: ignored (no IAM in scangate)"). It
	// describes the document read, and is not stored.
	Ignored []string `json:"-"`
}

// A Container is one container definition.
type Container struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	// Command and EntryPoint replace the image's CMD and ENTRYPOINT.
	Command      []string      `json:"command,omitempty"`
	EntryPoint   []string      `json:"entryPoint,omitempty"`
	Environment  []KeyValue    `json:"environment,omitempty"`
	PortMappings []PortMapping `json:"portMappings,omitempty"`
	// Cpu is in ECS units: 1024 is one core; 0 is no limit.
	Cpu int `json:"cpu,omitempty"`
	// Memory is the hard limit in MiB (the container is killed past it);
	// MemoryReservation the soft one. 0 is no limit.
	Memory            int `json:"memory,omitempty"`
	MemoryReservation int `json:"memoryReservation,omitempty"`
	// Essential: when an essential container stops, the task stops. Nil
	// means true, as in ECS; Validate fills it in.
	Essential   *bool        `json:"essential,omitempty"`
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`
	DependsOn   []Dependency `json:"dependsOn,omitempty"`
	// StopTimeout is the grace in seconds between SIGTERM and SIGKILL; 0
	// is the engine's default.
	StopTimeout int  `json:"stopTimeout,omitempty"`
	Privileged  bool `json:"privileged,omitempty"`

	// Read so that Validate can refuse them (see the package comment).
	MountPoints     []MountPoint     `json:"mountPoints,omitempty"`
	VolumesFrom     []VolumeFrom     `json:"volumesFrom,omitempty"`
	LinuxParameters *LinuxParameters `json:"linuxParameters,omitempty"`
}

// KeyValue is an environment variable.
type KeyValue struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

// PortMapping publishes a container port. HostPort 0 is any free port.
type PortMapping struct {
	ContainerPort int    `json:"containerPort"`
	HostPort      int    `json:"hostPort,omitempty"`
	Protocol      string `json:"protocol,omitempty"` // tcp (the default) or udp
}

// HealthCheck is a container's health check as ECS writes it: Command is
// ["CMD", "prog", "arg"...] or ["CMD-SHELL", "a shell line"], and the
// times are in seconds.
type HealthCheck struct {
	Command     []string `json:"command,omitempty"`
	Interval    int      `json:"interval,omitempty"`
	Timeout     int      `json:"timeout,omitempty"`
	Retries     int      `json:"retries,omitempty"`
	StartPeriod int      `json:"startPeriod,omitempty"`
}

// Dependency orders a container after another one of the task.
type Dependency struct {
	ContainerName string `json:"containerName"`
	Condition     string `json:"condition"` // START, COMPLETE, SUCCESS or HEALTHY
}

// Dependency conditions, as ECS names them.
const (
	ConditionStart    = "START"    // the other container has started
	ConditionComplete = "COMPLETE" // it has exited
	ConditionSuccess  = "SUCCESS"  // it has exited with status 0
	ConditionHealthy  = "HEALTHY"  // its health check has passed
)

// Volume is a task's volume. Only the parts Validate needs to name in its
// refusal are read; ECS's other volume kinds are unsupported.
type Volume struct {
	Name string      `json:"name"`
	Host *HostVolume `json:"host,omitempty"`
}

// HostVolume is a volume that is a path on the host: a bind mount.
type HostVolume struct {
	SourcePath string `json:"sourcePath,omitempty"`
}

// MountPoint mounts a task volume into a container.
type MountPoint struct {
	SourceVolume  string `json:"sourceVolume,omitempty"`
	ContainerPath string `json:"containerPath,omitempty"`
	ReadOnly      bool   `json:"readOnly,omitempty"`
}

// VolumeFrom mounts every volume of another container.
type VolumeFrom struct {
	SourceContainer string `json:"sourceContainer,omitempty"`
	ReadOnly        bool   `json:"readOnly,omitempty"`
}

// LinuxParameters holds the parts of ECS's linuxParameters that reach the
// host; its other parts are unsupported.
type LinuxParameters struct {
	Capabilities *Capabilities `json:"capabilities,omitempty"`
	Devices      []Device      `json:"devices,omitempty"`
}

// Capabilities lists Linux capabilities to add (refused). ECS's drop is
// unsupported: scangate cannot honour it, and must not pretend to.
type Capabilities struct {
	Add []string `json:"add,omitempty"`
}

// Device is a host device exposed to a container.
type Device struct {
	HostPath      string   `json:"hostPath,omitempty"`
	ContainerPath string   `json:"containerPath,omitempty"`
	Permissions   []string `json:"permissions,omitempty"`
}

// IsEssential says whether the task stops when c stops: true unless
// essential is false.
func (c *Container) IsEssential() bool { return c.Essential == nil || *c.Essential }

// Container returns the container named name, or nil.
func (d *Definition) Container(name string) *Container {
	for i := range d.ContainerDefinitions {
		if d.ContainerDefinitions[i].Name == name {
			return &d.ContainerDefinitions[i]
		}
	}
	return nil
}

// WithImage returns a copy of d with the image of the container named
// container replaced by image, every other field kept: the deploy stage
// makes the next revision from it with the approved image's digest. The
// copy is not validated again; image must be an image reference.
func (d *Definition) WithImage(container, image string) (*Definition, error) {
	if _, err := reference.ParseNormalizedNamed(image); err != nil {
		return nil, fmt.Errorf("image %q: not an image reference: %w", clip(image), err)
	}
	c := d.Clone()
	ct := c.Container(container)
	if ct == nil {
		return nil, fmt.Errorf("task definition %s has no container %q", d.Family, clip(container))
	}
	ct.Image = image
	return c, nil
}

// Clone returns a deep copy of d: nothing in it is shared with d.
func (d *Definition) Clone() *Definition {
	c := *d
	c.ContainerDefinitions = cloneEach(d.ContainerDefinitions, (*Container).Clone)
	c.Volumes = cloneEach(d.Volumes, func(v *Volume) Volume {
		w := *v
		w.Host = clonePtr(v.Host)
		return w
	})
	c.Ignored = slices.Clone(d.Ignored)
	return &c
}

// Clone returns a deep copy of c.
func (c *Container) Clone() Container {
	o := *c
	o.Command = slices.Clone(c.Command)
	o.EntryPoint = slices.Clone(c.EntryPoint)
	o.Environment = slices.Clone(c.Environment)
	o.PortMappings = slices.Clone(c.PortMappings)
	o.Essential = clonePtr(c.Essential)
	if c.HealthCheck != nil {
		h := *c.HealthCheck
		h.Command = slices.Clone(h.Command)
		o.HealthCheck = &h
	}
	o.DependsOn = slices.Clone(c.DependsOn)
	o.MountPoints = slices.Clone(c.MountPoints)
	o.VolumesFrom = slices.Clone(c.VolumesFrom)
	if c.LinuxParameters != nil {
		lp := *c.LinuxParameters
		if lp.Capabilities != nil {
			lp.Capabilities = &Capabilities{Add: slices.Clone(lp.Capabilities.Add)}
		}
		lp.Devices = cloneEach(lp.Devices, func(d *Device) Device {
			e := *d
			e.Permissions = slices.Clone(d.Permissions)
			return e
		})
		o.LinuxParameters = &lp
	}
	return o
}

// cloneEach copies s with each element copied by f; nil stays nil.
func cloneEach[T any](s []T, f func(*T) T) []T {
	if s == nil {
		return nil
	}
	out := make([]T, len(s))
	for i := range s {
		out[i] = f(&s[i])
	}
	return out
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// clip shortens a value echoed in an error: the document is the user's,
// and a 60 KB string is no help in a message.
func clip(s string) string {
	n := 80
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
