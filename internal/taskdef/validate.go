package taskdef

import (
	"errors"
	"fmt"
	"strings"

	"github.com/distribution/reference"

	"github.com/scangate/scangate/internal/lazyregexp"
)

// Options are a cluster's rules beyond ECS's.
type Options struct {
	// AllowPrivileged lets containers run privileged: with every
	// capability and every device of the host, which is the host's root.
	AllowPrivileged bool
}

// Limits, as ECS has them where ECS has one.
const (
	MaxContainers  = 10
	MaxEnvironment = 1000
	MaxArgs        = 1000 // elements of command, entryPoint or a health check's command
	MaxCPU         = 10240
	MinMemory      = 6 // MiB: less, and Docker refuses to start the container
	MaxMemory      = 122880
	MaxStopTimeout = 120
)

// Health check defaults, in seconds, as ECS fills them.
const (
	DefaultHealthInterval = 30
	DefaultHealthTimeout  = 5
	DefaultHealthRetries  = 3
)

var (
	nameRe = lazyregexp.New(`^[A-Za-z0-9_-]{1,255}$`)
	envRe  = lazyregexp.New(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// ECS's task sizes: CPU units or vCPUs, MiB or GB.
	taskCPURe    = lazyregexp.New(`^(?:[0-9]{1,6}|[0-9]{1,3}(?:\.[0-9]{1,3})? ?(?i:vcpu))$`)
	taskMemoryRe = lazyregexp.New(`^(?:[0-9]{1,7}|[0-9]{1,4}(?:\.[0-9]{1,3})? ?(?i:gb))$`)
)

// Validate checks d against ECS's rules and the cluster's (opts), and
// fills the defaults ECS fills: essential true, the tcp protocol, and a
// health check's interval, timeout and retries. The first problem found is
// returned, naming the field; d is changed only when Validate succeeds.
//
// Refused, whatever the values: bind mounts of host paths (volumes with
// host.sourcePath, their mountPoints, and volumesFrom), host devices, added
// Linux capabilities, the host's PID, IPC or network namespace, and
// privileged containers unless opts.AllowPrivileged. Volumes of other
// kinds are refused too, for scangate mounts none yet.
func (d *Definition) Validate(opts Options) error {
	c := d.Clone()
	err := c.validate(opts)
	if err == nil {
		err = c.checkSize() // the defaults filled in take room
	}
	if err != nil {
		if nameRe.MatchString(d.Family) {
			return fmt.Errorf("task definition %s: %w", d.Family, err)
		}
		return fmt.Errorf("task definition: %w", err)
	}
	*d = *c
	return nil
}

func (d *Definition) validate(opts Options) error {
	if !nameRe.MatchString(d.Family) {
		return fmt.Errorf("family: %q is not a family name: use 1 to 255 letters, digits, '_' or '-'", clip(d.Family))
	}
	if d.Cpu != "" && !taskCPURe.MatchString(d.Cpu) {
		return fmt.Errorf("cpu: %q: want CPU units (\"256\") or vCPUs (\"0.25 vCPU\")", clip(d.Cpu))
	}
	if d.Memory != "" && !taskMemoryRe.MatchString(d.Memory) {
		return fmt.Errorf("memory: %q: want MiB (\"512\") or GB (\"0.5 GB\")", clip(d.Memory))
	}
	if err := d.checkModes(); err != nil {
		return err
	}
	cs := d.ContainerDefinitions
	if len(cs) < 1 || len(cs) > MaxContainers {
		return fmt.Errorf("containerDefinitions: %d containers, want 1 to %d", len(cs), MaxContainers)
	}
	names := map[string]int{}
	published := map[string]string{} // "8080/tcp" → the port mapping that publishes it
	for i := range cs {
		p := index("containerDefinitions", i)
		if err := d.checkContainer(&cs[i], p, opts, published); err != nil {
			return err
		}
		if j, ok := names[cs[i].Name]; ok {
			return fmt.Errorf("%s.name: %q is also the name of containerDefinitions[%d]", p, cs[i].Name, j)
		}
		names[cs[i].Name] = i
	}
	if err := d.checkDependencies(names); err != nil {
		return err
	}
	essential := false
	for i := range cs {
		essential = essential || cs[i].IsEssential()
	}
	if !essential {
		return errors.New("containerDefinitions: at least one container must be essential (a task stops when its essential containers stop)")
	}
	for i, v := range d.Volumes {
		p := index("volumes", i)
		if v.Host != nil && v.Host.SourcePath != "" {
			return fmt.Errorf("%s: %q is the host path %s: bind mounts of host paths are refused", p, clip(v.Name), clip(v.Host.SourcePath))
		}
		return fmt.Errorf("%s: %q: not supported (scangate's engine mounts no volumes)", p, clip(v.Name))
	}
	return nil
}

// checkModes refuses the host's namespaces, which would let a task see
// and reach the host's processes, shared memory or network, and the modes
// scangate cannot honour.
func (d *Definition) checkModes() error {
	switch d.NetworkMode {
	case "", "awsvpc", "bridge": // every task joins its cluster's network
	case "host":
		return errors.New("networkMode: host: host namespaces are refused (the task would share the host's network)")
	default:
		return fmt.Errorf("networkMode: %q: not supported (every task joins its cluster's network: use awsvpc or bridge, or leave it out)", clip(d.NetworkMode))
	}
	for _, m := range []struct{ field, value, what string }{
		{"pidMode", d.PidMode, "see and signal the host's processes"},
		{"ipcMode", d.IpcMode, "share the host's shared memory"},
	} {
		switch m.value {
		case "":
		case "host":
			return fmt.Errorf("%s: host: host namespaces are refused (the task would %s)", m.field, m.what)
		default:
			return fmt.Errorf("%s: %q: not supported (each container has its own namespace)", m.field, clip(m.value))
		}
	}
	return nil
}

func (d *Definition) checkContainer(c *Container, p string, opts Options, published map[string]string) error {
	if !nameRe.MatchString(c.Name) {
		return fmt.Errorf("%s.name: %q is not a container name: use 1 to 255 letters, digits, '_' or '-'", p, clip(c.Name))
	}
	if c.Image == "" {
		return fmt.Errorf("%s.image: required", p)
	}
	if _, err := reference.ParseNormalizedNamed(c.Image); err != nil {
		return fmt.Errorf("%s.image: %q is not an image reference: %w", p, clip(c.Image), err)
	}
	if c.Privileged && !opts.AllowPrivileged {
		return fmt.Errorf("%s.privileged: privileged containers are refused unless the cluster allows them", p)
	}
	if err := d.checkMounts(c, p); err != nil {
		return err
	}
	if err := checkArgs(c.EntryPoint, p+".entryPoint"); err != nil {
		return err
	}
	if err := checkArgs(c.Command, p+".command"); err != nil {
		return err
	}
	if err := checkEnvironment(c.Environment, p+".environment"); err != nil {
		return err
	}
	for j := range c.PortMappings {
		if err := checkPort(&c.PortMappings[j], index(p+".portMappings", j), published); err != nil {
			return err
		}
	}
	if c.Cpu < 0 || c.Cpu > MaxCPU {
		return fmt.Errorf("%s.cpu: %d: want 0 (no limit) to %d (1024 is one core)", p, c.Cpu, MaxCPU)
	}
	for _, m := range []struct {
		field string
		mib   int
	}{{"memory", c.Memory}, {"memoryReservation", c.MemoryReservation}} {
		if m.mib != 0 && (m.mib < MinMemory || m.mib > MaxMemory) {
			return fmt.Errorf("%s.%s: %d MiB: want 0 (no limit) or %d to %d (Docker's minimum is %d MiB)", p, m.field, m.mib, MinMemory, MaxMemory, MinMemory)
		}
	}
	if c.Memory != 0 && c.MemoryReservation > c.Memory {
		return fmt.Errorf("%s.memoryReservation: %d MiB is more than memory (%d MiB), the hard limit", p, c.MemoryReservation, c.Memory)
	}
	if c.HealthCheck != nil {
		if err := checkHealth(c.HealthCheck, p+".healthCheck"); err != nil {
			return err
		}
	}
	if c.StopTimeout < 0 || c.StopTimeout > MaxStopTimeout {
		return fmt.Errorf("%s.stopTimeout: %d seconds: want 0 (the engine's default) to %d", p, c.StopTimeout, MaxStopTimeout)
	}
	if c.Essential == nil {
		c.Essential = new(true)
	}
	return nil
}

// checkMounts refuses what would put a host path, a host device or more
// of the kernel's powers into the container.
func (d *Definition) checkMounts(c *Container, p string) error {
	for j, m := range c.MountPoints {
		mp := index(p+".mountPoints", j)
		var v *Volume
		for k := range d.Volumes {
			if d.Volumes[k].Name == m.SourceVolume {
				v = &d.Volumes[k]
			}
		}
		switch {
		case v == nil:
			return fmt.Errorf("%s.sourceVolume: %q is not a volume of the task", mp, clip(m.SourceVolume))
		case v.Host != nil && v.Host.SourcePath != "":
			return fmt.Errorf("%s: volume %q is the host path %s: bind mounts of host paths are refused", mp, clip(v.Name), clip(v.Host.SourcePath))
		default:
			return fmt.Errorf("%s: volume %q: not supported (scangate's engine mounts no volumes)", mp, clip(v.Name))
		}
	}
	if len(c.VolumesFrom) > 0 {
		return fmt.Errorf("%s.volumesFrom: bind mounts of host paths are refused, and so are another container's volumes", p)
	}
	if lp := c.LinuxParameters; lp != nil {
		if lp.Capabilities != nil && len(lp.Capabilities.Add) > 0 {
			return fmt.Errorf("%s.linuxParameters.capabilities.add: adding Linux capabilities is refused (%s would give the container powers over the host)", p, clip(lp.Capabilities.Add[0]))
		}
		if len(lp.Devices) > 0 {
			return fmt.Errorf("%s.linuxParameters.devices: host devices are refused (%s)", p, clip(lp.Devices[0].HostPath))
		}
	}
	return nil
}

// checkArgs bounds a command line; a NUL byte could never reach the
// process, whose arguments are C strings.
func checkArgs(args []string, p string) error {
	if len(args) > MaxArgs {
		return fmt.Errorf("%s: %d elements, at most %d", p, len(args), MaxArgs)
	}
	for i, a := range args {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("%s: a NUL byte, which a process cannot be given", index(p, i))
		}
	}
	return nil
}

