package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/scangate/scangate/internal/engine"
)

// watchBuffer is how many events a Watch holds for a slow reader before
// the engine's stream waits.
const watchBuffer = 64

// Watch sends the cluster's container events (start, die with its exit
// code, oom, health_status with the new status, destroy) from the engine's
// event stream, filtered by the engine to the cluster's label. The stream
// starts at the call: events the engine records from then on are sent even
// if they happen before it has fully subscribed. The channel is closed
// when ctx ends or the stream breaks (the engine stopped, say); callers
// then reconcile with Tasks and watch again. An engine that cannot be
// reached is engine.ErrUnavailable at once.
func (r *Runtime) Watch(ctx context.Context, cluster string) (<-chan engine.Event, error) {
	if err := checkName("cluster", cluster); err != nil {
		return nil, err
	}
	if _, err := r.Ping(ctx); err != nil {
		return nil, err
	}
	since := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	f := make(client.Filters).
		Add("type", string(events.ContainerEventType)).
		Add("label", engine.LabelCluster+"="+cluster).
		// health_status matches "health_status: healthy" and the others:
		// the engine compares it as a prefix.
		Add("event", engine.EventStart, engine.EventDie, engine.EventOOM, engine.EventHealth, engine.EventDestroy)
	stream := r.docker.Events(ctx, client.EventsListOptions{Since: since.Format(time.RFC3339Nano), Filters: f})
	out := make(chan engine.Event, watchBuffer)
	go func() {
		defer close(out)
		defer cancel()
		for {
			select {
			case m := <-stream.Messages:
				ev, ok := toEvent(m, cluster)
				if !ok {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case err := <-stream.Err:
				if err != nil && ctx.Err() == nil {
					r.log.Warn("the engine's event stream broke", "cluster", cluster, "err", err)
				}
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// toEvent is the engine's event m in engine's words, if it is one of the
// cluster's.
func toEvent(m events.Message, cluster string) (engine.Event, bool) {
	a := m.Actor.Attributes
	if m.Type != events.ContainerEventType || a[engine.LabelCluster] != cluster {
		return engine.Event{}, false
	}
	ev := engine.Event{
		Cluster:   cluster,
		Service:   a[engine.LabelService],
		TaskID:    a[engine.LabelTask],
		Container: a[engine.LabelContainer],
		Time:      time.Unix(m.Time, 0),
	}
	if m.TimeNano != 0 {
		ev.Time = time.Unix(0, m.TimeNano)
	}
	action := string(m.Action)
	switch {
	case action == engine.EventStart, action == engine.EventOOM, action == engine.EventDestroy:
		ev.Kind = action
	case action == engine.EventDie:
		ev.Kind = action
		ev.ExitCode, _ = strconv.Atoi(a["exitCode"])
	case strings.HasPrefix(action, engine.EventHealth+":"):
		ev.Kind = engine.EventHealth
		ev.Health = strings.TrimSpace(strings.TrimPrefix(action, engine.EventHealth+":"))
	default:
		return engine.Event{}, false
	}
	return ev, true
}

// Logs writes the container's stdout and stderr, interleaved as the
// engine recorded them, to w as plain text: the last opts.Tail lines (all
// when 0) and, with opts.Follow, what it prints until it stops or ctx
// ends, which is the end of a follow, not an error. The container is the
// one the task's spec named container; engine.ErrNotFound if there is none.
func (r *Runtime) Logs(ctx context.Context, cluster, taskID, container string, opts engine.LogOptions, w io.Writer) error {
	name := containerName(cluster, taskID, container)
	in, err := r.docker.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) || err == nil && (in.Container.Config == nil || in.Container.Config.Labels[engine.LabelCluster] != cluster ||
		in.Container.Config.Labels[engine.LabelTask] != taskID || in.Container.Config.Labels[engine.LabelContainer] != container) {
		return fmt.Errorf("docker: container %s of task %s: %w", container, taskID, engine.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("docker: container %s of task %s: %w", container, taskID, unavailable(err))
	}
	tail := "all"
	if opts.Tail > 0 {
		tail = strconv.Itoa(opts.Tail)
	}
	rc, err := r.docker.ContainerLogs(ctx, in.Container.ID, client.ContainerLogsOptions{
		ShowStdout: true,
		ShowStderr: true,
		Follow:     opts.Follow,
		Tail:       tail,
	})
	if err != nil {
		if opts.Follow && ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("docker: logs of container %s of task %s: %w", container, taskID, unavailable(err))
	}
	defer rc.Close()
	if in.Container.Config.Tty {
		_, err = io.Copy(w, rc)
	} else {
		_, err = stdcopy.StdCopy(w, w, rc)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		if opts.Follow && ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("docker: logs of container %s of task %s: %w", container, taskID, err)
	}
	return nil
}
