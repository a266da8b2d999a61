package api

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/engine"
	"github.com/scangate/scangate/internal/taskdef"
)

// maxTaskDefinition is the most bytes a task definition may have (ECS's
// limit).
const maxTaskDefinition = 64 << 10

func (s *server) routeDeploy(mux *http.ServeMux) {
	reader := func(h http.HandlerFunc) http.Handler { return s.require(auth.RoleReader, h) }
	deployer := func(h http.HandlerFunc) http.Handler { return s.require(auth.RoleDeployer, h) }
	admin := func(h http.HandlerFunc) http.Handler { return s.require(auth.RoleAdmin, h) }
	mux.Handle("GET /api/v1/clusters", reader(s.clusters))
	mux.Handle("POST /api/v1/clusters", deployer(s.createCluster))
	mux.Handle("DELETE /api/v1/clusters/{cluster}", deployer(s.deleteCluster))
	mux.Handle("GET /api/v1/task-definitions", reader(s.taskDefinitions))
	mux.Handle("POST /api/v1/task-definitions", deployer(s.registerTaskDefinition))
	mux.Handle("GET /api/v1/task-definitions/{ref}", reader(s.taskDefinition))
	mux.Handle("DELETE /api/v1/task-definitions/{ref}", deployer(s.deregisterTaskDefinition))
	mux.Handle("GET /api/v1/services", reader(s.services))
	mux.Handle("POST /api/v1/services", deployer(s.createService))
	mux.Handle("GET /api/v1/clusters/{cluster}/services/{service}", reader(s.service))
	mux.Handle("PATCH /api/v1/clusters/{cluster}/services/{service}", deployer(s.updateService))
	mux.Handle("DELETE /api/v1/clusters/{cluster}/services/{service}", deployer(s.deleteService))
	mux.Handle("GET /api/v1/clusters/{cluster}/services/{service}/overrides", reader(s.overrides))
	mux.Handle("POST /api/v1/clusters/{cluster}/services/{service}/overrides", admin(s.putOverride))
	mux.Handle("GET /api/v1/deployments/{id}", reader(s.deployment))
	mux.Handle("GET /api/v1/tasks", reader(s.tasks))
	mux.Handle("GET /api/v1/tasks/{id}", reader(s.task))
	mux.Handle("POST /api/v1/tasks/{id}/stop", deployer(s.stopTask))
	mux.Handle("GET /api/v1/tasks/{id}/logs", reader(s.taskLogs))
}

// deployStatus maps the controller's errors to HTTP statuses.
func deployStatus(err error) int {
	switch {
	case errors.Is(err, deploy.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, deploy.ErrExists):
		return http.StatusConflict
	case errors.Is(err, deploy.ErrRefused):
		return http.StatusForbidden
	case errors.Is(err, deploy.ErrInvalid):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// audit logs a change and who made it.
func (s *server) audit(r *http.Request, action string, args ...any) {
	s.Logger.Info("audit: "+action, append([]any{"token", tokenName(r)}, args...)...)
}

func (s *server) clusters(w http.ResponseWriter, r *http.Request) {
	list, err := s.Deploy.Clusters(r.Context())
	if err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"clusters": orEmpty(list)})
}

func (s *server) createCluster(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name            string `json:"clusterName"`
		Runtime         string `json:"runtime"`
		HostIP          string `json:"hostIp"`
		AllowPrivileged bool   `json:"allowPrivileged"`
	}
	if err := decode(r.Body, &in); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	cl, err := s.Deploy.CreateCluster(r.Context(), deploy.Cluster{Name: in.Name, Runtime: in.Runtime, HostIP: in.HostIP, AllowPrivileged: in.AllowPrivileged})
	if err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	s.audit(r, "cluster created", "cluster", cl.Name)
	writeJSON(w, http.StatusCreated, cl)
}

func (s *server) deleteCluster(w http.ResponseWriter, r *http.Request) {
	if err := s.Deploy.DeleteCluster(r.Context(), r.PathValue("cluster")); err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	s.audit(r, "cluster deleted", "cluster", r.PathValue("cluster"))
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) taskDefinitions(w http.ResponseWriter, r *http.Request) {
	list, err := s.Deploy.TaskDefinitions(r.Context(), r.URL.Query().Get("family"))
	if err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"taskDefinitions": orEmpty(list)})
}

// registerTaskDefinition takes a task definition in ECS's JSON or in YAML.
func (s *server) registerTaskDefinition(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxTaskDefinition+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if len(data) > maxTaskDefinition {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("a task definition has at most %d bytes", maxTaskDefinition))
		return
	}
	def, err := taskdef.Parse(data)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if !s.taskDefinitionGranted(w, r, def) {
		return
	}
	td, err := s.Deploy.RegisterTaskDefinition(r.Context(), def, "token "+tokenName(r))
	if err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	s.audit(r, "task definition registered", "taskDefinition", td.Ref())
	writeJSON(w, http.StatusCreated, map[string]any{"taskDefinition": td, "ignored": orEmpty(def.Ignored)})
}

func (s *server) taskDefinition(w http.ResponseWriter, r *http.Request) {
	td, err := s.Deploy.TaskDefinition(r.Context(), r.PathValue("ref"))
	if err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, td)
}

func (s *server) deregisterTaskDefinition(w http.ResponseWriter, r *http.Request) {
	td, err := s.Deploy.DeregisterTaskDefinition(r.Context(), r.PathValue("ref"))
	if err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	s.audit(r, "task definition deregistered", "taskDefinition", td.Ref())
	writeJSON(w, http.StatusOK, td)
}

