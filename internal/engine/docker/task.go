package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"github.com/scangate/scangate/internal/engine"
)

const (
	// DefaultHostIP is where ports are published when a TaskSpec names no
	// HostIP.
	DefaultHostIP = "127.0.0.1"
	// pollMin and pollMax bound the pause between inspections while
	// StartTask waits for a dependency's condition.
	pollMin = 50 * time.Millisecond
	pollMax = 500 * time.Millisecond
	// stateTimeout bounds reading the state of a start that failed, whose
	// ctx may be done by then.
	stateTimeout = 10 * time.Second
	// conflictTimeout bounds the wait for a container whose name another
	// start took.
	conflictTimeout = 30 * time.Second
)

// StartTask pulls what is missing and creates and starts the task's
// containers in depends-on order (ties in the spec's order), waiting before
// each one for the conditions of its dependencies (bounded by ctx). A
// container of the task that exists already is reused, never made twice;
// one that was started before is not started again. On an error the
// containers made so far are left for StopTask and RemoveTask, and the
// returned state holds them.
//
// Each container is made as the ContainerSpec says: env, command and
// entrypoint (an entrypoint replaces the image's command too, as on
// Docker), ports published on spec.HostIP (DefaultHostIP when empty; host
// port 0 lets the engine choose), CPU as NanoCPUs (1024 units = 1 core, a
// hard cap), memory as a hard limit without swap (so that a container past
// it is OOM-killed, not slowed) and a reservation, Docker's health check,
// privileged only when the spec says, no restart policy, StopTimeout
// rounded up to seconds, on the cluster's network with spec.Aliases as
// its network aliases (every container of the task gets them).
//
// Essential is the controller's business: the runtime reports each
// container's state and stops nothing by itself.
//
// An image is pulled only when the engine does not have it, with the
// credentials spec.Auth gives for its registry host; a failed pull's error
// wraps engine.ErrImagePull and carries the engine's message. A cluster
// without its network is engine.ErrNotFound.
func (r *Runtime) StartTask(ctx context.Context, spec engine.TaskSpec) (engine.TaskState, error) {
	order, err := plan(spec)
	if err != nil {
		return engine.TaskState{}, err
	}
	hostIP, err := netip.ParseAddr(cmpOr(spec.HostIP, DefaultHostIP))
	if err != nil {
		return engine.TaskState{}, fmt.Errorf("docker: task %s: host IP %q: %w", spec.TaskID, spec.HostIP, err)
	}
	netID, err := r.network(ctx, spec.Cluster)
	if err != nil {
		return engine.TaskState{}, err
	}
	ids := make(map[string]string, len(order)) // container name → ID
	var made []string                          // names, in start order
	fail := func(err error) (engine.TaskState, error) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateTimeout)
		defer cancel()
		state, serr := r.taskState(sctx, spec, made, ids)
		if serr != nil {
			r.log.Warn("reading the state of a failed start", "cluster", spec.Cluster, "task", spec.TaskID, "err", serr)
		}
		return state, err
	}
	for _, c := range order {
		for _, dep := range c.DependsOn {
			if err := r.await(ctx, spec, dep, ids[dep.Container]); err != nil {
				return fail(fmt.Errorf("docker: task %s: container %s waits for %s to be %s: %w", spec.TaskID, c.Name, dep.Container, dep.Condition, err))
			}
		}
		id, status, err := r.ensureContainer(ctx, spec, c, netID, hostIP)
		if err != nil {
			return fail(err)
		}
		ids[c.Name] = id
		made = append(made, c.Name)
		if status != container.StateCreated {
			continue // started by an earlier attempt
		}
		if err := r.startContainer(ctx, spec, c.Name, id); err != nil {
			return fail(fmt.Errorf("docker: task %s: starting container %s: %w", spec.TaskID, c.Name, unavailable(err)))
		}
		r.log.Debug("started container", "cluster", spec.Cluster, "task", spec.TaskID, "container", c.Name, "id", id)
	}
	state, err := r.taskState(ctx, spec, made, ids)
	if err != nil {
		return state, err
	}
	return state, nil
}

