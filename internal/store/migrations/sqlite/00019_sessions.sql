-- The console's sessions (package auth owns the table), in the database
-- so that every replica behind a load balancer knows a login made on
-- another, and a restart logs no one out. The cookie's value is never
-- stored, only its SHA-256: a reader of the database cannot take over a
-- session. A session names its token, which is looked up again at every
-- request, so that revoking or expiring the token ends it. Plain SQL that
-- both databases run as it is.

-- +goose Up
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY, -- hex SHA-256 of the cookie's value
    token_id   TEXT NOT NULL,    -- tokens.id (no foreign key: a revoked token's sessions end when next read)
    csrf       TEXT NOT NULL,    -- the forms' CSRF token
    expires_at TEXT NOT NULL     -- fixed-width UTC (sorts as text)
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- +goose Down
DROP TABLE sessions;
