-- Deployments, as Amazon ECS models them: clusters, task-definition
-- revisions, services with their deployments, tasks, the services' event
-- messages, and admins' admission overrides. Owned by package deploy.

-- +goose Up
CREATE TABLE clusters (
    name             TEXT PRIMARY KEY,
    runtime          TEXT NOT NULL,             -- docker
    host_ip          TEXT NOT NULL,             -- where task ports are published
    allow_privileged INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL
);

CREATE TABLE task_definitions (
    family          TEXT NOT NULL,
    revision        INTEGER NOT NULL,
    status          TEXT NOT NULL,              -- ACTIVE, INACTIVE
    doc             TEXT NOT NULL,              -- the definition, as ECS-shaped JSON
    registered_by   TEXT NOT NULL DEFAULT '',
    registered_at   TEXT NOT NULL,
    deregistered_at TEXT,
    PRIMARY KEY (family, revision)
);

CREATE TABLE services (
    cluster       TEXT NOT NULL REFERENCES clusters (name),
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,                -- ACTIVE, DRAINING
    family        TEXT NOT NULL,
    revision      INTEGER NOT NULL,
    desired_count INTEGER NOT NULL,
    config        TEXT NOT NULL,                -- deployment configuration, grace, load balancer (JSON)
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (cluster, name)
);

CREATE TABLE deployments (
    id             TEXT PRIMARY KEY,
    cluster        TEXT NOT NULL,
    service        TEXT NOT NULL,
    status         TEXT NOT NULL,               -- PRIMARY, ACTIVE, INACTIVE
    rollout_state  TEXT NOT NULL,               -- IN_PROGRESS, COMPLETED, FAILED
    reason         TEXT NOT NULL DEFAULT '',
    family         TEXT NOT NULL,
    revision       INTEGER NOT NULL,
    desired_count  INTEGER NOT NULL,
    failed_tasks   INTEGER NOT NULL DEFAULT 0,
    execution_id   TEXT NOT NULL DEFAULT '',    -- the pipeline execution that asked for it
    rollback_of    TEXT NOT NULL DEFAULT '',    -- the failed deployment it rolls back
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    FOREIGN KEY (cluster, service) REFERENCES services (cluster, name) ON DELETE CASCADE
);
CREATE INDEX deployments_by_service ON deployments (cluster, service, created_at);
CREATE INDEX deployments_by_execution ON deployments (execution_id);

CREATE TABLE tasks (
    id             TEXT PRIMARY KEY,
    cluster        TEXT NOT NULL,
    service        TEXT NOT NULL,
    deployment_id  TEXT NOT NULL,
    family         TEXT NOT NULL,
    revision       INTEGER NOT NULL,
    last_status    TEXT NOT NULL,               -- PROVISIONING, PENDING, RUNNING, DEPROVISIONING, STOPPED
    desired_status TEXT NOT NULL,               -- RUNNING, STOPPED
    health         TEXT NOT NULL DEFAULT 'UNKNOWN',
    containers     TEXT NOT NULL DEFAULT '[]',  -- JSON
    stop_code      TEXT NOT NULL DEFAULT '',
    stopped_reason TEXT NOT NULL DEFAULT '',
    failed         INTEGER NOT NULL DEFAULT 0,  -- counted by the deployment's circuit breaker
    log_tail       TEXT NOT NULL DEFAULT '',
    created_at     TEXT NOT NULL,
    started_at     TEXT,
    stopping_at    TEXT,
    stopped_at     TEXT
);
CREATE INDEX tasks_by_service ON tasks (cluster, service, last_status);
CREATE INDEX tasks_by_stopped ON tasks (stopped_at);

CREATE TABLE service_events (
    id         INTEGER PRIMARY KEY,
    cluster    TEXT NOT NULL,
    service    TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX service_events_by_service ON service_events (cluster, service, id);

CREATE TABLE admission_overrides (
    cluster    TEXT NOT NULL,
    service    TEXT NOT NULL,
    digest     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (cluster, service, digest)
);

-- What re-evaluation found in the images services run, past what their
-- policy allows: one row per service and digest while it is noncompliant.
CREATE TABLE service_compliance (
    cluster    TEXT NOT NULL,
    service    TEXT NOT NULL,
    digest     TEXT NOT NULL,
    failing    TEXT NOT NULL,  -- the findings over the policy (JSON)
    summary    TEXT NOT NULL,
    since      TEXT NOT NULL,
    stop_at    TEXT,           -- when its tasks stop, if the policy says so
    PRIMARY KEY (cluster, service, digest)
);

-- +goose Down
DROP TABLE service_compliance;
DROP TABLE admission_overrides;
DROP TABLE service_events;
DROP TABLE tasks;
DROP TABLE deployments;
DROP TABLE services;
DROP TABLE task_definitions;
DROP TABLE clusters;
