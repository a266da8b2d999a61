package source

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// deliveryKeep is how long a webhook delivery's id is remembered: longer
// than a forge redelivers (GitHub keeps deliveries 3 days), and bounded.
const deliveryKeep = 7 * 24 * time.Hour

// maxDeliveryID bounds the ids kept; the forges send UUIDs.
const maxDeliveryID = 128

// claimDelivery records that the delivery id of forge was taken, and
// reports false if it was taken before. Ids older than deliveryKeep are
// deleted in the same transaction, which keeps the table small.
func (r *Repos) claimDelivery(ctx context.Context, forge Forge, id string) (bool, error) {
	now := time.Now().UTC()
	var fresh bool
	err := r.opts.Store.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE received_at < $1`,
			now.Add(-deliveryKeep).Format(time.RFC3339)); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (forge, delivery_id, received_at) VALUES ($1, $2, $3)
			ON CONFLICT (forge, delivery_id) DO NOTHING`, string(forge), id, now.Format(time.RFC3339))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		fresh = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("record %s webhook delivery %s: %w", forge, id, err)
	}
	return fresh, nil
}

// releaseDelivery forgets a delivery id whose push could not be told, so
// that the forge's redelivery of it is taken.
func (r *Repos) releaseDelivery(ctx context.Context, forge Forge, id string) {
	if _, err := r.opts.Store.Writer().ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE forge = $1 AND delivery_id = $2`, string(forge), id); err != nil {
		r.logger().Warn("source: forget a webhook delivery that failed; its redelivery will be ignored", "forge", forge, "delivery", id, "err", err)
	}
}
