package server

import (
	"context"
	"fmt"

	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/secret"
	"github.com/scangate/scangate/internal/store"
)

// resealers are the packages that keep secrets in the database, for
// sealSecrets and `scangate key rotate`.
var resealers = []secret.Resealer{events.Reseal, pipeline.Reseal}

// Resealers returns them.
func Resealers() []secret.Resealer { return append([]secret.Resealer(nil), resealers...) }

// sealSecrets seals, before anything runs, the secrets an older scangate
// stored in the clear, and those a `key rotate` that stopped half way
// left under an old key.
func sealSecrets(ctx context.Context, cfg Config, st *store.Store) error {
	keys, err := secret.OpenIn(cfg.DataDir)
	if err != nil {
		return err
	}
	n, err := keys.ResealAll(ctx, st, resealers...)
	if err != nil {
		return err
	}
	if n > 0 {
		cfg.Logger.Info("secrets sealed under the current key", "rows", n)
	}
	return nil
}

// newEgress is the guard of webhooks and external sources. An allow-list
// is logged at each start, so that a hole in the SSRF fence is never a
// surprise.
func newEgress(cfg Config) *egress.Guard {
	if len(cfg.AllowPrivateTargets) > 0 {
		cfg.Logger.Warn("webhooks and external git sources may reach these private or special-purpose addresses",
			"allow-private-targets", fmt.Sprint(cfg.AllowPrivateTargets))
	}
	return egress.New(cfg.AllowPrivateTargets)
}
