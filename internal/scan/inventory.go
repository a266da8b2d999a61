package scan

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/scangate/scangate/internal/store"
)

// ImageID is the key an image's inventory is kept under: its manifest
// digest where it has one, else its config digest (the image ID).
func (i ImageInfo) ImageID() string {
	if i.Digest != "" {
		return i.Digest
	}
	return i.ConfigDigest
}

// SaveInventory keeps r's image, OS and packages, so that Match can run
// again against a newer database without the image. ex is the store's
// writer or a transaction of it.
func SaveInventory(ctx context.Context, ex store.Execer, r *Report) error {
	inv := *r
	inv.Findings, inv.Summary, inv.Fixable = nil, Counts{}, Counts{}
	doc, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	_, err = ex.ExecContext(ctx, `INSERT INTO scan_inventories (image_id, ref, doc, scanned_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (image_id) DO UPDATE SET ref = excluded.ref, doc = excluded.doc, scanned_at = excluded.scanned_at`,
		r.Image.ImageID(), r.Image.Ref, string(doc), r.CreatedAt.UTC().Format(time.RFC3339))
	if err != nil {
		return fmt.Errorf("save inventory of %s: %w", r.Image.Ref, err)
	}
	return nil
}

// DeleteInventory forgets the stored inventory of an image, by ImageID;
// the caller knows that no image it keeps still uses it.
func DeleteInventory(ctx context.Context, ex store.Execer, imageID string) error {
	if _, err := ex.ExecContext(ctx, `DELETE FROM scan_inventories WHERE image_id = $1`, imageID); err != nil {
		return fmt.Errorf("delete inventory %s: %w", imageID, err)
	}
	return nil
}

// ErrNoInventory reports an image never scanned.
var ErrNoInventory = errors.New("no stored inventory")

// LoadInventory returns the stored inventory of an image, by ImageID.
func LoadInventory(ctx context.Context, st *store.Store, imageID string) (*Report, error) {
	var doc string
	err := st.Reader().QueryRowContext(ctx, "SELECT doc FROM scan_inventories WHERE image_id = $1", imageID).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", imageID, ErrNoInventory)
	}
	if err != nil {
		return nil, fmt.Errorf("load inventory %s: %w", imageID, err)
	}
	var r Report
	if err := json.Unmarshal([]byte(doc), &r); err != nil {
		return nil, fmt.Errorf("stored inventory %s: %w", imageID, err)
	}
	return &r, nil
}
