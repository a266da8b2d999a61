package auth_test

import (
	"context"
	"errors"
	"testing"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/storetest"
)

// A process token verifies in the process that made it and nowhere else:
// two replicas on one database each keep their own (a restart of one no
// longer replaces the other's), nothing is stored, and a database token
// of the same name is not taken for it.
func TestProcessTokens(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, t.TempDir())
	a, b := auth.NewTokens(st), auth.NewTokens(st)
	secretA, err := a.Process("scangate-builder", auth.RolePusher)
	if err != nil {
		t.Fatal(err)
	}
	secretB, err := b.Process("scangate-builder", auth.RolePusher)
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := a.Verify(ctx, secretA); err != nil || !tok.Process || tok.Name != "scangate-builder" || tok.Role != auth.RolePusher {
		t.Fatalf("a's own token: %+v, %v", tok, err)
	}
	if _, err := a.Verify(ctx, secretB); !errors.Is(err, auth.ErrInvalid) {
		t.Errorf("b's process token in a: %v, want invalid", err)
	}
	if _, err := b.Verify(ctx, secretB); err != nil {
		t.Errorf("b's own token after a made one of the same name: %v", err)
	}
	list, err := a.List(ctx)
	if err != nil || len(list) != 0 {
		t.Errorf("tokens stored: %+v, %v; want none", list, err)
	}
	secret, _, err := a.Create(ctx, "scangate-builder", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := b.Verify(ctx, secret); err != nil || tok.Process {
		t.Errorf("a stored token named like the builder's: %+v, %v; want a plain token", tok, err)
	}
}
