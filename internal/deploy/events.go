package deploy

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/scangate/scangate/internal/events"
)

// Detail types of the events deploy publishes, as ECS's EventBridge
// events name them.
const (
	DetailTypeTaskStateChange         = "Task State Change"
	DetailTypeServiceAction           = "Service Action"
	DetailTypeDeploymentStateChange   = "Deployment State Change"
	DetailTypeServiceComplianceChange = "Service Compliance Change"
)

// Event names of Service Action and Deployment State Change events.
const (
	EventSteadyState           = "SERVICE_STEADY_STATE"
	EventTaskStartImpaired     = "SERVICE_TASK_START_IMPAIRED"
	EventDeploymentInProgress  = "SERVICE_DEPLOYMENT_IN_PROGRESS"
	EventDeploymentCompleted   = "SERVICE_DEPLOYMENT_COMPLETED"
	EventDeploymentFailed      = "SERVICE_DEPLOYMENT_FAILED"
	EventDeploymentSuperseded  = "SERVICE_DEPLOYMENT_SUPERSEDED"
	EventServiceNoncompliant   = "SERVICE_NONCOMPLIANT"
	EventServiceCompliantAgain = "SERVICE_COMPLIANT"
)

// TaskStateDetail is the detail of a Task State Change event.
type TaskStateDetail struct {
	Cluster        string          `json:"clusterName"`
	Group          string          `json:"group"` // service:NAME
	TaskID         string          `json:"taskId"`
	TaskDefinition string          `json:"taskDefinition"`
	LastStatus     string          `json:"lastStatus"`
	DesiredStatus  string          `json:"desiredStatus"`
	Health         string          `json:"healthStatus"`
	StopCode       string          `json:"stopCode,omitempty"`
	StoppedReason  string          `json:"stoppedReason,omitempty"`
	Containers     []TaskContainer `json:"containers"`
}

// ServiceActionDetail is the detail of a Service Action event.
type ServiceActionDetail struct {
	Cluster   string `json:"clusterName"`
	Service   string `json:"serviceName"`
	EventType string `json:"eventType"` // INFO, WARN, ERROR
	EventName string `json:"eventName"`
	Message   string `json:"message"`
}

// DeploymentStateDetail is the detail of a Deployment State Change event.
type DeploymentStateDetail struct {
	Cluster        string `json:"clusterName"`
	Service        string `json:"serviceName"`
	DeploymentID   string `json:"deploymentId"`
	EventName      string `json:"eventName"`
	TaskDefinition string `json:"taskDefinition"`
	Reason         string `json:"reason,omitempty"`
	// ExecutionID is the pipeline execution that asked for the deployment.
	ExecutionID string `json:"executionId,omitempty"`
	// RolledBackTo is the revision a failed deployment's rollback deploys.
	RolledBackTo string `json:"rolledBackTo,omitempty"`
}

// ComplianceDetail is the detail of a Service Compliance Change event.
type ComplianceDetail struct {
	Cluster     string       `json:"clusterName"`
	Service     string       `json:"serviceName"`
	EventName   string       `json:"eventName"`
	ImageDigest string       `json:"imageDigest"`
	Image       string       `json:"image"`
	Summary     string       `json:"summary"`
	NewFindings []FindingRef `json:"newFindings"`
	Action      string       `json:"action"` // none, or when the tasks will be stopped
	Tasks       []string     `json:"tasks"`
	Policy      string       `json:"policy,omitempty"`
}

func (c *Controller) publish(ctx context.Context, tx *sql.Tx, detailType string, resources []string, detail any) error {
	e, err := events.New(events.SourceDeploy, detailType, resources, detail)
	if err != nil {
		return err
	}
	return c.bus.Publish(ctx, tx, e)
}

func serviceResource(cluster, service string) string {
	return fmt.Sprintf("service/%s/%s", cluster, service)
}

func (c *Controller) publishTask(ctx context.Context, tx *sql.Tx, t *Task) error {
	return c.publish(ctx, tx, DetailTypeTaskStateChange, []string{fmt.Sprintf("task/%s/%s", t.Cluster, t.ID)}, TaskStateDetail{
		Cluster: t.Cluster, Group: "service:" + t.Service, TaskID: t.ID, TaskDefinition: t.TaskDefinition,
		LastStatus: t.LastStatus, DesiredStatus: t.DesiredStatus, Health: t.Health, StopCode: t.StopCode,
		StoppedReason: t.StoppedReason, Containers: orEmpty(t.Containers),
	})
}

func (c *Controller) publishDeployment(ctx context.Context, tx *sql.Tx, d *Deployment, name, reason, rolledBackTo string) error {
	return c.publish(ctx, tx, DetailTypeDeploymentStateChange, []string{serviceResource(d.cluster, d.service)}, DeploymentStateDetail{
		Cluster: d.cluster, Service: d.service, DeploymentID: d.ID, EventName: name, TaskDefinition: d.TaskDefinition,
		Reason: reason, ExecutionID: d.ExecutionID, RolledBackTo: rolledBackTo,
	})
}

// serviceEvent records a service event message and publishes it as a
// Service Action.
func (c *Controller) serviceEvent(ctx context.Context, tx *sql.Tx, cluster, service, kind, name, message string) error {
	msg := fmt.Sprintf("(service %s) %s", service, message)
	if _, err := tx.ExecContext(ctx, `INSERT INTO service_events (cluster, service, message, created_at) VALUES ($1, $2, $3, $4)`,
		cluster, service, msg, formatTime(c.opts.Now())); err != nil {
		return err
	}
	// Keep the newest messages only, as ECS shows the last 100.
	if _, err := tx.ExecContext(ctx, `DELETE FROM service_events WHERE cluster = $1 AND service = $2 AND id <= (
		SELECT id FROM service_events WHERE cluster = $1 AND service = $2 ORDER BY id DESC LIMIT 1 OFFSET $3)`,
		cluster, service, maxServiceEvents); err != nil {
		return err
	}
	c.opts.Logger.Info(msg, "cluster", cluster)
	return c.publish(ctx, tx, DetailTypeServiceAction, []string{serviceResource(cluster, service)}, ServiceActionDetail{
		Cluster: cluster, Service: service, EventType: kind, EventName: name, Message: msg,
	})
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
