-- Pipelines: versioned definitions, executions with their stages, and the
-- approval requests of approval stages.

-- +goose Up
CREATE TABLE pipelines (
    name       TEXT PRIMARY KEY,
    version    INTEGER NOT NULL, -- the latest
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE pipeline_versions (
    name       TEXT NOT NULL REFERENCES pipelines (name) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    doc        TEXT NOT NULL, -- the definition, as JSON
    created_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE executions (
    id           TEXT PRIMARY KEY,
    pipeline     TEXT NOT NULL,
    version      INTEGER NOT NULL,
    status       TEXT NOT NULL,  -- InProgress, Succeeded, Failed, Stopped, Superseded
    trigger      TEXT NOT NULL,  -- what started it: push, poll, webhook, manual
    commit_sha   TEXT NOT NULL,
    ref          TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT '',
    image_digest TEXT NOT NULL DEFAULT '',
    image_uri    TEXT NOT NULL DEFAULT '',
    artifact     TEXT NOT NULL DEFAULT '', -- imagedefinitions.json
    build_log    TEXT NOT NULL DEFAULT '',
    started_at   TEXT NOT NULL,
    ended_at     TEXT
);
CREATE INDEX executions_by_pipeline ON executions (pipeline, started_at);
CREATE INDEX executions_by_commit ON executions (pipeline, commit_sha);

CREATE TABLE stages (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    name         TEXT NOT NULL, -- Source, Build, Approval, Deploy
    position     INTEGER NOT NULL,
    status       TEXT NOT NULL, -- Pending, InProgress, Succeeded, Failed, Stopped, Superseded, Skipped
    message      TEXT NOT NULL DEFAULT '',
    started_at   TEXT,
    ended_at     TEXT,
    PRIMARY KEY (execution_id, name)
);

CREATE TABLE approvals (
    id           TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    pipeline     TEXT NOT NULL,
    stage        TEXT NOT NULL,
    action       TEXT NOT NULL,
    token_hash   TEXT NOT NULL,
    repository   TEXT NOT NULL,
    image_digest TEXT NOT NULL,
    status       TEXT NOT NULL, -- Pending, Approved, Rejected, Expired, Superseded, Stopped
    summary      TEXT NOT NULL DEFAULT '',
    reasons      TEXT NOT NULL DEFAULT '[]',
    decided_by   TEXT NOT NULL DEFAULT '',
    comment      TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    decided_at   TEXT
);
CREATE INDEX approvals_by_image ON approvals (image_digest, status);

-- +goose Down
DROP TABLE approvals;
DROP TABLE stages;
DROP TABLE executions;
DROP TABLE pipeline_versions;
DROP TABLE pipelines;
