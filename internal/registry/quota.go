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

	"github.com/distribution/distribution/v3"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
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
// from storage at each upload request: a walk of the repository's links
// and uploads, a stat per blob.

// errQuota reports an upload that would take a repository past its quota.
var errQuota = errors.New("over quota")

// quotaState is the bytes being uploaded now, per repository.
type quotaState struct {
	mu       sync.Mutex
	inflight map[string]int64
}

func (q *quotaState) add(name string, n int64) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.inflight == nil {
		q.inflight = map[string]int64{}
	}
	q.inflight[name] += n
	v := q.inflight[name]
	if v == 0 {
		delete(q.inflight, name)
	}
	return v
}

// uploadName returns the repository of a request that starts (POST),
// continues (PATCH) or ends (PUT) a blob upload.
func uploadName(req *http.Request) (string, bool) {
	switch req.Method {
	case http.MethodPost, http.MethodPatch, http.MethodPut:
	default:
		return "", false
	}
	rest, ok := strings.CutPrefix(req.URL.Path, "/v2/")
	if !ok {
		return "", false
	}
	i := strings.LastIndex(rest, "/blobs/uploads")
	if i <= 0 {
		return "", false
	}
	return rest[:i], true
}

// Usage returns the bytes repository holds, as its quota counts them.
func (r *Registry) Usage(ctx context.Context, repository string) (int64, error) {
	named, err := reference.WithName(repository)
	if err != nil {
		return 0, fmt.Errorf("repository %q: %w", repository, err)
	}
	repo, err := r.ns.Repository(ctx, named)
	if err != nil {
		return 0, fmt.Errorf("repository %q: %w", repository, err)
	}
	blobs := repo.Blobs(ctx)
	en, ok := blobs.(distribution.BlobEnumerator)
	if !ok {
		return 0, errors.New("registry storage cannot list a repository's blobs")
	}
	var total int64
	err = en.Enumerate(ctx, func(d digest.Digest) error {
		desc, err := blobs.Stat(ctx, d)
		if err != nil {
			return fmt.Errorf("blob %s: %w", d, err)
		}
		total += desc.Size
		return nil
	})
	if err != nil && !notFound(err) {
		return 0, fmt.Errorf("size of %s: %w", repository, err)
	}
	uploads := path.Join("/docker/registry/v2/repositories", named.Name(), "_uploads")
	err = r.driver.Walk(ctx, uploads, func(fi storagedriver.FileInfo) error {
		if !fi.IsDir() && path.Base(fi.Path()) == "data" {
			total += fi.Size()
		}
		return nil
	})
	if err != nil && !notFound(err) {
		return 0, fmt.Errorf("uploads of %s: %w", repository, err)
	}
	return total, nil
}

// quota holds an upload request to its repository's quota; it answers the
// request itself, and returns false, when the repository is full.
func (r *Registry) quota(w http.ResponseWriter, req *http.Request, name string) (http.ResponseWriter, func(), bool) {
	max := r.cfg.RepositoryQuota
	if _, err := reference.WithName(name); err != nil {
		return w, func() {}, true // distribution answers a bad name as it always has
	}
	used, err := r.Usage(req.Context(), name)
	if err != nil {
		r.logger().Error("registry: measure a repository for its quota", "repository", name, "err", err)
		deny(w, http.StatusInternalServerError, "UNKNOWN", "cannot measure the repository against its quota")
		return nil, nil, false
	}
	over := func(adding int64) string {
		return fmt.Sprintf("repository %s is over its quota of %d bytes: it holds %d, and this upload adds at least %d more "+
			"(delete images, or ask for a larger --repository-quota)", name, max, used, adding)
	}
	if used >= max {
		r.logger().Warn("registry: upload refused: the repository is over its quota", "repository", name, "used", used, "quota", max)
		deny(w, http.StatusForbidden, "DENIED", over(0))
		return nil, nil, false
	}
	if req.Body == nil || req.Body == http.NoBody {
		return w, func() {}, true
	}
	body := &quotaBody{ReadCloser: req.Body, r: r, name: name, room: max - used}
	req.Body = body
	hw := &hookWriter{ResponseWriter: w}
	hw.onStatus = func(status int) int {
		if !body.over {
			return status
		}
		w.Header().Set("Content-Type", "application/json")
		return http.StatusForbidden
	}
	finish := func() {
		r.quotas.add(name, -body.read)
		if body.over {
			r.logger().Warn("registry: upload cut: the repository would go over its quota", "repository", name, "used", used, "quota", max)
			if hw.replaced || !hw.done {
				if !hw.done {
					hw.WriteHeader(http.StatusForbidden)
				}
				_ = json.NewEncoder(w).Encode(errorBody("DENIED", over(body.read)))
			}
		}
	}
	return hw, finish, true
}

// quotaBody counts an upload's bytes against its repository's room.
type quotaBody struct {
	io.ReadCloser
	r    *Registry
	name string
	room int64 // the quota less what the repository held at the start
	read int64
	over bool
}

func (b *quotaBody) Read(p []byte) (int, error) {
	if b.over {
		return 0, errQuota
	}
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	if b.r.quotas.add(b.name, int64(n)) > b.room {
		b.over = true
		return 0, errQuota
	}
	return n, err
}
