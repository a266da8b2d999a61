package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/scangate/scangate/internal/secret"
	"github.com/scangate/scangate/internal/source"
)

// A definition's secrets — the external source's URL when it holds
// credentials, the push webhooks' secret, and the secret build args — are
// sealed together (package secret) in every stored version of the
// definition, old ones included. The stored document keeps, in their
// place, the URL as source.Redact shows it (which still names the
// repository: RepoKey matches pushes to it), and the secret args' names.

// purposeDefinition is what a definition's secrets are sealed for.
const purposeDefinition = "pipeline.definition"

// definitionSecrets are what a definition's sealed field holds.
type definitionSecrets struct {
	URL           string            `json:"url,omitempty"`
	WebhookSecret string            `json:"webhook-secret,omitempty"`
	SecretArgs    map[string]string `json:"secret-args,omitempty"`
}

// storedDefinition is a definition as pipeline_versions keeps it.
type storedDefinition struct {
	Definition
	Sealed string `json:"sealed,omitempty"`
}

// secretsOf returns d's secrets, and whether it has any.
func secretsOf(d *Definition) (definitionSecrets, bool) {
	var s definitionSecrets
	if hasCredentials(d.Source.URL) {
		s.URL = d.Source.URL
	}
	s.WebhookSecret = d.Source.WebhookSecret
	if len(d.Build.SecretArgs) > 0 {
		s.SecretArgs = maps.Clone(d.Build.SecretArgs)
	}
	return s, s.URL != "" || s.WebhookSecret != "" || len(s.SecretArgs) > 0
}

// hasCredentials reports whether an external source URL holds a user or a
// password (an scp-like user@host:path names an SSH user, no secret).
func hasCredentials(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme != "" && u.User != nil
}

// sealDefinition returns the document pipeline_versions keeps for d.
func sealDefinition(keys *secret.Keys, d *Definition) ([]byte, error) {
	sd := storedDefinition{Definition: *d}
	if secrets, ok := secretsOf(d); ok {
		doc, err := json.Marshal(secrets)
		if err != nil {
			return nil, err
		}
		if sd.Sealed, err = keys.Seal(purposeDefinition, doc); err != nil {
			return nil, fmt.Errorf("pipeline %s: %w", d.Name, err)
		}
		sd.Source.URL = source.Redact(d.Source.URL)
		sd.Source.WebhookSecret = ""
		sd.Build.SecretArgs = map[string]string{}
		for name := range d.Build.SecretArgs {
			sd.Build.SecretArgs[name] = ""
		}
	}
	return json.Marshal(sd)
}

// decodeDefinition reads a stored document: the definition without its
// secrets, which stay sealed until unsealDefinition (a definition an older
// scangate stored has them in the clear).
func decodeDefinition(doc string) (*Definition, error) {
	var sd storedDefinition
	if err := json.Unmarshal([]byte(doc), &sd); err != nil {
		return nil, err
	}
	d := sd.Definition
	d.sealed = sd.Sealed
	return &d, nil
}

// unsealDefinition puts d's sealed secrets back in place.
func unsealDefinition(keys *secret.Keys, d *Definition) error {
	if d.sealed == "" {
		return nil
	}
	doc, err := keys.Unseal(purposeDefinition, d.sealed)
	if err != nil {
		return fmt.Errorf("pipeline %s version %d: %w", d.Name, d.Version, err)
	}
	var s definitionSecrets
	if err := json.Unmarshal(doc, &s); err != nil {
		return fmt.Errorf("pipeline %s version %d: sealed secrets: %w", d.Name, d.Version, err)
	}
	if s.URL != "" {
		d.Source.URL = s.URL
	}
	d.Source.WebhookSecret = s.WebhookSecret
	if len(s.SecretArgs) > 0 {
		d.Build.SecretArgs = s.SecretArgs
	}
	d.sealed = ""
	return nil
}

// keys returns the keys the service seals with.
func (s *Service) keys() *secret.Keys {
	if s.opts.Keys != nil {
		return s.opts.Keys
	}
	return secret.InDataDir(s.st.DataDir())
}

// Reseal is the pipeline package's secret.Resealer: it seals the secrets
// of every stored version of every pipeline that an older scangate kept
// in the clear, and seals again those under an old key.
func Reseal(ctx context.Context, tx *sql.Tx, keys *secret.Keys) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name, version, doc FROM pipeline_versions ORDER BY name, version`)
	if err != nil {
		return 0, fmt.Errorf("reseal pipelines: %w", err)
	}
	type version struct {
		name string
		n    int
		doc  string
	}
	var all []version
	for rows.Next() {
		var v version
		if err := rows.Scan(&v.name, &v.n, &v.doc); err != nil {
			rows.Close()
			return 0, fmt.Errorf("reseal pipelines: %w", err)
		}
		all = append(all, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("reseal pipelines: %w", err)
	}
	n := 0
	for _, v := range all {
		d, err := decodeDefinition(v.doc)
		if err != nil {
			return n, fmt.Errorf("reseal pipeline %s version %d: %w", v.name, v.n, err)
		}
		if d.sealed != "" {
			if fresh, err := keys.Fresh(d.sealed); err != nil || fresh {
				if err != nil {
					return n, fmt.Errorf("reseal pipeline %s version %d: %w", v.name, v.n, err)
				}
				continue
			}
			if err := unsealDefinition(keys, d); err != nil {
				return n, err
			}
		} else if _, ok := secretsOf(d); !ok {
			continue
		}
		doc, err := sealDefinition(keys, d)
		if err != nil {
			return n, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE pipeline_versions SET doc = $1 WHERE name = $2 AND version = $3`, string(doc), v.name, v.n); err != nil {
			return n, fmt.Errorf("reseal pipeline %s version %d: %w", v.name, v.n, err)
		}
		n++
	}
	return n, nil
}

// hider returns a function that takes d's secret values (its secret build
// args, its source's credentials) out of text a build wrote.
func hider(d *Definition) func(string) string {
	var values []string
	for _, v := range d.Build.SecretArgs {
		// Shorter values would blank out ordinary words of the log.
		if len(v) >= 3 {
			values = append(values, v)
		}
	}
	if u, err := url.Parse(d.Source.URL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && len(pw) >= 3 {
			values = append(values, pw)
		} else if name := u.User.Username(); !ok && len(name) >= 3 {
			values = append(values, name)
		}
	}
	// Longest first: a secret that contains another is hidden whole.
	slices.SortFunc(values, func(a, b string) int { return len(b) - len(a) })
	return func(s string) string {
		for _, v := range values {
			s = strings.ReplaceAll(s, v, "xxxxx")
		}
		return s
	}
}

// hiddenError is an error whose text had secrets taken out; it still
// wraps the error it came from, for errors.Is.
type hiddenError struct {
	text string
	err  error
}

func (e hiddenError) Error() string { return e.text }
func (e hiddenError) Unwrap() error { return e.err }
