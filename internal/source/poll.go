package source

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// DefaultPollEvery is how often a Watch with no Every is polled.
const DefaultPollEvery = time.Minute

// lsRemoteTimeout bounds one poll.
const lsRemoteTimeout = time.Minute

// Watch is an external repository's branch to poll.
type Watch struct {
	// URL is the repository's URL, which may hold credentials; it is the
	// Repo of the pushes the Poller reports.
	URL string
	// Branch is the branch's name, such as main.
	Branch string
	// Every is the time between two polls; 0 is DefaultPollEvery.
	Every time.Duration
	// Last is the commit the caller already knows the branch at: the
	// first poll reports a change only if the head differs from it. ""
	// reports the first head seen.
	Last string
}

// Poller polls external repositories' branches with `git ls-remote` and
// tells Options.OnPush when a head changes (New is ZeroHash if the branch
// was deleted). A change OnPush fails to take is reported again at the
// next poll.
type Poller struct {
	r *Repos

	mu      sync.Mutex
	running map[watchKey]*watcher
	closed  bool
	wg      sync.WaitGroup
}

type watchKey struct{ url, branch string }

// watcher is one running Watch.
type watcher struct {
	w      Watch
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	last string // the head last reported or known
}

// NewPoller returns a Poller with nothing to poll; give it its watches
// with Set and stop it with Close.
func (r *Repos) NewPoller() *Poller {
	return &Poller{r: r, running: map[watchKey]*watcher{}}
}

// Set makes ws the watches polled, as pipeline definitions change: watches
// no longer given stop, new ones start with a poll at once, and unchanged
// ones go on, remembering the head they saw. An invalid watch is an error
// and changes nothing.
func (p *Poller) Set(ws []Watch) error {
	want := map[watchKey]Watch{}
	for _, w := range ws {
		if err := CheckURL(w.URL); err != nil {
			return err
		}
		if _, err := branchRef(w.Branch); err != nil {
			return err
		}
		if w.Last != "" && !isCommitHash(w.Last) {
			return fmt.Errorf("watch of %s: last commit %q: want a full hash: %w", Redact(w.URL), w.Last, ErrInvalid)
		}
		if w.Every <= 0 {
			w.Every = DefaultPollEvery
		}
		want[watchKey{w.URL, w.Branch}] = w
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	for k, wt := range p.running {
		if w, ok := want[k]; ok && w.Every == wt.w.Every {
			delete(want, k)
			continue
		}
		wt.stop()
		delete(p.running, k)
		if w, ok := want[k]; ok && w.Last == "" {
			// Only the period changed: keep what was seen.
			w.Last = wt.head()
			want[k] = w
		}
	}
	for k, w := range want {
		p.running[k] = p.start(w)
	}
	return nil
}

// Close stops every watch and waits for polls under way to end.
func (p *Poller) Close() {
	p.mu.Lock()
	p.closed = true
	for k, wt := range p.running {
		wt.cancel()
		delete(p.running, k)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Poller) start(w Watch) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	wt := &watcher{w: w, cancel: cancel, done: make(chan struct{}), last: w.Last}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(wt.done)
		p.loop(ctx, wt)
	}()
	return wt
}

// stop ends wt's polls and waits for one under way, so that a watch
// restarted at once never reports the same change twice.
func (wt *watcher) stop() {
	wt.cancel()
	<-wt.done
}

func (wt *watcher) head() string {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	return wt.last
}

// loop polls wt until ctx ends.
func (p *Poller) loop(ctx context.Context, wt *watcher) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.check(ctx, wt)
			t.Reset(wt.w.Every)
		}
	}
}

// check polls wt once, reporting a changed head.
func (p *Poller) check(ctx context.Context, wt *watcher) {
	pctx, cancel := context.WithTimeout(ctx, lsRemoteTimeout)
	defer cancel()
	head, err := p.r.lsRemote(pctx, wt.w.URL, wt.w.Branch)
	if err != nil {
		if ctx.Err() == nil {
			p.r.logger().Warn("source: poll", "url", Redact(wt.w.URL), "branch", wt.w.Branch, "err", err)
		}
		return
	}
	last := wt.head()
	if head == last || last == "" && head == ZeroHash {
		wt.setHead(head)
		return
	}
	old := last
	if old == "" {
		old = ZeroHash
	}
	ref, _ := branchRef(wt.w.Branch)
	push := Push{Repo: wt.w.URL, Ref: ref, Old: old, New: head, External: true, Via: "poll"}
	if ctx.Err() != nil {
		return
	}
	if p.r.notify(context.WithoutCancel(ctx), push) == nil {
		wt.setHead(head)
	}
}

func (wt *watcher) setHead(h string) {
	wt.mu.Lock()
	wt.last = h
	wt.mu.Unlock()
}
