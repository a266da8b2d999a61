// Package docker is engine.Runtime on the Docker Engine, API 1.41 and later
// (Debian's docker.io 20.10 included), named by the environment as the
// docker CLI does (DOCKER_HOST, else the local socket).
//
// A cluster is a user-defined bridge network, scangate-CLUSTER, labelled
// io.scangate.cluster: its containers reach each other by name and by the
// aliases of their task (the service's name), with Docker's embedded DNS.
// A task is its containers, each named scangate-CLUSTER-TASK-CONTAINER.
//
// The labels are the state. Every container carries the engine.Label*
// labels, and this package keeps nothing else: Tasks, Task and Watch
// rebuild what runs from the engine alone, so a restarted controller (or a
// second Runtime) adopts the tasks a former one started, as Docker Compose
// does with its project labels.
//
// Names are derived from the task id, so a start is idempotent: StartTask
// first looks for each container by name and reuses one it finds, and a
// create that loses a race to another start of the same task (the engine
// answers 409 Conflict) takes the winner's container. A start retried after
// a crash starts what is missing and never makes a second copy.
//
// Containers have no restart policy. As in Amazon ECS, a task that stops
// stays stopped, with its exit code, OOM flag and logs kept for the
// controller to read, and the controller replaces it with a new task; an
// engine that restarted containers behind the controller's back would make
// the labels lie about what ran.
package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"

	"github.com/scangate/scangate/internal/engine"
	"github.com/scangate/scangate/internal/lazyregexp"
)

// MinAPIVersion is the oldest Docker Engine API the runtime works with:
// docker.io 20.10's.
const MinAPIVersion = "1.41"

// prefix starts the names of the networks and containers the runtime makes.
const prefix = "scangate-"

// Options configure a Runtime.
type Options struct {
	// Logger receives pulls, creations and starts (default: discarded).
	Logger *slog.Logger
}

// Runtime runs tasks on one Docker Engine. It is safe for concurrent use.
type Runtime struct {
	docker *client.Client
	log    *slog.Logger
	// clusters serialises EnsureCluster and RemoveCluster in this process:
	// the engine does not stop two creations of one network name.
	clusters chan struct{}
	// oomUntil: for containers inspect found SIGKILLed but not (yet)
	// marked OOM-killed, when it may look again (see inspect).
	oomMu    sync.Mutex
	oomUntil map[string]time.Time
}

var _ engine.Runtime = (*Runtime)(nil)

// New returns a Runtime for the engine the environment names. It does not
// contact the engine; Ping does. The client negotiates the API version on
// its first request.
func New(opts Options) (*Runtime, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	docker, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker: client: %w", err)
	}
	return &Runtime{docker: docker, log: opts.Logger, clusters: make(chan struct{}, 1), oomUntil: map[string]time.Time{}}, nil
}

// Close releases the Runtime's connections to the engine.
func (r *Runtime) Close() error {
	return r.docker.Close()
}

// Name is "docker".
func (r *Runtime) Name() string { return "docker" }

// Ping checks that the engine answers and speaks MinAPIVersion or later,
// and returns the API version the client settled on.
func (r *Runtime) Ping(ctx context.Context) (string, error) {
	ping, err := r.docker.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		return "", fmt.Errorf("docker: %w", unavailable(err))
	}
	if ping.APIVersion != "" && versions.LessThan(ping.APIVersion, MinAPIVersion) {
		return "", fmt.Errorf("docker: the engine's API %s is older than %s", ping.APIVersion, MinAPIVersion)
	}
	return r.docker.ClientVersion(), nil
}

// unavailable marks err with engine.ErrUnavailable if the engine could not
// be reached.
func unavailable(err error) error {
	if client.IsErrConnectionFailed(err) && !errors.Is(err, engine.ErrUnavailable) {
		return fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	}
	return err
}

