-- Which advisories each image's latest scan found, by id and alias, so
-- that an advisory's page finds its images by an index instead of reading
-- every stored report (package scanner owns the table, with scans).

-- +goose Up
CREATE TABLE scan_advisories (
    repository TEXT NOT NULL,
    digest     TEXT NOT NULL,
    advisory   TEXT NOT NULL, -- a finding's id or one of its aliases
    PRIMARY KEY (advisory, repository, digest)
) WITHOUT ROWID;
CREATE INDEX scan_advisories_image ON scan_advisories (repository, digest);
INSERT OR IGNORE INTO scan_advisories (repository, digest, advisory)
    SELECT s.repository, s.digest, f.value ->> '$.id'
    FROM scans s, json_each(s.report, '$.findings') f
    WHERE s.status = 'COMPLETE' AND json_valid(s.report) AND f.value ->> '$.id' IS NOT NULL;
INSERT OR IGNORE INTO scan_advisories (repository, digest, advisory)
    SELECT s.repository, s.digest, a.value
    FROM scans s, json_each(s.report, '$.findings') f, json_each(f.value, '$.aliases') a
    WHERE s.status = 'COMPLETE' AND json_valid(s.report);

-- +goose Down
DROP TABLE scan_advisories;
