package events

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/scangate/scangate/internal/events/pattern"
	"github.com/scangate/scangate/internal/lazyregexp"
	"github.com/scangate/scangate/internal/secret"
	"github.com/scangate/scangate/internal/store"
)

// A Rule sends the events its pattern matches to its targets.
type Rule struct {
	Name    string          `json:"name"`
	Pattern json.RawMessage `json:"pattern"`
	Targets []Target        `json:"targets"`
	// Builtin rules are set up by scangate itself and live in memory.
	Builtin   bool      `json:"builtin,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// A Target is where a rule sends an event.
type Target struct {
	// ID names the target within its rule.
	ID string `json:"id"`
	// Webhook is a URL that receives each event as a signed POST.
	Webhook string `json:"webhook,omitempty"`
	// Secret signs webhook deliveries (HMAC-SHA256 of the body).
	Secret string `json:"secret,omitempty"`
	// Handler names a built-in handler.
	Handler string `json:"handler,omitempty"`

	// rev names the webhook URL the target had when stored (see
	// storedTarget.Rev).
	rev string
}

// maxWebhookLen bounds a webhook URL.
const maxWebhookLen = 2048

var ruleName = lazyregexp.New(`^[A-Za-z0-9._-]{1,64}$`)

// Check validates a rule as Put stores it.
func (r *Rule) Check() error {
	if !ruleName.MatchString(r.Name) {
		return fmt.Errorf("rule name %q: use 1 to 64 letters, digits, '.', '_' or '-'", r.Name)
	}
	if _, err := pattern.Compile(r.Pattern); err != nil {
		return fmt.Errorf("rule %s: %w", r.Name, err)
	}
	if len(r.Targets) == 0 {
		return fmt.Errorf("rule %s: no targets", r.Name)
	}
	if len(r.Targets) > 5 { // EventBridge's limit
		return fmt.Errorf("rule %s: %d targets, at most 5", r.Name, len(r.Targets))
	}
	seen := map[string]bool{}
	for i, t := range r.Targets {
		if t.ID == "" {
			t.ID = fmt.Sprint(i + 1)
			r.Targets[i].ID = t.ID
		}
		if seen[t.ID] {
			return fmt.Errorf("rule %s: two targets with id %q", r.Name, t.ID)
		}
		seen[t.ID] = true
		if (t.Webhook == "") == (t.Handler == "") {
			return fmt.Errorf("rule %s, target %s: give either a webhook or a handler", r.Name, t.ID)
		}
		if t.Webhook != "" {
			u, err := url.Parse(t.Webhook)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(t.Webhook) > maxWebhookLen {
				// Not the URL itself: it may hold a token.
				return fmt.Errorf("rule %s, target %s: the webhook is not an http(s) URL of at most %d bytes", r.Name, t.ID, maxWebhookLen)
			}
		}
	}
	return nil
}

// ErrNoRule reports a rule that does not exist.
var ErrNoRule = errors.New("no such rule")

// Rules is the rule table. Webhook targets are sealed in it with the
// data folder's keys (see RedactURL).
type Rules struct {
	st   *store.Store
	keys *secret.Keys
}

// NewRules returns the rules stored in st, sealed with the keys of st's
// data folder.
func NewRules(st *store.Store) *Rules {
	return &Rules{st: st, keys: secret.InDataDir(st.DataDir())}
}

// Put creates or replaces a rule.
func (rs *Rules) Put(ctx context.Context, r Rule) error {
	if err := r.Check(); err != nil {
		return err
	}
	now := time.Now().UTC().Format(time.RFC3339)
	// Sealed in the transaction that stores them: a key rotation either
	// comes before it, and the value is sealed under the new key, or
	// after it, and seals the value again (package secret).
	err := rs.st.InTx(ctx, func(tx *sql.Tx) error {
		var old []Target
		switch prev, err := loadRule(ctx, tx, rs.keys, r.Name); {
		case err == nil:
			old = prev.Targets
		case !errors.Is(err, ErrNoRule):
			return err
		}
		stored, err := sealTargets(rs.keys, r.Targets, old)
		if err != nil {
			return err
		}
		targets, err := json.Marshal(stored)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO rules (name, pattern, targets, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
			ON CONFLICT (name) DO UPDATE SET pattern = excluded.pattern, targets = excluded.targets, updated_at = excluded.updated_at`,
			r.Name, string(r.Pattern), string(targets), now)
		return err
	})
	if err != nil {
		return fmt.Errorf("put rule %s: %w", r.Name, err)
	}
	return nil
}

