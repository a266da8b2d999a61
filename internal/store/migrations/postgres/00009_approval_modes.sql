-- Approval modes, the policy's verdict beside a person's decision,
-- overrides of a policy's rejection, and who started an execution (for
-- the two-person rule); owned by package pipeline.

-- +goose Up
ALTER TABLE executions ADD COLUMN started_by TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN mode TEXT NOT NULL DEFAULT 'policy';
ALTER TABLE approvals ADD COLUMN verdict TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN verdict_summary TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN verdict_reasons TEXT NOT NULL DEFAULT '[]';
ALTER TABLE approvals ADD COLUMN overridden BIGINT NOT NULL DEFAULT 0;
ALTER TABLE approvals ADD COLUMN override_expires TEXT;
ALTER TABLE approvals ADD COLUMN accepted TEXT NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE approvals DROP COLUMN accepted;
ALTER TABLE approvals DROP COLUMN override_expires;
ALTER TABLE approvals DROP COLUMN overridden;
ALTER TABLE approvals DROP COLUMN verdict_reasons;
ALTER TABLE approvals DROP COLUMN verdict_summary;
ALTER TABLE approvals DROP COLUMN verdict;
ALTER TABLE approvals DROP COLUMN mode;
ALTER TABLE executions DROP COLUMN started_by;
