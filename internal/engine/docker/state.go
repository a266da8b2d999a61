package docker

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/scangate/scangate/internal/engine"
)

// containers lists the cluster's containers, running or not: the task's
// when taskID is not "".
func (r *Runtime) containers(ctx context.Context, cluster, taskID string) ([]container.Summary, error) {
	f := make(client.Filters).Add("label", engine.LabelCluster+"="+cluster)
	if taskID != "" {
		f.Add("label", engine.LabelTask+"="+taskID)
	}
	res, err := r.docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("docker: listing the containers of cluster %s: %w", cluster, unavailable(err))
	}
	return res.Items, nil
}

// Tasks lists the cluster's tasks on the engine, running or stopped,
// rebuilt from their containers' labels and state, in task id order; each
// task's containers are in the order they were created (the start order).
// A cluster without containers has no tasks.
func (r *Runtime) Tasks(ctx context.Context, cluster string) ([]engine.TaskState, error) {
	list, err := r.containers(ctx, cluster, "")
	if err != nil {
		return nil, err
	}
	return r.rebuild(ctx, list)
}

// Task is one task's state, rebuilt as Tasks does; engine.ErrNotFound if
// it has no container.
func (r *Runtime) Task(ctx context.Context, cluster, taskID string) (engine.TaskState, error) {
	list, err := r.containers(ctx, cluster, taskID)
	if err != nil {
		return engine.TaskState{}, err
	}
	tasks, err := r.rebuild(ctx, list)
	if err != nil {
		return engine.TaskState{}, err
	}
	if len(tasks) == 0 {
		return engine.TaskState{}, fmt.Errorf("docker: task %s of cluster %s: %w", taskID, cluster, engine.ErrNotFound)
	}
	return tasks[0], nil
}

// rebuild groups containers into tasks by their labels and inspects each
// one. A container removed meanwhile is left out.
func (r *Runtime) rebuild(ctx context.Context, list []container.Summary) ([]engine.TaskState, error) {
	type member struct {
		created string
		state   engine.ContainerState
	}
	tasks := map[string]*engine.TaskState{}
	members := map[string][]member{}
	for _, c := range list {
		in, err := r.inspect(ctx, c.ID)
		if cerrdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("docker: inspecting %s: %w", containerLabel(c), unavailable(err))
		}
		l := c.Labels
		id := l[engine.LabelTask]
		if tasks[id] == nil {
			rev, _ := strconv.Atoi(l[engine.LabelRevision])
			tasks[id] = &engine.TaskState{
				Cluster:  l[engine.LabelCluster],
				Service:  l[engine.LabelService],
				TaskID:   id,
				Family:   l[engine.LabelFamily],
				Revision: rev,
			}
		}
		members[id] = append(members[id], member{created: in.Created, state: containerState(in)})
	}
	out := make([]engine.TaskState, 0, len(tasks))
	for _, id := range slices.Sorted(maps.Keys(tasks)) {
		ms := members[id]
		slices.SortFunc(ms, func(a, b member) int {
			return cmp.Or(cmp.Compare(parseTime(a.created).UnixNano(), parseTime(b.created).UnixNano()), cmp.Compare(a.state.Name, b.state.Name))
		})
		t := *tasks[id]
		for _, m := range ms {
			t.Containers = append(t.Containers, m.state)
		}
		out = append(out, t)
	}
	return out, nil
}

// taskState is the state of a task StartTask is starting: its containers
// named in names, with the IDs in ids.
func (r *Runtime) taskState(ctx context.Context, spec engine.TaskSpec, names []string, ids map[string]string) (engine.TaskState, error) {
	state := engine.TaskState{Cluster: spec.Cluster, Service: spec.Service, TaskID: spec.TaskID, Family: spec.Family, Revision: spec.Revision}
	for _, name := range names {
		in, err := r.inspect(ctx, ids[name])
		if err != nil {
			return state, fmt.Errorf("docker: task %s: inspecting container %s: %w", spec.TaskID, name, unavailable(err))
		}
		state.Containers = append(state.Containers, containerState(in))
	}
	return state, nil
}

const (
	// oomLate is how long inspect waits for the engine to mark a
	// SIGKILLed container OOM-killed.
	oomLate = time.Second
	// oomRecent: containers that ended longer ago than this are taken
	// as the engine reports them.
	oomRecent = 30 * time.Second
)

