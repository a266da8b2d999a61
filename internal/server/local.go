package server

import (
	"context"
	"database/sql"

	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/scanner"
	"github.com/scangate/scangate/internal/store"
)

// Reevaluation is the wiring of the local commands that change the
// vulnerability database in a server's data folder (db import and db
// update on the server's machine or an air-gapped one): the hook that
// queues, in the transaction that changes the database, a re-evaluation
// of the images the server keeps. The server runs it when it is up, or
// when it next starts. It lives here, beside assemble, so that the jobs
// and their kinds are wired in one place; its client only inserts.
func Reevaluation(ctx context.Context, st *store.Store) (func(context.Context, *sql.Tx) error, error) {
	if err := jobs.Migrate(ctx, st); err != nil {
		return nil, err
	}
	client, err := jobs.New(st, nil, jobs.Config{})
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, tx *sql.Tx) error { return scanner.QueueReevaluation(ctx, tx, client) }, nil
}
