package stack

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/scangate/scangate/internal/store"
)

// MaxRecordSize bounds a stored record: a full stack's entries are far
// smaller.
const MaxRecordSize = 1 << 20

// ErrNoStack reports a stack with no record.
var ErrNoStack = errors.New("no such stack")

// CheckRecord checks a record a client sends: its name, and entries of
// known kinds, each once.
func CheckRecord(rec *Record) error {
	if !nameRE.MatchString(rec.Name) {
		return fmt.Errorf("%w: stack name %q: lower-case letters, digits, '.', '_', '-', up to 63", ErrInvalid, rec.Name)
	}
	if len(rec.Resources) > MaxResources*len(Kinds) {
		return fmt.Errorf("%w: stack %s: %d resources, at most %d", ErrInvalid, rec.Name, len(rec.Resources), MaxResources*len(Kinds))
	}
	seen := map[string]bool{}
	for _, e := range rec.Resources {
		if e.Kind.order() == len(Kinds) {
			return fmt.Errorf("%w: stack %s: unknown resource kind %q", ErrInvalid, rec.Name, e.Kind)
		}
		if e.Name == "" || seen[e.Key()] {
			return fmt.Errorf("%w: stack %s: %s %q: empty or given twice", ErrInvalid, rec.Name, e.Kind, e.Name)
		}
		seen[e.Key()] = true
	}
	return nil
}

// Records are the server's stack records, in the table stacks, which this
// package owns.
type Records struct{ st *store.Store }

// NewRecords returns st's stack records.
func NewRecords(st *store.Store) *Records { return &Records{st: st} }

// Load returns the record of the stack name.
func (r *Records) Load(ctx context.Context, name string) (*Record, error) {
	st := r.st
	var doc string
	err := st.Reader().QueryRowContext(ctx, `SELECT doc FROM stacks WHERE name = $1`, name).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("stack %s: %w", name, ErrNoStack)
	}
	if err != nil {
		return nil, fmt.Errorf("stack %s: %w", name, err)
	}
	var rec Record
	if err := json.Unmarshal([]byte(doc), &rec); err != nil {
		return nil, fmt.Errorf("stack %s: stored record: %w", name, err)
	}
	return &rec, nil
}

// Save stores rec in place of the stack's record.
func (r *Records) Save(ctx context.Context, rec *Record) error {
	st := r.st
	if err := CheckRecord(rec); err != nil {
		return err
	}
	rec.UpdatedAt = time.Now().UTC()
	doc, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = st.Writer().ExecContext(ctx, `INSERT INTO stacks (name, doc, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at`,
		rec.Name, string(doc), rec.UpdatedAt.Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("stack %s: save record: %w", rec.Name, err)
	}
	return nil
}

// Delete removes the stack's record.
func (r *Records) Delete(ctx context.Context, name string) error {
	st := r.st
	res, err := st.Writer().ExecContext(ctx, `DELETE FROM stacks WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("stack %s: delete record: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("stack %s: %w", name, ErrNoStack)
	}
	return nil
}
