-- An optional expiry of access tokens (package auth owns the table):
-- a token past it is refused as an unknown one is.

-- +goose Up
ALTER TABLE tokens ADD COLUMN expires_at TEXT;

-- +goose Down
ALTER TABLE tokens DROP COLUMN expires_at;
