-- Image inventories, kept by image so that a newer vulnerability database
-- can be matched against them again without pulling the image.

-- +goose Up
CREATE TABLE scan_inventories (
    image_id   TEXT PRIMARY KEY, -- the manifest digest, else the config digest
    ref        TEXT NOT NULL,
    doc        TEXT NOT NULL,    -- the report without findings, as JSON
    scanned_at TEXT NOT NULL
);

-- +goose Down
DROP TABLE scan_inventories;
