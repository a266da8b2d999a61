// Package auth holds scangate's access tokens and the roles they carry.
//
// A token is 32 random bytes shown once, at creation; the database keeps only
// its SHA-256, so a copy of the database lets nobody in. A plain hash (not a
// password hash) is enough because the secret is random, not chosen by a
// person, as GitHub and Harbor do for their tokens.
//
// A token may be limited to some repositories (Scope), as GitHub's
// fine-grained tokens and Harbor's robot accounts are; the registry, hosted
// git and the API each check the repository a request names against it.
package auth

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/scangate/scangate/internal/store"
)

// Role is what a token may do.
type Role string

// The roles, each allowed what the one before it is.
const (
	RoleReader   Role = "reader"   // pull images, read results
	RolePusher   Role = "pusher"   // and push images
	RoleApprover Role = "approver" // and answer approval requests
	RoleDeployer Role = "deployer" // and change clusters, task definitions, services and tasks
	RoleAdmin    Role = "admin"    // and delete, manage tokens, rules and the rest
)

// Roles lists the roles from least to most allowed.
var Roles = []Role{RoleReader, RolePusher, RoleApprover, RoleDeployer, RoleAdmin}

// ParseRole checks a role's name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q: want reader, pusher, approver, deployer or admin", s)
}

func (r Role) rank() int {
	for i, x := range Roles {
		if x == r {
			return i + 1
		}
	}
	return 0
}

// Allows reports whether a token with role r may do what need allows.
func (r Role) Allows(need Role) bool { return r.rank() >= need.rank() && need.rank() > 0 }

// Token is a stored token, without its secret.
type Token struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       Role       `json:"role"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
	// ExpiresAt, if set, is when the token stops working.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	// Repositories are the repositories the token may reach (registry and
	// hosted git); empty grants every one.
	Repositories Scope `json:"repositories,omitempty"`
	// Process marks a token of the server's own (Tokens.Server), which
	// no one else can hold whatever its name.
	Process bool `json:"-"`
}

// Grants reports whether the token may reach the repository name at all
// (its role says what it may do there).
func (t Token) Grants(name string) bool { return t.Repositories.Grants(name) }

// Prefix starts every secret, so that leaked tokens are easy to search for.
const Prefix = "sgt_"

// ErrInvalid reports an unknown or revoked token.
var ErrInvalid = errors.New("invalid token")

// ErrExpired reports a token past its expiry; it is an ErrInvalid, so
// that every route refuses it as it refuses an unknown token.
var ErrExpired = fmt.Errorf("%w: expired", ErrInvalid)

// ErrExists reports a token name already taken.
var ErrExists = errors.New("a token with this name exists")

// Tokens is the token table.
type Tokens struct {
	st  *store.Store
	now func() time.Time

	mu      sync.RWMutex
	process map[string]Token // the server's own tokens, by their secret's hash
}

// NewTokens returns the token table of st.
func NewTokens(st *store.Store) *Tokens { return &Tokens{st: st, now: time.Now} }

// Server makes the server's own token name (its builds push to, and the
// Docker Engine pulls task images from, scangate's registry with it). Its
// secret is derived from key (HKDF-SHA256, the name in its label), so
// every replica that shares the key makes the same secret and verifies
// the others': a build on one replica may push through a load balancer
// to another. Nothing is written to the database, so replicas do not
// replace each other's tokens, and no secret is stored anywhere; a new
// key makes new secrets. It verifies like any token, with Token.Process
// set, and no database token of the same name is taken for it.
func (t *Tokens) Server(name string, role Role, key []byte) (string, error) {
	if len(key) < 32 {
		return "", fmt.Errorf("token %q: a key of %d bytes, want at least 32", name, len(key))
	}
	raw, err := hkdf.Key(sha256.New, key, nil, "scangate server token "+name, 32)
	if err != nil {
		return "", fmt.Errorf("token %q: %w", name, err)
	}
	secret := Prefix + hex.EncodeToString(raw)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.process == nil {
		t.process = map[string]Token{}
	}
	t.process[hash(secret)] = Token{ID: "server:" + name, Name: name, Role: role, CreatedAt: t.now().UTC(), Process: true}
	return secret, nil
}

// Create makes a token that does not expire and returns its secret, which
// is not stored.
func (t *Tokens) Create(ctx context.Context, name string, role Role) (string, Token, error) {
	return t.CreateExpiring(ctx, name, role, time.Time{})
}

// CreateExpiring makes a token that stops working at expires (never, if it
// is zero) and returns its secret, which is not stored.
func (t *Tokens) CreateExpiring(ctx context.Context, name string, role Role, expires time.Time) (string, Token, error) {
	return t.CreateToken(ctx, Spec{Name: name, Role: role, Expires: expires})
}

// Spec describes a token to make.
type Spec struct {
	Name string
	Role Role
	// Expires is when the token stops working; zero is never.
	Expires time.Time
	// Repositories limits the token to these repositories; empty is all.
	// An admin token cannot be limited: it manages tokens, so it could
	// make itself one without a limit.
	Repositories Scope
}

// CreateToken makes the token spec describes and returns its secret, which
// is not stored.
func (t *Tokens) CreateToken(ctx context.Context, spec Spec) (string, Token, error) {
	name, role, expires := spec.Name, spec.Role, spec.Expires
	if name == "" || len(name) > 128 {
		return "", Token{}, errors.New("a token needs a name of 1 to 128 characters")
	}
	if role.rank() == 0 {
		return "", Token{}, fmt.Errorf("unknown role %q", role)
	}
	if err := spec.Repositories.Check(); err != nil {
		return "", Token{}, fmt.Errorf("token %q: %w", name, err)
	}
	if role == RoleAdmin && !spec.Repositories.All() {
		return "", Token{}, fmt.Errorf("token %q: %w: an admin token reaches every repository (it could make itself a token that does)", name, ErrBadScope)
	}
	scope, err := json.Marshal(orEmpty(spec.Repositories))
	if err != nil {
		return "", Token{}, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", Token{}, err
	}
	secret := Prefix + hex.EncodeToString(raw)
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return "", Token{}, err
	}
	tok := Token{ID: hex.EncodeToString(id), Name: name, Role: role, CreatedAt: t.now().UTC().Truncate(time.Second),
		Repositories: spec.Repositories}
	var exp sql.NullString
	if !expires.IsZero() {
		e := expires.UTC().Truncate(time.Second)
		if !e.After(tok.CreatedAt) {
			return "", Token{}, fmt.Errorf("token %q: the expiry %s is not in the future", name, e.Format(time.RFC3339))
		}
		tok.ExpiresAt, exp = &e, sql.NullString{String: e.Format(time.RFC3339), Valid: true}
	}
	_, err = t.st.Writer().ExecContext(ctx,
		`INSERT INTO tokens (id, name, role, hash, created_at, expires_at, repositories) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		tok.ID, tok.Name, string(tok.Role), hash(secret), tok.CreatedAt.Format(time.RFC3339), exp, string(scope))
	if err != nil {
		if store.IsUniqueViolation(err) {
			return "", Token{}, fmt.Errorf("token %q: %w", name, ErrExists)
		}
		return "", Token{}, fmt.Errorf("create token %q: %w", name, err)
	}
	return secret, tok, nil
}

