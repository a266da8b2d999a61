-- Stacks: what each `scangate up` made, so that `scangate down` removes
-- that and nothing else (package stack owns the table).

-- +goose Up
CREATE TABLE stacks (
    name       TEXT PRIMARY KEY,
    doc        TEXT NOT NULL, -- the record, as JSON
    updated_at TEXT NOT NULL
);

-- +goose Down
DROP TABLE stacks;
