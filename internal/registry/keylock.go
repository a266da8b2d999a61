package registry

import "sync"

// keyLock is a mutex per key, for keys that come and go: an entry lives
// while someone holds or waits for it.
type keyLock struct {
	mu   sync.Mutex
	held map[string]*keyEntry
}

type keyEntry struct {
	mu    sync.Mutex
	users int // holders and waiters
}

// lock takes key's mutex and returns its unlock.
func (k *keyLock) lock(key string) func() {
	k.mu.Lock()
	if k.held == nil {
		k.held = map[string]*keyEntry{}
	}
	e := k.held[key]
	if e == nil {
		e = &keyEntry{}
		k.held[key] = e
	}
	e.users++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.users--; e.users == 0 {
			delete(k.held, key)
		}
		k.mu.Unlock()
	}
}