func checkEnvironment(env []KeyValue, p string) error {
	if len(env) > MaxEnvironment {
		return fmt.Errorf("%s: %d variables, at most %d", p, len(env), MaxEnvironment)
	}
	seen := map[string]int{}
	for i, kv := range env {
		ep := index(p, i)
		if !envRe.MatchString(kv.Name) {
			return fmt.Errorf("%s.name: %q is not a variable name: use letters, digits and '_', not starting with a digit", ep, clip(kv.Name))
		}
		if j, ok := seen[kv.Name]; ok {
			return fmt.Errorf("%s.name: %s is also set by %s", ep, kv.Name, index(p, j))
		}
		seen[kv.Name] = i
		if strings.ContainsRune(kv.Value, 0) {
			return fmt.Errorf("%s.value: a NUL byte, which a process cannot be given", ep)
		}
	}
	return nil
}

func checkPort(pm *PortMapping, p string, published map[string]string) error {
	if pm.ContainerPort < 1 || pm.ContainerPort > 65535 {
		return fmt.Errorf("%s.containerPort: %d is not a port (1-65535)", p, pm.ContainerPort)
	}
	if pm.HostPort < 0 || pm.HostPort > 65535 {
		return fmt.Errorf("%s.hostPort: %d is not a port (0 for any free port, or 1-65535)", p, pm.HostPort)
	}
	if pm.Protocol == "" {
		pm.Protocol = "tcp"
	}
	if pm.Protocol != "tcp" && pm.Protocol != "udp" {
		return fmt.Errorf("%s.protocol: %q: want tcp or udp", p, clip(pm.Protocol))
	}
	if pm.HostPort != 0 {
		// One host port (of a protocol) can be published once: tcp/53 and
		// udp/53 may both be.
		key := fmt.Sprintf("%d/%s", pm.HostPort, pm.Protocol)
		if other, ok := published[key]; ok {
			return fmt.Errorf("%s.hostPort: %s is already published by %s", p, key, other)
		}
		published[key] = p
	}
	return nil
}

