package build

import (
	"context"
	"sync"
)

// keyedMutex is one lock per key; waiting for one gives up when the
// context is done. Keys nobody holds or waits for take no memory.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	ch    chan struct{} // holds a token while the lock is held
	users int           // holders and waiters
}

// lock takes the lock for key and returns the function that gives it up.
func (k *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyLock)
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()

	select {
	case l.ch <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-l.ch; k.release(key, l) }) }, nil
	case <-ctx.Done():
		k.release(key, l)
		return nil, context.Cause(ctx)
	}
}

// release counts one user of l out, and forgets l after the last.
func (k *keyedMutex) release(key string, l *keyLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l.users--
	if l.users == 0 {
		delete(k.locks, key)
	}
}