// startContainer starts container id, again (twice at most, a moment
// apart) when the engine's containerd missed a deadline setting it up: on
// a loaded machine its shim can time out opening the container's pipes
// ("failed to create shim task: … context deadline exceeded"), which
// leaves the container as it was, ready to start. A start refused for the
// container's own reasons (no such executable, a port taken) is not tried
// again.
func (r *Runtime) startContainer(ctx context.Context, spec engine.TaskSpec, name, id string) error {
	for attempt := 1; ; attempt++ {
		_, err := r.docker.ContainerStart(ctx, id, client.ContainerStartOptions{})
		if err == nil || attempt == 3 || !shimTimedOut(err) {
			return err
		}
		r.log.Warn("the engine timed out starting a container; starting it again", "cluster", spec.Cluster, "task", spec.TaskID,
			"container", name, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
		}
	}
}

// shimTimedOut tells containerd's timeout while setting a container up
// from the container's own failures; the engine says it only in words.
func shimTimedOut(err error) bool {
	m := err.Error()
	return strings.Contains(m, "failed to create shim task") && strings.Contains(m, "context deadline exceeded")
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// plan checks the spec and orders its containers so that each comes after
// the containers it depends on.
func plan(spec engine.TaskSpec) ([]engine.ContainerSpec, error) {
	if err := checkName("cluster", spec.Cluster); err != nil {
		return nil, err
	}
	if err := checkTaskID(spec.TaskID); err != nil {
		return nil, err
	}
	if len(spec.Containers) == 0 {
		return nil, fmt.Errorf("docker: task %s has no containers", spec.TaskID)
	}
	byName := make(map[string]engine.ContainerSpec, len(spec.Containers))
	for _, c := range spec.Containers {
		if err := checkName("container", c.Name); err != nil {
			return nil, err
		}
		if _, dup := byName[c.Name]; dup {
			return nil, fmt.Errorf("docker: task %s: two containers named %s", spec.TaskID, c.Name)
		}
		if err := checkContainer(c); err != nil {
			return nil, fmt.Errorf("docker: task %s: container %s: %w", spec.TaskID, c.Name, err)
		}
		byName[c.Name] = c
	}
	for _, c := range spec.Containers {
		for _, d := range c.DependsOn {
			dep, ok := byName[d.Container]
			switch {
			case !ok || d.Container == c.Name:
				return nil, fmt.Errorf("docker: task %s: container %s depends on %q, not another container of the task", spec.TaskID, c.Name, d.Container)
			case !slices.Contains([]string{engine.ConditionStart, engine.ConditionComplete, engine.ConditionSuccess, engine.ConditionHealthy}, d.Condition):
				return nil, fmt.Errorf("docker: task %s: container %s: unknown dependency condition %q", spec.TaskID, c.Name, d.Condition)
			case d.Condition == engine.ConditionHealthy && dep.Health == nil:
				return nil, fmt.Errorf("docker: task %s: container %s waits for %s to be HEALTHY, but %s has no health check", spec.TaskID, c.Name, d.Container, d.Container)
			}
		}
	}
	// Depth-first, in the spec's order: a container follows its
	// dependencies; a cycle is an error.
	const (
		visiting = 1
		done     = 2
	)
	mark := map[string]int{}
	var order []engine.ContainerSpec
	var visit func(c engine.ContainerSpec, path []string) error
	visit = func(c engine.ContainerSpec, path []string) error {
		switch mark[c.Name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("docker: task %s: containers depend on each other in a cycle: %s", spec.TaskID, strings.Join(append(path, c.Name), " → "))
		}
		mark[c.Name] = visiting
		for _, d := range c.DependsOn {
			if err := visit(byName[d.Container], append(path, c.Name)); err != nil {
				return err
			}
		}
		mark[c.Name] = done
		order = append(order, c)
		return nil
	}
	for _, c := range spec.Containers {
		if err := visit(c, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// checkContainer checks what the engine would refuse later, or take
// wrongly.
func checkContainer(c engine.ContainerSpec) error {
	if c.Image == "" {
		return errors.New("no image")
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("environment variable name %q", k)
		}
	}
	for _, p := range c.Ports {
		if p.ContainerPort < 1 || p.ContainerPort > 65535 || p.HostPort < 0 || p.HostPort > 65535 {
			return fmt.Errorf("port mapping %d:%d: ports are 1 to 65535 (host port 0: any)", p.HostPort, p.ContainerPort)
		}
		if p.Protocol != "" && p.Protocol != "tcp" && p.Protocol != "udp" {
			return fmt.Errorf("port %d: protocol %q is not tcp or udp", p.ContainerPort, p.Protocol)
		}
	}
	if c.CPU < 0 || c.MemoryMiB < 0 || c.MemoryReservationMiB < 0 || c.StopTimeout < 0 {
		return errors.New("negative CPU, memory or stop timeout")
	}
	if c.MemoryMiB > 0 && c.MemoryReservationMiB > c.MemoryMiB {
		return fmt.Errorf("memory reservation %d MiB is above the limit %d MiB", c.MemoryReservationMiB, c.MemoryMiB)
	}
	if h := c.Health; h != nil {
		if len(h.Command) == 0 || !slices.Contains([]string{"CMD", "CMD-SHELL", "NONE"}, h.Command[0]) {
			return fmt.Errorf("health check command %q: want [\"CMD\", …] or [\"CMD-SHELL\", …]", h.Command)
		}
		for _, d := range []time.Duration{h.Interval, h.Timeout, h.StartPeriod} {
			if d != 0 && d < container.MinimumDuration {
				return fmt.Errorf("health check durations must be 0 (the default) or at least %s", container.MinimumDuration)
			}
		}
		if h.Retries < 0 {
			return errors.New("negative health check retries")
		}
	}
	return nil
}

// ensureContainer returns the task's container c, made now or before, and
// its status.
func (r *Runtime) ensureContainer(ctx context.Context, spec engine.TaskSpec, c engine.ContainerSpec, netID string, hostIP netip.Addr) (string, container.ContainerState, error) {
	name := containerName(spec.Cluster, spec.TaskID, c.Name)
	if id, status, err := r.existing(ctx, spec, c.Name, name); err != nil || id != "" {
		return id, status, err
	}
	if err := r.ensureImage(ctx, c.Image, spec.Auth); err != nil {
		return "", "", fmt.Errorf("docker: task %s: container %s: %w", spec.TaskID, c.Name, err)
	}
	opts := createOptions(spec, c, name, netID, hostIP)
	res, err := r.docker.ContainerCreate(ctx, opts)
	if cerrdefs.IsConflict(err) {
		// Another start of the task made it first: take that one. The
		// engine reserves the name before the container can be inspected.
		return r.winner(ctx, spec, c.Name, name)
	}
	if err != nil {
		return "", "", fmt.Errorf("docker: task %s: creating container %s: %w", spec.TaskID, c.Name, unavailable(err))
	}
	for _, w := range res.Warnings {
		r.log.Warn("the engine warns about a container", "container", name, "warning", w)
	}
	r.log.Debug("created container", "cluster", spec.Cluster, "task", spec.TaskID, "container", c.Name, "id", res.ID)
	return res.ID, container.StateCreated, nil
}

// winner waits for the container another start is making under name.
func (r *Runtime) winner(ctx context.Context, spec engine.TaskSpec, cname, name string) (string, container.ContainerState, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, conflictTimeout, fmt.Errorf("the name %s is taken, but no container of that name appeared in %s", name, conflictTimeout))
	defer cancel()
	for pause := pollMin; ; pause = min(2*pause, pollMax) {
		id, status, err := r.existing(ctx, spec, cname, name)
		if err != nil || id != "" {
			return id, status, err
		}
		select {
		case <-ctx.Done():
			return "", "", fmt.Errorf("docker: task %s: creating container %s: %w", spec.TaskID, cname, context.Cause(ctx))
		case <-time.After(pause):
		}
	}
}

// existing finds the container named name; it must be the task's.
func (r *Runtime) existing(ctx context.Context, spec engine.TaskSpec, cname, name string) (string, container.ContainerState, error) {
	in, err := r.docker.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("docker: task %s: inspecting container %s: %w", spec.TaskID, cname, unavailable(err))
	}
	var labels map[string]string
	if in.Container.Config != nil {
		labels = in.Container.Config.Labels
	}
	if labels[engine.LabelCluster] != spec.Cluster || labels[engine.LabelTask] != spec.TaskID || labels[engine.LabelContainer] != cname {
		return "", "", fmt.Errorf("docker: task %s: a container named %s exists but is not this task's (labels %v)", spec.TaskID, name, labels)
	}
	var status container.ContainerState
	if in.Container.State != nil {
		status = in.Container.State.Status
	}
	r.log.Debug("reusing container", "cluster", spec.Cluster, "task", spec.TaskID, "container", cname, "id", in.Container.ID, "status", status)
	return in.Container.ID, status, nil
}

// labels are a task container's labels: all of engine's.
func labels(spec engine.TaskSpec, container string) map[string]string {
	return map[string]string{
		engine.LabelCluster:   spec.Cluster,
		engine.LabelService:   spec.Service,
		engine.LabelTask:      spec.TaskID,
		engine.LabelFamily:    spec.Family,
		engine.LabelRevision:  strconv.Itoa(spec.Revision),
		engine.LabelContainer: container,
	}
}

// createOptions are the engine's words for the container c of spec.
func createOptions(spec engine.TaskSpec, c engine.ContainerSpec, name, netID string, hostIP netip.Addr) client.ContainerCreateOptions {
	cfg := &container.Config{
		Image:      c.Image,
		Labels:     labels(spec, c.Name),
		Cmd:        slices.Clone(c.Command),
		Entrypoint: slices.Clone(c.Entrypoint),
	}
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		cfg.Env = append(cfg.Env, k+"="+c.Env[k])
	}
	if c.StopTimeout > 0 {
		secs := int(math.Ceil(c.StopTimeout.Seconds()))
		cfg.StopTimeout = &secs
	}
	if h := c.Health; h != nil {
		cfg.Healthcheck = &container.HealthConfig{
			Test:        slices.Clone(h.Command),
			Interval:    h.Interval,
			Timeout:     h.Timeout,
			Retries:     h.Retries,
			StartPeriod: h.StartPeriod,
		}
	}
	host := &container.HostConfig{
		NetworkMode:   container.NetworkMode(netID),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		Privileged:    c.Privileged,
	}
	if c.CPU > 0 {
		host.NanoCPUs = int64(c.CPU) * 1e9 / 1024
	}
	if c.MemoryMiB > 0 {
		host.Memory = int64(c.MemoryMiB) << 20
		host.MemorySwap = host.Memory // no swap: the limit is the limit
	}
	if c.MemoryReservationMiB > 0 {
		host.MemoryReservation = int64(c.MemoryReservationMiB) << 20
	}
	for _, p := range c.Ports {
		port, _ := network.PortFrom(uint16(p.ContainerPort), network.IPProtocol(cmpOr(p.Protocol, "tcp")))
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = network.PortSet{}
			host.PortBindings = network.PortMap{}
		}
		cfg.ExposedPorts[port] = struct{}{}
		binding := network.PortBinding{HostIP: hostIP}
		if p.HostPort > 0 {
			binding.HostPort = strconv.Itoa(p.HostPort)
		}
		host.PortBindings[port] = append(host.PortBindings[port], binding)
	}
	return client.ContainerCreateOptions{
		Name:       name,
		Config:     cfg,
		HostConfig: host,
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			netID: {Aliases: slices.Clone(spec.Aliases)},
		}},
	}
}

