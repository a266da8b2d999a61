package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// A repository's quota (Config.RepositoryQuota) bounds the bytes it holds:
// the blobs linked into it (layers and configs, each counted once however
// many images share it) and the data of its uploads in progress, which an
// abandoned upload keeps until distribution's purge (a week). A blob
// mounted from another repository counts in both, as Harbor counts it. An
// upload is refused when it starts if the repository is full, and cut if
// its bytes would take the repository past its quota; the bytes read by
// uploads running at once are counted as they arrive, so that parallel
// uploads (Docker pushes three layers at once) cannot each pass alone.
//
// distribution keeps no count of a repository's size, so it is measured
// from storage: the linked blobs once (then kept up to date as uploads and
// mounts link more, see linkedBytes), the uploads at each request.

// errQuota reports an upload that would take a repository past its quota.
var errQuota = errors.New("over quota")

// quotaState is, per repository, the uploads being sent now, each with the
// bytes it will hold: what its data held when the request began, and what
// the request has read since. Their data on disk is left out of the
// storage walk, so that no byte counts twice.
type quotaState struct {
	mu    sync.Mutex
	live  map[string]map[*liveUpload]struct{}
	sizes map[string]*linkedSize
	// changes counts the links and deletes per repository, so that a
	// measure that saw storage before one of them is not kept.
	changes map[string]uint64
}

type liveUpload struct {
	id   string // the upload's id; "" for a request that starts one
	own  int64  // what its data held when the request began
	read int64  // what the request has read since
}

func (q *quotaState) begin(name string, u *liveUpload) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.live == nil {
		q.live = map[string]map[*liveUpload]struct{}{}
	}
	if q.live[name] == nil {
		q.live[name] = map[*liveUpload]struct{}{}
	}
	q.live[name][u] = struct{}{}
}

func (q *quotaState) end(name string, u *liveUpload) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.endLocked(name, u)
}

// endLocked is end with q.mu held.
func (q *quotaState) endLocked(name string, u *liveUpload) {
	delete(q.live[name], u)
	if len(q.live[name]) == 0 {
		delete(q.live, name)
	}
}

// grow adds n to what u has read and returns what the live uploads of
// name hold beyond a measure of the repository that left out the data of
// the uploads in measured. An upload that became live after that measure
// had its data counted in it, so only what it has read since counts here;
// without this, a measure taken just before another upload's request
// began counted that upload's data twice (seen: the config of a push
// refused while its layer's upload ended beside it).
func (q *quotaState) grow(name string, u *liveUpload, n int64, measured map[string]bool) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	u.read += n
	var total int64
	for o := range q.live[name] {
		total += o.read
		if o == u || o.id == "" || measured[o.id] {
			total += o.own
		}
	}
	return total
}

// measured notes what u's data held when its request began. Until then
// u counts only what it has read.
func (q *quotaState) measured(u *liveUpload, own int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	u.own = own
}

// ids returns the ids of the live uploads of name.
func (q *quotaState) ids(name string) map[string]bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := map[string]bool{}
	for o := range q.live[name] {
		if o.id != "" {
			out[o.id] = true
		}
	}
	return out
}

// uploadName returns the repository of a request that starts (POST),
// continues (PATCH) or ends (PUT) a blob upload, and the upload's id once
// it has one.
func uploadName(req *http.Request) (name, id string, ok bool) {
	switch req.Method {
	case http.MethodPost, http.MethodPatch, http.MethodPut:
	default:
		return "", "", false
	}
	rest, ok := strings.CutPrefix(req.URL.Path, "/v2/")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, "/blobs/uploads")
	if i <= 0 {
		return "", "", false
	}
	id = strings.Trim(rest[i+len("/blobs/uploads"):], "/")
	if strings.Contains(id, "/") {
		return "", "", false
	}
	return rest[:i], id, true
}

// Usage returns the bytes repository holds, as its quota counts them.
func (r *Registry) Usage(ctx context.Context, repository string) (int64, error) {
	total, _, err := r.usage(ctx, repository, nil, "")
	return total, err
}

