package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/engine"
)

type clusterRow struct {
	*deploy.Cluster
	Services []*deploy.Service
}

func (c *Console) clustersPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	cls, err := c.Deploy.Clusters(ctx)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	var rows []clusterRow
	for _, cl := range cls {
		svcs, err := c.Deploy.Services(ctx, cl.Name)
		if err != nil {
			c.fail(w, r, s, statusOf(err), err)
			return
		}
		rows = append(rows, clusterRow{Cluster: cl, Services: svcs})
	}
	c.render(w, r, s, http.StatusOK, "clusters", &view{Title: "Clusters", Nav: "clusters", Data: rows})
}

type serviceData struct {
	Svc     *deploy.Service
	Tasks   []*deploy.Task
	Stopped []*deploy.Task
	// Revision is the service's task definition revision, whose containers
	// name the digests that run.
	Revision *deploy.TaskDefinition
}

func (c *Console) servicePage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	cluster, name := r.PathValue("cluster"), r.PathValue("service")
	svc, err := c.Deploy.DescribeService(ctx, cluster, name)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	data := serviceData{Svc: svc}
	if data.Tasks, err = c.Deploy.Tasks(ctx, deploy.TaskFilter{Cluster: cluster, Service: name}); err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	if data.Stopped, err = c.Deploy.Tasks(ctx, deploy.TaskFilter{Cluster: cluster, Service: name, Status: deploy.TaskStopped}); err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	if len(data.Stopped) > 20 {
		data.Stopped = data.Stopped[:20]
	}
	if data.Revision, err = c.Deploy.TaskDefinition(ctx, svc.TaskDefinition); err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	c.render(w, r, s, http.StatusOK, "service", &view{Title: "Service " + name, Nav: "clusters", Data: data})
}

// maxDesired bounds the desired count a form may set.
const maxDesired = 1000

func (c *Console) setDesiredCount(w http.ResponseWriter, r *http.Request, s *session) {
	cluster, name := r.PathValue("cluster"), r.PathValue("service")
	n, err := strconv.Atoi(strings.TrimSpace(r.PostForm.Get("desiredCount")))
	if err != nil || n < 0 || n > maxDesired {
		c.fail(w, r, s, http.StatusBadRequest, badInput("desired count %q: want a number from 0 to %d", r.PostForm.Get("desiredCount"), maxDesired))
		return
	}
	if _, err := c.Deploy.UpdateService(r.Context(), cluster, name, deploy.ServiceUpdate{DesiredCount: &n, By: "token " + s.TokenName}); err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	c.audit(r, s, "service updated", "cluster", cluster, "service", name, "desiredCount", n)
	c.redirect(w, r, s, "/clusters/"+url.PathEscape(cluster)+"/services/"+url.PathEscape(name), fmt.Sprintf("Desired count set to %d.", n), "")
}

type taskData struct {
	Task *deploy.Task
	Logs string
}

// maxTaskLog is the most of a task's log a page shows.
const maxTaskLog = 200

func (c *Console) taskPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	t, err := c.Deploy.Task(ctx, r.PathValue("id"))
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	data := taskData{Task: t}
	var buf bytes.Buffer
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Deploy.Logs(lctx, t.ID, "", engine.LogOptions{Tail: maxTaskLog}, &limited{w: &buf, n: 256 << 10}); err != nil && !errors.Is(err, errFull) {
		data.Logs = "(the logs cannot be read: " + err.Error() + ")"
	} else {
		data.Logs = buf.String()
	}
	c.render(w, r, s, http.StatusOK, "task", &view{Title: "Task " + short(t.ID), Nav: "clusters", Data: data})
}

var errFull = errors.New("enough")

// limited stops a log at n bytes.
type limited struct {
	w *bytes.Buffer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if l.w.Len()+len(p) > l.n {
		l.w.Write(p[:max(0, l.n-l.w.Len())])
		return 0, errFull
	}
	return l.w.Write(p)
}

type taskDefData struct {
	Def       *deploy.TaskDefinition
	Revisions []*deploy.TaskDefinition
}

func (c *Console) taskDefinitionPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	td, err := c.Deploy.TaskDefinition(ctx, r.PathValue("ref"))
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	revs, err := c.Deploy.TaskDefinitions(ctx, td.Family)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	c.render(w, r, s, http.StatusOK, "taskdef", &view{Title: "Task definition " + td.Ref(), Nav: "clusters", Data: taskDefData{Def: td, Revisions: revs}})
}
