package events

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/scangate/scangate/internal/secret"
)

// A webhook's URL is a secret as much as its signing secret is: chat
// services (Slack, Teams, Discord) put their token in the path or the
// query, and some receivers take user:password. Both are sealed together
// in the rules table (secret.Keys), and every other place a target is
// written — job arguments, dead letters, errors, logs, what readers see —
// carries RedactURL's form, which keeps the scheme and the host.

// purposeTarget is what a target's webhook and secret are sealed for.
const purposeTarget = "events.target"

// storedTarget is a target as the rules table keeps it.
type storedTarget struct {
	ID      string `json:"id"`
	Handler string `json:"handler,omitempty"`
	// Webhook is the URL as RedactURL shows it. An older scangate kept
	// the whole URL here, and Secret in the clear: Reseal seals them.
	Webhook string `json:"webhook,omitempty"`
	Secret  string `json:"secret,omitempty"`
	// Rev names the webhook URL the target has: it changes when the URL
	// does, so that a delivery routed to the old URL is dropped without
	// the URL (or a hash of it, which a short token would not survive)
	// being in the job's arguments.
	Rev string `json:"rev,omitempty"`
	// Sealed is the sealed JSON of sealedTarget.
	Sealed string `json:"sealed,omitempty"`
}

type sealedTarget struct {
	Webhook string `json:"webhook"`
	Secret  string `json:"secret,omitempty"`
}

// RedactURL returns a webhook URL as readers may see it: its scheme and
// host, with "…" for the user information, path, query and fragment it
// had (https://hooks.example.com/…).
func RedactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "…"
	}
	out := u.Scheme + "://" + u.Host + "/"
	if u.User != nil || strings.Trim(u.EscapedPath(), "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		out += "…"
	}
	return out
}

// newRev returns a new target revision.
func newRev() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sealTargets turns a rule's targets into what the table keeps, keeping the
// revision of each webhook target whose URL is the one old had.
func sealTargets(keys *secret.Keys, targets []Target, old []Target) ([]storedTarget, error) {
	prev := map[string]Target{}
	for _, t := range old {
		prev[t.ID] = t
	}
	out := make([]storedTarget, 0, len(targets))
	for _, t := range targets {
		s := storedTarget{ID: t.ID, Handler: t.Handler}
		if t.Webhook != "" {
			p, ok := prev[t.ID]
			s.Rev = p.rev
			if !ok || p.Webhook != t.Webhook || p.rev == "" {
				s.Rev = newRev()
			}
			doc, err := json.Marshal(sealedTarget{Webhook: t.Webhook, Secret: t.Secret})
			if err != nil {
				return nil, err
			}
			if s.Sealed, err = keys.Seal(purposeTarget, doc); err != nil {
				return nil, fmt.Errorf("target %s: %w", t.ID, err)
			}
			s.Webhook = RedactURL(t.Webhook)
		}
		out = append(out, s)
	}
	return out, nil
}

// openTargets turns the table's targets into the rule's, opening the
// sealed ones (and taking those an older scangate kept in the clear).
func openTargets(keys *secret.Keys, stored []storedTarget) ([]Target, error) {
	out := make([]Target, 0, len(stored))
	for _, s := range stored {
		t := Target{ID: s.ID, Handler: s.Handler, rev: s.Rev}
		switch {
		case s.Sealed != "":
			doc, err := keys.Unseal(purposeTarget, s.Sealed)
			if err != nil {
				return nil, fmt.Errorf("target %s: %w", s.ID, err)
			}
			var st sealedTarget
			if err := json.Unmarshal(doc, &st); err != nil {
				return nil, fmt.Errorf("target %s: sealed settings: %w", s.ID, err)
			}
			t.Webhook, t.Secret = st.Webhook, st.Secret
		default:
			t.Webhook, t.Secret = s.Webhook, s.Secret
		}
		out = append(out, t)
	}
	return out, nil
}

// Reseal is the events package's secret.Resealer: it seals the targets of
// the rules an older scangate stored in the clear, seals again those under
// an old key, and takes the URLs and secrets out of the dead letters an
// older scangate filed with them.
func Reseal(ctx context.Context, tx *sql.Tx, keys *secret.Keys) (int, error) {
	n, err := resealRules(ctx, tx, keys)
	if err != nil {
		return n, err
	}
	m, err := redactDeadLetters(ctx, tx, keys)
	return n + m, err
}

