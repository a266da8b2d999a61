-- Leases: named locks held by one server process at a time, each with an
-- expiry its holder renews while it holds it, so that several servers on
-- one database run a singleton (the deploy controller, the pollers,
-- retention) once, and serialize pushes to one git repository. Owned by
-- package lease. Plain SQL that PostgreSQL runs as it is.

-- +goose Up
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,   -- the process: host, pid and a random part
    acquired_at TEXT NOT NULL,   -- when this holder took it (fixed-width UTC, sorts as text)
    expires_at  TEXT NOT NULL    -- free for another holder after this
);
CREATE INDEX leases_by_holder ON leases (holder);

-- +goose Down
DROP TABLE leases;