// Delete removes a rule.
func (rs *Rules) Delete(ctx context.Context, name string) error {
	res, err := rs.st.Writer().ExecContext(ctx, `DELETE FROM rules WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("delete rule %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete rule %s: %w", name, ErrNoRule)
	}
	return nil
}

// List returns the stored rules by name.
func (rs *Rules) List(ctx context.Context) ([]Rule, error) {
	rows, err := rs.st.Reader().QueryContext(ctx, `SELECT name, pattern, targets, created_at, updated_at FROM rules ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	defer rows.Close()
	var out []Rule
	for rows.Next() {
		r, err := scanRule(rows, rs.keys)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Get returns one stored rule.
func (rs *Rules) Get(ctx context.Context, name string) (Rule, error) {
	return loadRule(ctx, rs.st.Reader(), rs.keys, name)
}

type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func loadRule(ctx context.Context, q rowQuerier, keys *secret.Keys, name string) (Rule, error) {
	row := q.QueryRowContext(ctx, `SELECT name, pattern, targets, created_at, updated_at FROM rules WHERE name = $1`, name)
	r, err := scanRule(row, keys)
	if errors.Is(err, sql.ErrNoRows) {
		return Rule{}, fmt.Errorf("rule %s: %w", name, ErrNoRule)
	}
	return r, err
}

type rowScanner interface{ Scan(...any) error }

func scanRule(s rowScanner, keys *secret.Keys) (Rule, error) {
	var r Rule
	var pattern, targets, created, updated string
	if err := s.Scan(&r.Name, &pattern, &targets, &created, &updated); err != nil {
		return Rule{}, err
	}
	r.Pattern = json.RawMessage(pattern)
	var stored []storedTarget
	if err := json.Unmarshal([]byte(targets), &stored); err != nil {
		return Rule{}, fmt.Errorf("rule %s: stored targets: %w", r.Name, err)
	}
	var err error
	if r.Targets, err = openTargets(keys, stored); err != nil {
		return Rule{}, fmt.Errorf("rule %s: %w", r.Name, err)
	}
	r.CreatedAt, _ = time.Parse(time.RFC3339, created)
	r.UpdatedAt, _ = time.Parse(time.RFC3339, updated)
	return r, nil
}

// MaxRuleSize is the most bytes a rule's definition may have.
const MaxRuleSize = 64 << 10

// RuleBody is a rule's definition as the API and `rules put --file` take
// it: its pattern and targets.
type RuleBody struct {
	Pattern json.RawMessage `json:"pattern"`
	Targets []Target        `json:"targets"`
}

// ParseRule reads a rule's definition (at most MaxRuleSize bytes of JSON,
// no unknown fields) and checks it.
func ParseRule(name string, body io.Reader) (Rule, error) {
	data, err := io.ReadAll(io.LimitReader(body, MaxRuleSize+1))
	if err != nil {
		return Rule{}, fmt.Errorf("rule %s: %w", name, err)
	}
	if len(data) > MaxRuleSize {
		return Rule{}, fmt.Errorf("rule %s: over %d bytes", name, MaxRuleSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b RuleBody
	if err := dec.Decode(&b); err != nil {
		return Rule{}, fmt.Errorf("rule %s: %w", name, err)
	}
	// More would miss a stray '}' or ']' after the value; only the end of
	// the body may follow it.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Rule{}, fmt.Errorf("rule %s: data after the JSON object", name)
	}
	r := Rule{Name: name, Pattern: b.Pattern, Targets: b.Targets}
	if err := r.Check(); err != nil {
		return Rule{}, err
	}
	return r, nil
}
