package events

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// LogFilter chooses logged events to list, newest first.
type LogFilter struct {
	// DetailType keeps one detail type ("" for all).
	DetailType string
	// Since and Until bound the events' times (zero: unbounded).
	Since, Until time.Time
	// Before keeps events logged before this sequence number (0: all),
	// to page back.
	Before int64
	// Limit is the most events returned (100; at most 1000).
	Limit int
}

// Recent lists logged events as f says, newest first.
func (b *Bus) Recent(ctx context.Context, f LogFilter) ([]Logged, error) {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if f.DetailType != "" {
		add("detail_type = $%d", f.DetailType)
	}
	// Times are stored as RFC 3339 in UTC, to the second: text order is
	// time order.
	if !f.Since.IsZero() {
		add("time >= $%d", f.Since.UTC().Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		add("time <= $%d", f.Until.UTC().Format(time.RFC3339))
	}
	if f.Before > 0 {
		add("seq < $%d", f.Before)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	q := `SELECT seq, doc FROM events`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ")
	}
	rows, err := b.st.Reader().QueryContext(ctx, q+fmt.Sprintf(` ORDER BY seq DESC LIMIT %d`, f.Limit), args...)
	if err != nil {
		return nil, fmt.Errorf("event log: %w", err)
	}
	return scanLogged(rows)
}

// DetailTypes lists the detail types in the log.
func (b *Bus) DetailTypes(ctx context.Context) ([]string, error) {
	rows, err := b.st.Reader().QueryContext(ctx, `SELECT DISTINCT detail_type FROM events ORDER BY detail_type`)
	if err != nil {
		return nil, fmt.Errorf("event log: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// LastSeq is the sequence number of the newest logged event (0 if none).
func (b *Bus) LastSeq(ctx context.Context) (int64, error) {
	var seq int64
	err := b.st.Reader().QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM events`).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("event log: %w", err)
	}
	return seq, nil
}
