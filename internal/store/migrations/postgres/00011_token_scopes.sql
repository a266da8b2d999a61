-- Per-repository grants of access tokens (package auth owns the table): the
-- patterns of the repositories a token may reach, as a JSON array; '[]'
-- grants every repository, so tokens made before keep working.

-- +goose Up
ALTER TABLE tokens ADD COLUMN repositories TEXT NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE tokens DROP COLUMN repositories;