// inspect inspects a container for its state. The engine hears of an OOM
// kill from containerd apart from the exit, and on a loaded engine after
// it (seen: the die event, then the oom event). dockerd handles a
// container's events in the order they came and marks it OOM-killed
// whenever the oom event comes, so for a moment after the exit it reports
// exit code 137 and OOMKilled false, and a task read then would be stopped
// as killed, not as out of memory. So the first time a container with a
// memory limit is seen SIGKILLed, not marked OOM-killed, and ended less
// than oomRecent ago, it is inspected again oomLate later; a read at the
// same time waits for the same moment, and later reads do not wait.
func (r *Runtime) inspect(ctx context.Context, id string) (container.InspectResponse, error) {
	res, err := r.docker.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return container.InspectResponse{}, err
	}
	in := res.Container
	st := in.State
	if st == nil || st.Running || st.ExitCode != 137 || st.OOMKilled || in.HostConfig == nil || in.HostConfig.Memory <= 0 ||
		time.Since(parseTime(st.FinishedAt)) > oomRecent {
		return in, nil
	}
	wait := r.oomWait(in.ID)
	if wait <= 0 {
		return in, nil
	}
	select {
	case <-ctx.Done():
		return container.InspectResponse{}, ctx.Err()
	case <-time.After(wait):
	}
	res, err = r.docker.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return container.InspectResponse{}, err
	}
	return res.Container, nil
}

// oomWait is how long inspect waits before it looks at container id
// again: oomLate from the first time it asked, nothing once that has
// passed.
func (r *Runtime) oomWait(id string) time.Duration {
	now := time.Now()
	r.oomMu.Lock()
	defer r.oomMu.Unlock()
	until, ok := r.oomUntil[id]
	if !ok {
		for k, u := range r.oomUntil {
			if now.Sub(u) > oomRecent {
				delete(r.oomUntil, k)
			}
		}
		until = now.Add(oomLate)
		r.oomUntil[id] = until
	}
	return until.Sub(now)
}

// containerState is the engine's view of a container in engine's words.
func containerState(in container.InspectResponse) engine.ContainerState {
	cs := engine.ContainerState{ID: in.ID}
	if in.Config != nil {
		cs.Name = in.Config.Labels[engine.LabelContainer]
		cs.Image = in.Config.Image
	}
	if st := in.State; st != nil {
		switch st.Status {
		case container.StateCreated:
			cs.State = engine.StateCreated
		case container.StateRunning, container.StatePaused, container.StateRestarting:
			cs.State = engine.StateRunning
		default: // exited, dead, removing
			cs.State = engine.StateExited
		}
		cs.ExitCode = st.ExitCode
		cs.OOMKilled = st.OOMKilled
		cs.Error = st.Error
		cs.StartedAt = parseTime(st.StartedAt)
		cs.FinishedAt = parseTime(st.FinishedAt)
		if h := st.Health; h != nil {
			cs.Health = string(h.Status)
			if n := len(h.Log); n > 0 && h.Log[n-1] != nil {
				cs.HealthOutput = h.Log[n-1].Output
			}
		}
	}
	if in.NetworkSettings != nil {
		for port, bindings := range in.NetworkSettings.Ports {
			for _, b := range bindings {
				hostPort, err := strconv.Atoi(b.HostPort)
				if err != nil {
					continue
				}
				p := engine.PublishedPort{ContainerPort: int(port.Num()), Protocol: string(port.Proto()), HostPort: hostPort}
				if b.HostIP.IsValid() {
					p.HostIP = b.HostIP.String()
				}
				cs.Ports = append(cs.Ports, p)
			}
		}
		slices.SortFunc(cs.Ports, func(a, b engine.PublishedPort) int {
			return cmp.Or(cmp.Compare(a.ContainerPort, b.ContainerPort), cmp.Compare(a.Protocol, b.Protocol),
				cmp.Compare(a.HostIP, b.HostIP), cmp.Compare(a.HostPort, b.HostPort))
		})
	}
	return cs
}

// parseTime reads the engine's times; the zero time ("0001-01-01T00:00:00Z",
// never) and anything unreadable are the zero time.Time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}
