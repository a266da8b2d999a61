-- Which advisories each image's latest scan found, by id and alias, so
-- that an advisory's page finds its images by an index instead of reading
-- every stored report (package scanner owns the table, with scans).
--
-- PostgreSQL: every migration runs on an empty database (there was no
-- PostgreSQL store before this one), so SQLite's backfill from stored
-- reports has nothing to read here.

-- +goose Up
CREATE TABLE scan_advisories (
    repository TEXT NOT NULL,
    digest     TEXT NOT NULL,
    advisory   TEXT NOT NULL, -- a finding's id or one of its aliases
    PRIMARY KEY (advisory, repository, digest)
);
CREATE INDEX scan_advisories_image ON scan_advisories (repository, digest);

-- +goose Down
DROP TABLE scan_advisories;