func (s *server) services(w http.ResponseWriter, r *http.Request) {
	list, err := s.Deploy.Services(r.Context(), r.URL.Query().Get("cluster"))
	if err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"services": orEmpty(list)})
}

func (s *server) createService(w http.ResponseWriter, r *http.Request) {
	var in deploy.ServiceInput
	if err := decode(r.Body, &in); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	in.By = "token " + tokenName(r)
	svc, err := s.Deploy.CreateService(r.Context(), in)
	if err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	s.audit(r, "service created", "cluster", svc.Cluster, "service", svc.Name, "taskDefinition", svc.TaskDefinition, "desiredCount", svc.DesiredCount)
	writeJSON(w, http.StatusCreated, svc)
}

func (s *server) service(w http.ResponseWriter, r *http.Request) {
	svc, err := s.Deploy.DescribeService(r.Context(), r.PathValue("cluster"), r.PathValue("service"))
	if err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, svc)
}

func (s *server) updateService(w http.ResponseWriter, r *http.Request) {
	var u deploy.ServiceUpdate
	if err := decode(r.Body, &u); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	u.By = "token " + tokenName(r)
	svc, err := s.Deploy.UpdateService(r.Context(), r.PathValue("cluster"), r.PathValue("service"), u)
	if err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	s.audit(r, "service updated", "cluster", svc.Cluster, "service", svc.Name, "taskDefinition", svc.TaskDefinition, "desiredCount", svc.DesiredCount)
	writeJSON(w, http.StatusOK, svc)
}

func (s *server) deleteService(w http.ResponseWriter, r *http.Request) {
	if err := s.Deploy.DeleteService(r.Context(), r.PathValue("cluster"), r.PathValue("service")); err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	s.audit(r, "service deleted", "cluster", r.PathValue("cluster"), "service", r.PathValue("service"))
	w.WriteHeader(http.StatusAccepted)
}

func (s *server) overrides(w http.ResponseWriter, r *http.Request) {
	list, err := s.Deploy.Overrides(r.Context(), r.PathValue("cluster"), r.PathValue("service"))
	if err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"overrides": orEmpty(list)})
}

func (s *server) putOverride(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Digest    string    `json:"imageDigest"`
		Reason    string    `json:"reason"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	if err := decode(r.Body, &in); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	o, err := s.Deploy.PutOverride(r.Context(), deploy.Override{Cluster: r.PathValue("cluster"), Service: r.PathValue("service"),
		Digest: in.Digest, Reason: in.Reason, ExpiresAt: in.ExpiresAt, CreatedBy: "token " + tokenName(r)})
	if err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	s.audit(r, "admission override", "cluster", o.Cluster, "service", o.Service, "digest", o.Digest, "expires", o.ExpiresAt, "reason", o.Reason)
	writeJSON(w, http.StatusCreated, o)
}

func (s *server) deployment(w http.ResponseWriter, r *http.Request) {
	d, err := s.Deploy.Deployment(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *server) tasks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	list, err := s.Deploy.Tasks(r.Context(), deploy.TaskFilter{Cluster: q.Get("cluster"), Service: q.Get("service"),
		Status: q.Get("status"), Digest: q.Get("digest")})
	if err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": orEmpty(list)})
}

func (s *server) task(w http.ResponseWriter, r *http.Request) {
	t, err := s.Deploy.Task(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *server) stopTask(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := decode(r.Body, &in); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
	}
	t, err := s.Deploy.StopTask(r.Context(), r.PathValue("id"), in.Reason)
	if err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	s.audit(r, "task stopped", "task", t.ID, "reason", in.Reason)
	writeJSON(w, http.StatusOK, t)
}

// taskLogs streams a task container's output as text; follow=true keeps
// the response open while the container runs.
func (s *server) taskLogs(w http.ResponseWriter, r *http.Request) {
	tail, err := intParam(r, "tail", 0)
	if err != nil || tail > 100000 {
		writeError(w, http.StatusBadRequest, errors.New("tail: want a number of lines up to 100000"))
		return
	}
	follow, err := strconv.ParseBool(cmp.Or(r.URL.Query().Get("follow"), "false"))
	if err != nil {
		writeError(w, http.StatusBadRequest, errors.New("follow: want true or false"))
		return
	}
	t, err := s.Deploy.Task(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, deployStatus(err), err)
		return
	}
	// The answer's status is sent before the output: a container the task
	// does not have must be refused now, or it reads as an empty log.
	if name := r.URL.Query().Get("container"); name != "" && !slices.ContainsFunc(t.Containers, func(c deploy.TaskContainer) bool { return c.Name == name }) {
		names := make([]string, len(t.Containers))
		for i, c := range t.Containers {
			names[i] = c.Name
		}
		writeError(w, http.StatusNotFound, fmt.Errorf("task %s has no container %q; its containers: %s", t.ID, name, strings.Join(names, ", ")))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	out := io.Writer(w)
	if f, ok := w.(http.Flusher); ok && follow {
		out = flushWriter{w, f}
	}
	if err := s.Deploy.Logs(r.Context(), r.PathValue("id"), r.URL.Query().Get("container"),
		engine.LogOptions{Tail: int(tail), Follow: follow}, out); err != nil && r.Context().Err() == nil {
		s.Logger.Warn("task logs", "task", r.PathValue("id"), "err", err)
	}
}

type flushWriter struct {
	w io.Writer
	f http.Flusher
}

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	f.f.Flush()
	return n, err
}