func checkHealth(h *HealthCheck, p string) error {
	cmd := h.Command
	switch {
	case len(cmd) == 0:
		return fmt.Errorf(`%s.command: required: ["CMD", "program", "arg"...] or ["CMD-SHELL", "a shell line"]`, p)
	case cmd[0] == "CMD" && len(cmd) < 2:
		return fmt.Errorf("%s.command: CMD needs the program to run after it", p)
	case cmd[0] == "CMD-SHELL" && (len(cmd) != 2 || cmd[1] == ""):
		return fmt.Errorf("%s.command: CMD-SHELL takes one shell line after it", p)
	case cmd[0] != "CMD" && cmd[0] != "CMD-SHELL":
		return fmt.Errorf("%s.command: %q first: want CMD or CMD-SHELL first, as ECS does", p, clip(cmd[0]))
	}
	if err := checkArgs(cmd, p+".command"); err != nil {
		return err
	}
	if h.Interval == 0 {
		h.Interval = DefaultHealthInterval
	}
	if h.Timeout == 0 {
		h.Timeout = DefaultHealthTimeout
	}
	if h.Retries == 0 {
		h.Retries = DefaultHealthRetries
	}
	for _, r := range []struct {
		field         string
		v, lo, hi, df int
	}{
		{"interval", h.Interval, 5, 300, DefaultHealthInterval},
		{"timeout", h.Timeout, 2, 120, DefaultHealthTimeout},
		{"retries", h.Retries, 1, 10, DefaultHealthRetries},
		{"startPeriod", h.StartPeriod, 0, 300, 0},
	} {
		if r.v < r.lo || r.v > r.hi {
			unit := " seconds"
			if r.field == "retries" {
				unit = ""
			}
			return fmt.Errorf("%s.%s: %d%s: want %d to %d (default %d)", p, r.field, r.v, unit, r.lo, r.hi, r.df)
		}
	}
	if h.Timeout >= h.Interval {
		return fmt.Errorf("%s.timeout: %d seconds must be shorter than the interval (%d seconds)", p, h.Timeout, h.Interval)
	}
	return nil
}

