-- The server's state: access tokens, the images pushed to the registry and
-- their scans, the event log, rules and the dead-letter list. River's own
-- tables are migrated by River (internal/jobs).

-- +goose Up
CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,   -- reader, pusher, admin
    hash         TEXT NOT NULL UNIQUE, -- hex SHA-256 of the secret
    created_at   TEXT NOT NULL,
    last_used_at TEXT
);

-- One row per manifest in the registry that scangate has seen pushed.
CREATE TABLE images (
    repository     TEXT NOT NULL,
    digest         TEXT NOT NULL,
    media_type     TEXT NOT NULL,
    pushed_at      TEXT NOT NULL,
    last_pulled_at TEXT,
    PRIMARY KEY (repository, digest)
);

-- The latest scan of each image; the inventory is in scan_inventories
-- under the digest.
CREATE TABLE scans (
    repository       TEXT NOT NULL,
    digest           TEXT NOT NULL,
    status           TEXT NOT NULL, -- COMPLETE or FAILED
    error            TEXT NOT NULL DEFAULT '',
    summary          TEXT NOT NULL DEFAULT '{}', -- counts per severity, JSON
    fixable          TEXT NOT NULL DEFAULT '{}',
    vulndb_built     TEXT NOT NULL DEFAULT '',
    vulndb_digest    TEXT NOT NULL DEFAULT '',
    report           TEXT NOT NULL DEFAULT '', -- the JSON report, findings included
    first_scanned_at TEXT NOT NULL,
    scanned_at       TEXT NOT NULL,
    PRIMARY KEY (repository, digest)
);

CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    time        TEXT NOT NULL,
    source      TEXT NOT NULL,
    detail_type TEXT NOT NULL,
    doc         TEXT NOT NULL
);

CREATE TABLE rules (
    name       TEXT PRIMARY KEY,
    pattern    TEXT NOT NULL,
    targets    TEXT NOT NULL, -- JSON list of targets
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Deliveries that failed for good, kept to be replayed.
CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL,
    rule        TEXT NOT NULL,
    target      TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    error       TEXT NOT NULL,
    failed_at   TEXT NOT NULL,
    replayed_at TEXT
);

-- +goose Down
DROP TABLE dead_letters;
DROP TABLE rules;
DROP TABLE events;
DROP TABLE scans;
DROP TABLE images;
DROP TABLE tokens;
