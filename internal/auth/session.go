package auth

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Session is a login to the console: made from a verified token, named by
// a random ID that only the viewer's cookie holds.
type Session struct {
	// ID is the cookie's value; set by Sessions.Create and Get, never
	// stored (the database keeps its hash).
	ID string
	// Token is the session's token as it stands now (its role is read
	// again at every Get).
	Token   Token
	CSRF    string
	Expires time.Time
}

// Sessions keeps the console's sessions in the database, so that every
// replica of the server knows them and a restart ends none.
type Sessions struct {
	tokens *Tokens
	now    func() time.Time
}

// NewSessions returns the sessions of the tokens' database.
func NewSessions(tokens *Tokens) *Sessions { return &Sessions{tokens: tokens, now: time.Now} }

// sessionTime is the stored form of an expiry: fixed-width UTC, so that
// the text sorts as the time.
const sessionTime = "2006-01-02T15:04:05Z"

// Create starts a session for tok lasting ttl, or until the token
// expires if that is sooner. Expired sessions are removed on the way.
func (s *Sessions) Create(ctx context.Context, tok Token, ttl time.Duration) (Session, error) {
	now := s.now().UTC()
	ses := Session{ID: randomHex(32), Token: tok, CSRF: randomHex(32), Expires: now.Add(ttl).Truncate(time.Second)}
	if tok.ExpiresAt != nil && tok.ExpiresAt.Before(ses.Expires) {
		ses.Expires = tok.ExpiresAt.UTC().Truncate(time.Second)
	}
	w := s.tokens.st.Writer()
	if _, err := w.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at < $1`, now.Format(sessionTime)); err != nil {
		return Session{}, fmt.Errorf("start a session: %w", err)
	}
	if _, err := w.ExecContext(ctx, `INSERT INTO sessions (id_hash, token_id, csrf, expires_at) VALUES ($1, $2, $3, $4)`,
		hash(ses.ID), tok.ID, ses.CSRF, ses.Expires.Format(sessionTime)); err != nil {
		return Session{}, fmt.Errorf("start a session: %w", err)
	}
	return ses, nil
}

// Get returns the session whose cookie value is id, with its token read
// again. ErrInvalid when there is none, it has expired, or its token was
// revoked or has expired (the session is then removed); any other error
// is a failure to check, and leaves the session as it is.
func (s *Sessions) Get(ctx context.Context, id string) (Session, error) {
	if len(id) != 64 {
		return Session{}, ErrInvalid
	}
	var tokenID, csrf, expires string
	err := s.tokens.st.Reader().QueryRowContext(ctx, `SELECT token_id, csrf, expires_at FROM sessions WHERE id_hash = $1`, hash(id)).
		Scan(&tokenID, &csrf, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrInvalid
	}
	if err != nil {
		return Session{}, fmt.Errorf("read a session: %w", err)
	}
	exp, err := time.Parse(sessionTime, expires)
	if err != nil {
		return Session{}, fmt.Errorf("read a session: %w", err)
	}
	if !s.now().Before(exp) {
		_ = s.End(ctx, id)
		return Session{}, ErrInvalid
	}
	tok, err := s.tokens.byID(ctx, tokenID)
	if errors.Is(err, ErrInvalid) {
		_ = s.End(ctx, id)
		return Session{}, err
	}
	if err != nil {
		return Session{}, err
	}
	return Session{ID: id, Token: tok, CSRF: csrf, Expires: exp}, nil
}

// End removes the session whose cookie value is id (a logout).
func (s *Sessions) End(ctx context.Context, id string) error {
	if _, err := s.tokens.st.Writer().ExecContext(ctx, `DELETE FROM sessions WHERE id_hash = $1`, hash(id)); err != nil {
		return fmt.Errorf("end a session: %w", err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