func resealRules(ctx context.Context, tx *sql.Tx, keys *secret.Keys) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name, targets FROM rules ORDER BY name`)
	if err != nil {
		return 0, fmt.Errorf("reseal rules: %w", err)
	}
	stored := map[string][]storedTarget{}
	var names []string
	for rows.Next() {
		var name, doc string
		if err := rows.Scan(&name, &doc); err != nil {
			rows.Close()
			return 0, fmt.Errorf("reseal rules: %w", err)
		}
		var ts []storedTarget
		if err := json.Unmarshal([]byte(doc), &ts); err != nil {
			rows.Close()
			return 0, fmt.Errorf("reseal rule %s: %w", name, err)
		}
		stored[name] = ts
		names = append(names, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("reseal rules: %w", err)
	}
	n := 0
	for _, name := range names {
		ts := stored[name]
		changed := false
		for i, s := range ts {
			switch {
			case s.Sealed != "":
				out, did, err := keys.Reseal(purposeTarget, s.Sealed)
				if err != nil {
					return n, fmt.Errorf("reseal rule %s, target %s: %w", name, s.ID, err)
				}
				ts[i].Sealed, changed = out, changed || did
			case s.Webhook != "" || s.Secret != "":
				open, err := openTargets(keys, []storedTarget{s})
				if err != nil {
					return n, err
				}
				sealed, err := sealTargets(keys, open, nil)
				if err != nil {
					return n, fmt.Errorf("reseal rule %s: %w", name, err)
				}
				ts[i], changed = sealed[0], true
			}
		}
		if !changed {
			continue
		}
		doc, err := json.Marshal(ts)
		if err != nil {
			return n, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rules SET targets = $1 WHERE name = $2`, string(doc), name); err != nil {
			return n, fmt.Errorf("reseal rule %s: %w", name, err)
		}
		n++
	}
	return n, nil
}

// redactDeadLetters rewrites the dead letters filed with a webhook's whole
// URL (and, before that, its secret): the URL becomes RedactURL's form
// (in the error text too), and the target gets the revision of the rule's
// target of that URL, so that its replay is still possible.
func redactDeadLetters(ctx context.Context, tx *sql.Tx, keys *secret.Keys) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, rule, target, error FROM dead_letters ORDER BY id`)
	if err != nil {
		return 0, fmt.Errorf("redact dead letters: %w", err)
	}
	type letter struct {
		id         int64
		rule, errs string
		target     storedTarget
	}
	var legacy []letter
	for rows.Next() {
		var l letter
		var doc string
		if err := rows.Scan(&l.id, &l.rule, &doc, &l.errs); err != nil {
			rows.Close()
			return 0, fmt.Errorf("redact dead letters: %w", err)
		}
		if err := json.Unmarshal([]byte(doc), &l.target); err != nil {
			rows.Close()
			return 0, fmt.Errorf("dead letter %d: %w", l.id, err)
		}
		if l.target.Secret != "" || (l.target.Webhook != "" && RedactURL(l.target.Webhook) != l.target.Webhook) {
			legacy = append(legacy, l)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("redact dead letters: %w", err)
	}
	for _, l := range legacy {
		full := l.target.Webhook
		t := storedTarget{ID: l.target.ID, Handler: l.target.Handler, Webhook: RedactURL(full), Rev: "gone"}
		if r, err := loadRule(ctx, tx, keys, l.rule); err == nil {
			for _, rt := range r.Targets {
				if rt.ID == t.ID && rt.Webhook == full {
					t.Rev = rt.rev
				}
			}
		}
		doc, err := json.Marshal(t)
		if err != nil {
			return 0, err
		}
		msg := l.errs
		if full != "" {
			msg = strings.ReplaceAll(msg, full, t.Webhook)
		}
		if l.target.Secret != "" {
			msg = strings.ReplaceAll(msg, l.target.Secret, "********")
		}
		if _, err := tx.ExecContext(ctx, `UPDATE dead_letters SET target = $1, error = $2 WHERE id = $3`, string(doc), msg, l.id); err != nil {
			return 0, fmt.Errorf("dead letter %d: %w", l.id, err)
		}
	}
	return len(legacy), nil
}
