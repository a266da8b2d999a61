package auth_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/storetest"
)

// A server token made from one key verifies in every replica that shares
// the key (a build on one replica pushes through a load balancer to
// another), in none that has another key, and nothing is stored: two
// replicas on one database no longer replace each other's tokens, and a
// database token of the same name is not taken for it.
func TestServerTokens(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, t.TempDir())
	key := bytes.Repeat([]byte{7}, 32)
	other := bytes.Repeat([]byte{8}, 32)
	a, b, c := auth.NewTokens(st), auth.NewTokens(st), auth.NewTokens(st)
	secretA, err := a.Server("scangate-builder", auth.RolePusher, key)
	if err != nil {
		t.Fatal(err)
	}
	secretB, err := b.Server("scangate-builder", auth.RolePusher, key)
	if err != nil {
		t.Fatal(err)
	}
	if secretA != secretB {
		t.Error("two replicas with one key made different secrets")
	}
	secretC, err := c.Server("scangate-builder", auth.RolePusher, other)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range []*auth.Tokens{a, b} {
		if tok, err := tk.Verify(ctx, secretA); err != nil || !tok.Process || tok.Name != "scangate-builder" || tok.Role != auth.RolePusher {
			t.Fatalf("the shared key's token: %+v, %v", tok, err)
		}
	}
	if _, err := a.Verify(ctx, secretC); !errors.Is(err, auth.ErrInvalid) {
		t.Errorf("another key's token: %v, want invalid", err)
	}
	if _, err := c.Verify(ctx, secretA); !errors.Is(err, auth.ErrInvalid) {
		t.Errorf("the shared key's token where another key is used: %v, want invalid", err)
	}
	deployer, err := a.Server("scangate-deployer", auth.RoleReader, key)
	if err != nil {
		t.Fatal(err)
	}
	if deployer == secretA {
		t.Error("two names made one secret")
	}
	if _, err := a.Server("short", auth.RoleReader, key[:16]); err == nil {
		t.Error("a 16-byte key was taken")
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