// usage measures repository leaving out the data of the uploads skip
// names, and returns the size of upload id's data apart.
func (r *Registry) usage(ctx context.Context, repository string, skip map[string]bool, id string) (total, own int64, err error) {
	named, err := reference.WithName(repository)
	if err != nil {
		return 0, 0, fmt.Errorf("repository %q: %w", repository, err)
	}
	if total, err = r.linkedBytes(ctx, named); err != nil {
		return 0, 0, err
	}
	// Uploads come and go while they are listed: one that is gone was
	// either linked (and counted above, or at the next measure) or
	// cancelled.
	uploads := path.Join("/docker/registry/v2/repositories", named.Name(), "_uploads")
	dirs, err := r.driver.List(ctx, uploads)
	if err != nil && !notFound(err) {
		return 0, 0, fmt.Errorf("uploads of %s: %w", repository, err)
	}
	for _, dir := range dirs {
		upload := path.Base(dir)
		if skip[upload] && upload != id {
			continue
		}
		fi, err := r.driver.Stat(ctx, path.Join(dir, "data"))
		if notFound(err) {
			continue
		}
		if err != nil {
			return 0, 0, fmt.Errorf("upload %s of %s: %w", upload, repository, err)
		}
		if upload == id {
			own = fi.Size()
		} else {
			total += fi.Size()
		}
	}
	return total, own, nil
}

// sizeCacheAge bounds how long a repository's measured blobs are taken on
// trust: the registry keeps them up to date as uploads complete and
// deletes forget them, and a change made around the server (a garbage
// collection) is seen within it. On shared storage the other replicas'
// pushes are such changes, so the measure is taken again sooner
// (sharedSizeCacheAge): replicas together may pass a quota by what they
// accept within it, where a walk per request would cost every push a
// listing of the bucket.
const (
	sizeCacheAge       = 10 * time.Minute
	sharedSizeCacheAge = 30 * time.Second
)

// linkedSize is what the blobs linked into a repository hold.
type linkedSize struct {
	blobs map[digest.Digest]int64
	total int64
	at    time.Time
}

// linkedBytes returns what the blobs linked into named hold, measured
// from storage at most every sizeCacheAge (sharedSizeCacheAge): a walk costs a few hundred
// microseconds a blob (BenchmarkUsage), and every upload request asks.
func (r *Registry) linkedBytes(ctx context.Context, named reference.Named) (int64, error) {
	q := &r.quotas
	q.mu.Lock()
	maxAge := sizeCacheAge
	if r.storage.Shared() {
		maxAge = sharedSizeCacheAge
	}
	if c := q.sizes[named.Name()]; c != nil && time.Since(c.at) < maxAge {
		q.mu.Unlock()
		return c.total, nil
	}
	gen := q.changes[named.Name()]
	q.mu.Unlock()
	repo, err := r.ns.Repository(ctx, named)
	if err != nil {
		return 0, fmt.Errorf("repository %q: %w", named.Name(), err)
	}
	blobs := repo.Blobs(ctx)
	en, ok := blobs.(distribution.BlobEnumerator)
	if !ok {
		return 0, errors.New("registry storage cannot list a repository's blobs")
	}
	c := &linkedSize{blobs: map[digest.Digest]int64{}, at: time.Now()}
	err = en.Enumerate(ctx, func(d digest.Digest) error {
		desc, err := blobs.Stat(ctx, d)
		if errors.Is(err, distribution.ErrBlobUnknown) {
			return nil // unlinked while listed
		}
		if err != nil {
			return fmt.Errorf("blob %s: %w", d, err)
		}
		c.blobs[d] = desc.Size
		c.total += desc.Size
		return nil
	})
	if err != nil && !notFound(err) {
		return 0, fmt.Errorf("size of %s: %w", named.Name(), err)
	}
	q.mu.Lock()
	if q.sizes == nil {
		q.sizes = map[string]*linkedSize{}
	}
	if q.changes[named.Name()] == gen {
		q.sizes[named.Name()] = c
	}
	q.mu.Unlock()
	return c.total, nil
}

// linked adds a blob an upload or a mount has just linked into name, and
// ends the request's live upload u in the same step: a measure between
// the two would count the blob twice, once linked and once as u's bytes.
func (r *Registry) linked(ctx context.Context, name, dgst string, u *liveUpload) {
	size := int64(-1) // unknown: name is measured again
	if d, err := digest.Parse(dgst); err == nil {
		if repo, err := r.repository(ctx, name); err == nil {
			if desc, err := repo.Blobs(ctx).Stat(ctx, d); err == nil {
				size = desc.Size
			}
		}
	}
	q := &r.quotas
	q.mu.Lock()
	defer q.mu.Unlock()
	q.endLocked(name, u)
	q.changed(name)
	c := q.sizes[name]
	switch {
	case size < 0:
		delete(q.sizes, name)
	case c != nil:
		d := digest.Digest(dgst)
		if _, ok := c.blobs[d]; !ok {
			c.blobs[d] = size
			c.total += size
		}
	}
}

