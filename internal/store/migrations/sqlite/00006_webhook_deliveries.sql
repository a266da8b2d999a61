-- The push webhooks scangate took, by the id their forge gives each
-- delivery (GitHub's X-GitHub-Delivery, GitLab's X-Gitlab-Event-UUID,
-- Gitea's X-Gitea-Delivery), so that a delivery sent again is ignored.
-- Package source owns the table and deletes rows older than 7 days: a
-- forge redelivers within days (GitHub: 3), and a push older than that is
-- refused anyway for naming a commit that ran or is no longer the head.

-- +goose Up
CREATE TABLE webhook_deliveries (
    forge       TEXT NOT NULL, -- github, gitlab, gitea
    delivery_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (forge, delivery_id)
);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (received_at);

-- +goose Down
DROP TABLE webhook_deliveries;
