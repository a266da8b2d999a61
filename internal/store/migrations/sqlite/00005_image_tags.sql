-- The tags of the registry's images as they are now: a tag moves to the
-- manifest pushed under it last, and goes when it is deleted.

-- +goose Up
CREATE TABLE image_tags (
    repository TEXT NOT NULL,
    tag        TEXT NOT NULL,
    digest     TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (repository, tag)
);
CREATE INDEX image_tags_by_digest ON image_tags (repository, digest);

-- +goose Down
DROP TABLE image_tags;
