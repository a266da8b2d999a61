-- The findings an approval saw, so that the deploy stage can tell which
-- findings are new since (owned by package pipeline).

-- +goose Up
ALTER TABLE approvals ADD COLUMN findings TEXT NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE approvals DROP COLUMN findings;