// ensureImage pulls ref unless the engine has it.
func (r *Runtime) ensureImage(ctx context.Context, ref string, auth map[string]engine.Credentials) error {
	_, err := r.docker.ImageInspect(ctx, ref)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspecting image %s: %w", ref, unavailable(err))
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return fmt.Errorf("%w %s: %w", engine.ErrImagePull, ref, err)
	}
	opts := client.ImagePullOptions{}
	host := reference.Domain(named)
	if cred, ok := credentials(auth, host); ok {
		opts.RegistryAuth, err = authconfig.Encode(registry.AuthConfig{Username: cred.Username, Password: cred.Password, ServerAddress: host})
		if err != nil {
			return fmt.Errorf("%w %s: encoding credentials: %w", engine.ErrImagePull, ref, err)
		}
	}
	start := time.Now()
	r.log.Info("pulling image", "image", ref)
	resp, err := r.docker.ImagePull(ctx, ref, opts)
	if err == nil {
		err = resp.Wait(ctx)
		resp.Close()
	}
	if err != nil {
		if client.IsErrConnectionFailed(err) {
			return fmt.Errorf("pulling %s: %w", ref, unavailable(err))
		}
		if ctx.Err() != nil {
			return fmt.Errorf("pulling %s: %w", ref, context.Cause(ctx))
		}
		return fmt.Errorf("%w %s: %w", engine.ErrImagePull, ref, err)
	}
	r.log.Info("pulled image", "image", ref, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// credentials are auth's for a registry host; Docker Hub goes by several
// names.
func credentials(auth map[string]engine.Credentials, host string) (engine.Credentials, bool) {
	names := []string{host}
	if host == "docker.io" {
		names = append(names, "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/")
	}
	for _, n := range names {
		if c, ok := auth[n]; ok {
			return c, true
		}
	}
	return engine.Credentials{}, false
}

// await waits until the task's container id meets the dependency's
// condition, or it never can, or ctx ends.
func (r *Runtime) await(ctx context.Context, spec engine.TaskSpec, dep engine.Dependency, id string) error {
	pause := pollMin
	for {
		in, err := r.docker.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return unavailable(err)
		}
		met, err := condition(dep.Condition, containerState(in.Container))
		if met || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(pause):
		}
		pause = min(2*pause, pollMax)
	}
}

