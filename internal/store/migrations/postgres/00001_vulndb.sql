-- The vulnerability database. Advisories are kept whole as JSON documents;
-- vuln_affected has one row per (ecosystem, package) an advisory names, so a
-- scan reads only rows that can match. Times are RFC 3339 text in UTC.

-- +goose Up
CREATE TABLE vuln_feeds (
    name       TEXT PRIMARY KEY,
    format     TEXT NOT NULL,
    source     TEXT NOT NULL,
    records    BIGINT NOT NULL,
    skipped    BIGINT NOT NULL,
    digest     TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE vuln_advisories (
    feed      TEXT NOT NULL,
    id        TEXT NOT NULL,
    modified  TEXT NOT NULL,
    withdrawn BIGINT NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (feed, id)
);

CREATE TABLE vuln_aliases (
    alias TEXT NOT NULL,
    feed  TEXT NOT NULL,
    id    TEXT NOT NULL
);
CREATE INDEX vuln_aliases_alias ON vuln_aliases (alias);
CREATE INDEX vuln_aliases_feed ON vuln_aliases (feed);

CREATE TABLE vuln_affected (
    ecosystem TEXT NOT NULL,
    package   TEXT NOT NULL,
    feed      TEXT NOT NULL,
    id        TEXT NOT NULL,
    doc       TEXT NOT NULL
);
CREATE INDEX vuln_affected_package ON vuln_affected (ecosystem, package);
CREATE INDEX vuln_affected_feed ON vuln_affected (feed);

-- HTTP validators of downloaded feeds, for conditional requests.
CREATE TABLE vuln_downloads (
    url           TEXT PRIMARY KEY,
    etag          TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    checked_at    TEXT NOT NULL
);

CREATE TABLE vuln_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- +goose Down
DROP TABLE vuln_meta;
DROP TABLE vuln_downloads;
DROP TABLE vuln_affected;
DROP TABLE vuln_aliases;
DROP TABLE vuln_advisories;
DROP TABLE vuln_feeds;