// checkDependencies checks each dependsOn against the containers it names,
// then refuses cycles, which would never start.
func (d *Definition) checkDependencies(names map[string]int) error {
	cs := d.ContainerDefinitions
	for i := range cs {
		seen := map[string]bool{}
		for j, dep := range cs[i].DependsOn {
			p := index(index("containerDefinitions", i)+".dependsOn", j)
			t, ok := names[dep.ContainerName]
			switch {
			case !ok:
				return fmt.Errorf("%s.containerName: %q is not a container of the task", p, clip(dep.ContainerName))
			case t == i:
				return fmt.Errorf("%s.containerName: %q is the container itself", p, dep.ContainerName)
			case seen[dep.ContainerName]:
				return fmt.Errorf("%s.containerName: %q is named twice", p, dep.ContainerName)
			}
			seen[dep.ContainerName] = true
			target := &cs[t]
			switch dep.Condition {
			case ConditionStart:
			case ConditionHealthy:
				if target.HealthCheck == nil {
					return fmt.Errorf("%s.condition: HEALTHY, but %s has no healthCheck", p, target.Name)
				}
			case ConditionComplete, ConditionSuccess:
				// ECS's rule: an essential container's exit stops the task,
				// so waiting for it to exit waits for the task's end.
				if target.IsEssential() {
					return fmt.Errorf("%s.condition: %s waits for %s to exit, but %s is essential (its exit stops the task)", p, dep.Condition, target.Name, target.Name)
				}
			default:
				return fmt.Errorf("%s.condition: %q: want START, COMPLETE, SUCCESS or HEALTHY", p, clip(dep.Condition))
			}
		}
	}
	// A depth-first walk: a container met again while its own
	// dependencies are being walked closes a cycle.
	const (
		unvisited = iota
		walking
		done
	)
	state := make([]int, len(cs))
	var stack []int
	var walk func(i int) error
	walk = func(i int) error {
		state[i] = walking
		stack = append(stack, i)
		for _, dep := range cs[i].DependsOn {
			t := names[dep.ContainerName]
			switch state[t] {
			case walking:
				var cycle []string
				for k := len(stack) - 1; k >= 0; k-- {
					cycle = append([]string{cs[stack[k]].Name}, cycle...)
					if stack[k] == t {
						break
					}
				}
				cycle = append(cycle, cs[t].Name)
				return fmt.Errorf("%s.dependsOn: a cycle, which could never start: %s", index("containerDefinitions", t), strings.Join(cycle, " → "))
			case unvisited:
				if err := walk(t); err != nil {
					return err
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = done
		return nil
	}
	for i := range cs {
		if state[i] == unvisited {
			if err := walk(i); err != nil {
				return err
			}
		}
	}
	return nil
}