// condition says whether a container in state s meets cond, or an error if
// it never will.
func condition(cond string, s engine.ContainerState) (bool, error) {
	exited := s.State == engine.StateExited
	switch cond {
	case engine.ConditionStart:
		if s.StartedAt.IsZero() && !exited {
			return false, nil
		}
		if s.StartedAt.IsZero() {
			return false, fmt.Errorf("it did not start: %s", s.Error)
		}
		return true, nil
	case engine.ConditionComplete:
		return exited, nil
	case engine.ConditionSuccess:
		if exited && s.ExitCode != 0 {
			return false, fmt.Errorf("it exited with code %d", s.ExitCode)
		}
		return exited, nil
	case engine.ConditionHealthy:
		switch {
		case s.Health == engine.HealthHealthy && !exited:
			return true, nil
		case s.Health == engine.HealthUnhealthy:
			return false, fmt.Errorf("it is unhealthy: %s", strings.TrimSpace(s.HealthOutput))
		case exited:
			return false, fmt.Errorf("it exited with code %d before it was healthy", s.ExitCode)
		}
		return false, nil
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}

// StopTask stops the task's containers at once: SIGTERM (or the image's
// stop signal), then SIGKILL after grace, rounded up to whole seconds (the
// engine's unit); grace 0 is each container's own StopTimeout (the
// engine's default, 10 s, when it has none). The containers are kept. A
// task without containers is engine.ErrNotFound.
func (r *Runtime) StopTask(ctx context.Context, cluster, taskID string, grace time.Duration) error {
	list, err := r.containers(ctx, cluster, taskID)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return fmt.Errorf("docker: task %s of cluster %s: %w", taskID, cluster, engine.ErrNotFound)
	}
	opts := client.ContainerStopOptions{}
	if grace > 0 {
		secs := int(math.Ceil(grace.Seconds()))
		opts.Timeout = &secs
	}
	return r.each(list, func(c container.Summary) error {
		if c.State == container.StateExited || c.State == container.StateCreated || c.State == container.StateDead {
			return nil
		}
		_, err := r.docker.ContainerStop(ctx, c.ID, opts)
		if err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("docker: stopping %s: %w", containerLabel(c), unavailable(err))
		}
		return nil
	})
}

// RemoveTask removes the task's containers, running or not. A task
// already gone is not an error.
func (r *Runtime) RemoveTask(ctx context.Context, cluster, taskID string) error {
	list, err := r.containers(ctx, cluster, taskID)
	if err != nil {
		return err
	}
	return r.each(list, func(c container.Summary) error {
		_, err := r.docker.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		// A conflict is a removal already under way.
		if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
			return fmt.Errorf("docker: removing %s: %w", containerLabel(c), unavailable(err))
		}
		return nil
	})
}

// each runs fn for every container at once and joins the errors.
func (r *Runtime) each(list []container.Summary, fn func(container.Summary) error) error {
	errs := make([]error, len(list))
	var wg sync.WaitGroup
	for i, c := range list {
		wg.Go(func() { errs[i] = fn(c) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// containerLabel names a container in errors: the task's name for it.
func containerLabel(c container.Summary) string {
	return fmt.Sprintf("container %s of task %s", c.Labels[engine.LabelContainer], c.Labels[engine.LabelTask])
}
