package lazyregexp

import "testing"

func TestLazy(t *testing.T) {
	r := New(`^[a-z][a-z0-9-]{0,62}$`)
	if r.rx != nil {
		t.Fatal("compiled before first use")
	}
	if !r.MatchString("shop-api") || r.MatchString("Shop") {
		t.Error("wrong matches")
	}
	bad := New(`(`) // no panic until used
	defer func() {
		if recover() == nil {
			t.Error("a pattern that does not compile did not panic on first use")
		}
	}()
	bad.MatchString("x")
}