// Verify returns the token whose secret this is.
func (t *Tokens) Verify(ctx context.Context, secret string) (Token, error) {
	if !strings.HasPrefix(secret, Prefix) || len(secret) > 128 {
		return Token{}, ErrInvalid
	}
	t.mu.RLock()
	tok, ok := t.process[hash(secret)]
	t.mu.RUnlock()
	if ok {
		return tok, nil
	}
	tok, err := t.lookup(ctx, "hash", hash(secret))
	if err != nil {
		return Token{}, err
	}
	now := t.now().UTC()
	// Recording every use would put a write behind every registry
	// request; to the minute is enough to tell a used token from a dead one.
	if tok.LastUsedAt == nil || now.Sub(*tok.LastUsedAt) > time.Minute {
		_, _ = t.st.Writer().ExecContext(ctx, `UPDATE tokens SET last_used_at = $1 WHERE id = $2`, now.Format(time.RFC3339), tok.ID)
	}
	return tok, nil
}

// byID returns the valid token whose ID this is, as Verify does for a
// secret: for a session made from a verified token.
func (t *Tokens) byID(ctx context.Context, id string) (Token, error) {
	return t.lookup(ctx, "id", id)
}

// lookup reads the token whose column (hash or id) is value: ErrInvalid
// when there is none, ErrExpired when it is past its expiry.
func (t *Tokens) lookup(ctx context.Context, column, value string) (Token, error) {
	row := t.st.Reader().QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE `+column+` = $1`, value)
	tok, err := scanToken(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, ErrInvalid
	}
	if err != nil {
		return Token{}, fmt.Errorf("verify token: %w", err)
	}
	if tok.ExpiresAt != nil && !t.now().UTC().Before(*tok.ExpiresAt) {
		return Token{}, ErrExpired
	}
	return tok, nil
}

// List returns every token, by name.
func (t *Tokens) List(ctx context.Context) ([]Token, error) {
	rows, err := t.st.Reader().QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		tok, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, tok)
	}
	return out, rows.Err()
}

// Revoke deletes the token named name.
func (t *Tokens) Revoke(ctx context.Context, name string) error {
	res, err := t.st.Writer().ExecContext(ctx, `DELETE FROM tokens WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("revoke token %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("revoke token %q: no such token", name)
	}
	return nil
}

type scanner interface{ Scan(...any) error }

// tokenColumns are the columns scanToken reads.
const tokenColumns = `id, name, role, created_at, last_used_at, expires_at, repositories`

func scanToken(s scanner) (Token, error) {
	var tok Token
	var role, created, scope string
	var used, expires sql.NullString
	if err := s.Scan(&tok.ID, &tok.Name, &role, &created, &used, &expires, &scope); err != nil {
		return Token{}, err
	}
	// A scope that cannot be read must not widen into every repository.
	if err := json.Unmarshal([]byte(scope), &tok.Repositories); err != nil {
		return Token{}, fmt.Errorf("token %s: repositories %q: %w", tok.Name, scope, err)
	}
	if len(tok.Repositories) == 0 {
		tok.Repositories = nil
	}
	tok.Role = Role(role)
	tok.CreatedAt, _ = time.Parse(time.RFC3339, created)
	if used.Valid {
		t, err := time.Parse(time.RFC3339, used.String)
		if err == nil {
			tok.LastUsedAt = &t
		}
	}
	if expires.Valid {
		t, err := time.Parse(time.RFC3339, expires.String)
		if err != nil {
			// An expiry that cannot be read must not make a token live
			// for ever.
			return Token{}, fmt.Errorf("token %s: expiry %q: %w", tok.Name, expires.String, err)
		}
		tok.ExpiresAt = &t
	}
	return tok, nil
}

func orEmpty(sc Scope) Scope {
	if sc == nil {
		return Scope{}
	}
	return sc
}

func hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Secret returns the token a request carries: the password of HTTP Basic
// authentication (what `docker login` sends) or a Bearer token.
func Secret(r *http.Request) (string, bool) {
	if _, pw, ok := r.BasicAuth(); ok {
		return pw, true
	}
	h := r.Header.Get("Authorization")
	if s, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(s), true
	}
	return "", false
}