// validName is what the runtime takes as a cluster, task or container
// name: each goes into Docker object names, which allow these characters.
var validName = lazyregexp.New(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// maxTaskID bounds task ids, as engine.TaskSpec says.
const maxTaskID = 32

func checkName(kind, name string) error {
	if !validName.MatchString(name) || len(name) > 64 {
		return fmt.Errorf("docker: %s name %q: want 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", kind, name)
	}
	return nil
}

func checkTaskID(id string) error {
	if !validName.MatchString(id) || len(id) > maxTaskID {
		return fmt.Errorf("docker: task id %q: want 1 to %d letters, digits, '_', '.' or '-', starting with a letter or digit", id, maxTaskID)
	}
	return nil
}

// networkName is the cluster's network.
func networkName(cluster string) string { return prefix + cluster }

// containerName is the name of a task's container on the engine.
func containerName(cluster, taskID, container string) string {
	return prefix + cluster + "-" + taskID + "-" + container
}

// lockClusters takes the cluster lock, or gives up when ctx ends.
func (r *Runtime) lockClusters(ctx context.Context) (unlock func(), err error) {
	select {
	case r.clusters <- struct{}{}:
		return func() { <-r.clusters }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// EnsureCluster makes the cluster's network if it is not there. It is
// idempotent, and concurrent calls make one network: calls in this process
// take turns, and when two processes (or an engine that accepts a name
// twice, as API 1.41 does without CheckDuplicate, which this client no
// longer sends) made two networks of the name, the oldest is kept and the
// others are removed.
func (r *Runtime) EnsureCluster(ctx context.Context, cluster string) error {
	if err := checkName("cluster", cluster); err != nil {
		return err
	}
	unlock, err := r.lockClusters(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	nets, err := r.networks(ctx, cluster)
	if err != nil {
		return err
	}
	if len(nets) == 0 {
		name := networkName(cluster)
		_, err := r.docker.NetworkCreate(ctx, name, client.NetworkCreateOptions{
			Driver: "bridge",
			Labels: map[string]string{engine.LabelCluster: cluster},
		})
		// A newer engine refuses a second network of a name (409): then
		// another process made it, which is as good.
		if err != nil && !cerrdefs.IsConflict(err) {
			return fmt.Errorf("docker: creating network %s: %w", name, unavailable(err))
		}
		r.log.Info("created cluster network", "cluster", cluster, "network", name)
		if nets, err = r.networks(ctx, cluster); err != nil {
			return err
		}
	}
	return r.keepOne(ctx, cluster, nets)
}

// networks lists the networks named after the cluster (the engine's name
// filter matches parts of names; this keeps the exact ones), oldest first.
func (r *Runtime) networks(ctx context.Context, cluster string) ([]network.Summary, error) {
	name := networkName(cluster)
	res, err := r.docker.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
	if err != nil {
		return nil, fmt.Errorf("docker: listing networks: %w", unavailable(err))
	}
	var nets []network.Summary
	for _, n := range res.Items {
		if n.Name == name {
			nets = append(nets, n)
		}
	}
	slices.SortFunc(nets, func(a, b network.Summary) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return nets, nil
}

// pick returns the cluster's network: the oldest of nets, the one every
// Runtime settles on. A network of the name that scangate did not make is
// an error, not something to take over.
func pick(cluster string, nets []network.Summary) (network.Summary, error) {
	if len(nets) == 0 {
		return network.Summary{}, fmt.Errorf("docker: cluster %s: %w (no network %s; EnsureCluster makes it)", cluster, engine.ErrNotFound, networkName(cluster))
	}
	if l := nets[0].Labels[engine.LabelCluster]; l != cluster {
		return network.Summary{}, fmt.Errorf("docker: network %s exists but is not scangate's (its label %s is %q)", nets[0].Name, engine.LabelCluster, l)
	}
	return nets[0], nil
}

// keepOne picks the cluster's network and removes the other networks of
// its name that scangate made.
func (r *Runtime) keepOne(ctx context.Context, cluster string, nets []network.Summary) error {
	keep, err := pick(cluster, nets)
	if err != nil {
		return err
	}
	for _, n := range nets[1:] {
		if n.Labels[engine.LabelCluster] != cluster {
			continue
		}
		_, err := r.docker.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
		if err != nil && !cerrdefs.IsNotFound(err) {
			r.log.Warn("removing a duplicate cluster network", "cluster", cluster, "network", n.ID, "err", err)
			continue
		}
		r.log.Info("removed a duplicate cluster network", "cluster", cluster, "network", n.ID, "kept", keep.ID)
	}
	return nil
}

// network returns the ID of the cluster's network, or engine.ErrNotFound.
// Tasks join it by ID, which stays unambiguous even while a duplicate of
// its name exists.
func (r *Runtime) network(ctx context.Context, cluster string) (string, error) {
	nets, err := r.networks(ctx, cluster)
	if err != nil {
		return "", err
	}
	n, err := pick(cluster, nets)
	return n.ID, err
}

// RemoveCluster removes the cluster's network. It refuses while
// containers of the cluster remain, running or not (a stopped container
// would be left on a network that is gone); a cluster already removed is
// not an error.
func (r *Runtime) RemoveCluster(ctx context.Context, cluster string) error {
	if err := checkName("cluster", cluster); err != nil {
		return err
	}
	unlock, err := r.lockClusters(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	left, err := r.containers(ctx, cluster, "")
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("docker: cluster %s still has %d containers (remove its tasks first)", cluster, len(left))
	}
	nets, err := r.networks(ctx, cluster)
	if err != nil {
		return err
	}
	for _, n := range nets {
		if n.Labels[engine.LabelCluster] != cluster {
			continue
		}
		if _, err := r.docker.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("docker: removing network %s: %w", n.Name, unavailable(err))
		}
		r.log.Info("removed cluster network", "cluster", cluster, "network", n.Name)
	}
	return nil
}