// forget drops what is known of name's size, to be measured again.
func (q *quotaState) forget(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.changed(name)
	delete(q.sizes, name)
}

// changed counts a change to name; q.mu is held.
func (q *quotaState) changed(name string) {
	if q.changes == nil {
		q.changes = map[string]uint64{}
	}
	q.changes[name]++
}

// quota holds an upload request to its repository's quota; it answers the
// request itself, and returns false, when the repository is full.
func (r *Registry) quota(w http.ResponseWriter, req *http.Request, name, id string) (http.ResponseWriter, func(), bool) {
	max := r.cfg.RepositoryQuota
	if _, err := reference.WithName(name); err != nil {
		return w, func() {}, true // distribution answers a bad name as it always has
	}
	u := &liveUpload{id: id}
	r.quotas.begin(name, u)
	measured := r.quotas.ids(name)
	used, own, err := r.usage(req.Context(), name, measured, id)
	if err != nil {
		r.quotas.end(name, u)
		r.logger().Error("registry: measure a repository for its quota", "repository", name, "err", err)
		deny(w, http.StatusInternalServerError, "UNKNOWN", "cannot measure the repository against its quota")
		return nil, nil, false
	}
	// used is what the repository holds apart from the uploads being
	// sent now, which hold what grow adds up.
	r.quotas.measured(u, own)
	live := r.quotas.grow(name, u, 0, measured)
	over := func() string {
		return fmt.Sprintf("repository %s is over its quota of %d bytes: it holds %d with the uploads in progress "+
			"(delete images, or ask for a larger --repository-quota)", name, max, used+live)
	}
	// A new upload needs room for a byte; one under way may end (PUT
	// with no body) in a repository it filled exactly.
	if used+live > max || id == "" && used+live >= max {
		r.quotas.end(name, u)
		r.logger().Warn("registry: upload refused: the repository is over its quota", "repository", name, "used", used+live, "quota", max)
		deny(w, http.StatusForbidden, "DENIED", over())
		return nil, nil, false
	}
	body := &quotaBody{ReadCloser: req.Body, r: r, name: name, u: u, measured: measured, room: max - used}
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = body
	}
	status := 0
	hw := &hookWriter{ResponseWriter: w}
	hw.onStatus = func(s int) int {
		status = s
		if !body.over {
			return s
		}
		w.Header().Set("Content-Type", "application/json")
		return http.StatusForbidden
	}
	finish := func() {
		if status == http.StatusCreated && !body.over {
			// A blob was linked: an upload's end, or a mount.
			r.linked(req.Context(), name, w.Header().Get("Docker-Content-Digest"), u)
		} else {
			r.quotas.end(name, u)
		}
		if !body.over {
			return
		}
		r.logger().Warn("registry: upload cut: the repository would go over its quota", "repository", name, "quota", max)
		if !hw.done {
			hw.WriteHeader(http.StatusForbidden)
		}
		if hw.replaced {
			_ = json.NewEncoder(w).Encode(errorBody("DENIED", over()))
		}
	}
	return hw, finish, true
}

// quotaBody counts an upload's bytes against its repository's room.
type quotaBody struct {
	io.ReadCloser
	r    *Registry
	name string
	u    *liveUpload
	// measured: the uploads whose data the measure behind room left out
	measured map[string]bool
	room     int64 // the quota less what the repository held, live uploads apart
	over     bool
}

func (b *quotaBody) Read(p []byte) (int, error) {
	if b.over {
		return 0, errQuota
	}
	n, err := b.ReadCloser.Read(p)
	if b.r.quotas.grow(b.name, b.u, int64(n), b.measured) > b.room {
		b.over = true
		return 0, errQuota
	}
	return n, err
}

// repositoryOf returns the repository of /v2/NAME/(blobs|manifests)/....
func repositoryOf(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", false
	}
	for _, sep := range []string{"/blobs/", "/manifests/"} {
		if i := strings.LastIndex(rest, sep); i > 0 {
			return rest[:i], true
		}
	}
	return "", false
}
