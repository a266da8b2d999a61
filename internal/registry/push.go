package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/distribution/distribution/v3"
	"github.com/opencontainers/go-digest"
)

// maxManifest is the largest manifest distribution accepts (its
// maxManifestBodySize); a larger body goes to it unread, to be refused.
const maxManifest = 4 << 20

// putManifest stores a manifest and records the push with Hooks before the
// client hears "201 Created".
//
// When the push cannot be recorded, what it changed is undone before the
// client hears "500": a manifest that was not stored before is deleted and
// the tag goes back to where it was. A client that retries then pushes
// again, even one that first asks whether the manifest is there (as
// go-containerregistry's clients do, and skip the push when it is); had it
// been left in place, it would be served unrecorded and never scanned
// until the server restarts.
func (r *Registry) putManifest(w http.ResponseWriter, req *http.Request, name, ref string) {
	head, err := io.ReadAll(io.LimitReader(req.Body, maxManifest+1))
	if err != nil {
		deny(w, http.StatusBadRequest, "MANIFEST_INVALID", "reading the manifest: "+err.Error())
		return
	}
	req.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), req.Body), req.Body}
	before := r.snapshot(req.Context(), name, ref, head)

	hw := &hookWriter{ResponseWriter: w, onStatus: func(status int) int {
		if status != http.StatusCreated {
			return status
		}
		m := Manifest{Repository: name, Digest: w.Header().Get("Docker-Content-Digest"), MediaType: req.Header.Get("Content-Type")}
		if !isDigest(ref) {
			m.Tag = ref
		}
		err := r.cfg.Hooks.ManifestPushed(req.Context(), m)
		if err == nil {
			return status
		}
		// The client must not think the push is done, and retries it.
		undo := r.undo(context.WithoutCancel(req.Context()), before)
		r.logger().Error("record a manifest push; the push is refused", "repository", name, "reference", ref, "err", err, "undo", errString(undo))
		w.Header().Del("Location")
		w.Header().Set("Content-Type", "application/json")
		return http.StatusInternalServerError
	}}
	r.app.ServeHTTP(hw, req)
	if hw.replaced {
		// distribution's own body (none, for a 201) is dropped: the client
		// gets an error in the specification's shape.
		_ = json.NewEncoder(w).Encode(errorBody("UNKNOWN", "the manifest could not be recorded for scanning; push it again"))
	}
}

// pushState is what a manifest push may change, seen before it.
type pushState struct {
	repository string
	digest     digest.Digest // "" when unknown: nothing is undone
	existed    bool          // the manifest was stored already
	tag        string        // the tag pushed, if any
	tagged     digest.Digest // where tag pointed before, "" if nowhere
}

func (r *Registry) snapshot(ctx context.Context, name, ref string, body []byte) pushState {
	st := pushState{repository: name}
	if isDigest(ref) {
		d, err := digest.Parse(ref)
		if err != nil {
			return st
		}
		st.digest = d
	} else {
		if len(body) > maxManifest {
			return st
		}
		st.digest, st.tag = digest.FromBytes(body), ref
	}
	repo, err := r.repository(ctx, name)
	if err != nil {
		st.digest = ""
		return st
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		st.digest = ""
		return st
	}
	if st.existed, err = ms.Exists(ctx, st.digest); err != nil {
		st.digest = ""
		return st
	}
	if st.tag != "" {
		desc, err := repo.Tags(ctx).Get(ctx, st.tag)
		switch {
		case err == nil:
			st.tagged = desc.Digest
		case !errors.As(err, new(distribution.ErrTagUnknown)):
			st.digest = ""
		}
	}
	return st
}

// undo puts back what a push changed.
func (r *Registry) undo(ctx context.Context, st pushState) error {
	if st.digest == "" {
		return errors.New("the state before the push is unknown")
	}
	repo, err := r.repository(ctx, st.repository)
	if err != nil {
		return err
	}
	var errs []error
	if st.tag != "" {
		tags := repo.Tags(ctx)
		if st.tagged != "" {
			errs = append(errs, tags.Tag(ctx, st.tag, distribution.Descriptor{Digest: st.tagged}))
		} else {
			errs = append(errs, tags.Untag(ctx, st.tag))
		}
	}
	if !st.existed {
		ms, err := repo.Manifests(ctx)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		errs = append(errs, ms.Delete(ctx, st.digest))
	}
	return errors.Join(errs...)
}

func errString(err error) string {
	if err == nil {
		return "done"
	}
	return err.Error()
}
