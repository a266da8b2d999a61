package deploy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Request is a pipeline's deploy stage: the approved image goes to one
// container of a service, as CodePipeline's ECS deploy action reads
// imagedefinitions.json.
type Request struct {
	ExecutionID string
	Cluster     string
	Service     string
	Container   string
	Image       string // REGISTRY/REPOSITORY@sha256:…
	By          string // who asks, for the revision's registeredBy
}

// Deploy registers a new revision of the service's task definition with
// the container's image replaced (every other field kept) and updates the
// service to it, in tx. A request is done once per execution: asked again
// (a retried job), it returns the deployment made the first time.
func (c *Controller) Deploy(ctx context.Context, tx *sql.Tx, r Request) (*Deployment, error) {
	if r.ExecutionID != "" {
		var id string
		err := tx.QueryRowContext(ctx, `SELECT id FROM deployments WHERE execution_id = $1`, r.ExecutionID).Scan(&id)
		if err == nil {
			return loadDeployment(ctx, tx, id)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
	}
	s, err := loadService(ctx, tx, r.Cluster, r.Service)
	if err != nil {
		return nil, err
	}
	cur, err := loadTaskDef(ctx, tx, s.family, s.revision)
	if err != nil {
		return nil, err
	}
	image, err := c.pin(ctx, r.Image)
	if err != nil {
		return nil, err
	}
	def, err := cur.Definition.WithImage(r.Container, image)
	if err != nil {
		return nil, fmt.Errorf("%w: service %s runs %s: %v", ErrInvalid, r.Service, cur.Ref(), err)
	}
	td, err := c.register(ctx, tx, def, r.By)
	if err != nil {
		return nil, err
	}
	ref := td.Ref()
	return c.updateService(ctx, tx, r.Cluster, r.Service, ServiceUpdate{TaskDefinition: &ref}, r.ExecutionID)
}

// Deployment returns a deployment by id, its tasks counted as a service's
// description counts them (the stored row has no counts).
func (c *Controller) Deployment(ctx context.Context, id string) (*Deployment, error) {
	d, err := loadDeployment(ctx, c.st.Reader(), id)
	if err != nil {
		return nil, err
	}
	tasks, err := liveTasks(ctx, c.st.Reader(), d.cluster, d.service)
	if err != nil {
		return nil, err
	}
	d.count(tasks)
	return d, nil
}
