package store

import (
	"database/sql"

	"github.com/pressly/goose/v3"
)

// Provider is goose over dialect d's migrations, for the schema test.
func Provider(d Dialect, db *sql.DB) (*goose.Provider, error) { return provider(d, db) }
