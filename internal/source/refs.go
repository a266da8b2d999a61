package source

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// maxRefLen bounds a ref name given to Resolve or Fetch.
const maxRefLen = 255

// openStorage opens the bare repository d with go-git.
func openStorage(d string) *filesystem.Storage {
	return filesystem.NewStorage(osfs.New(d), cache.NewObjectLRU(4*cache.MiByte))
}

// readRefs returns the branches and tags of the bare repository d, by
// full name, each with the object it names.
func readRefs(d string) (map[string]string, error) {
	st := openStorage(d)
	defer st.Close()
	iter, err := st.IterReferences()
	if err != nil {
		return nil, fmt.Errorf("read refs: %w", err)
	}
	defer iter.Close()
	refs := map[string]string{}
	err = iter.ForEach(func(ref *plumbing.Reference) error {
		name := ref.Name()
		if ref.Type() == plumbing.HashReference && (name.IsBranch() || name.IsTag()) {
			refs[name.String()] = ref.Hash().String()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read refs: %w", err)
	}
	return refs, nil
}

// diffRefs returns the changes from before to after, by ref name.
func diffRefs(repo string, before, after map[string]string) []Push {
	var out []Push
	for _, ref := range sortedKeys(after) {
		if old, ok := before[ref]; !ok || old != after[ref] {
			if !ok {
				old = ZeroHash
			}
			out = append(out, Push{Repo: repo, Ref: ref, Old: old, New: after[ref]})
		}
	}
	for _, ref := range sortedKeys(before) {
		if _, ok := after[ref]; !ok {
			out = append(out, Push{Repo: repo, Ref: ref, Old: before[ref], New: ZeroHash})
		}
	}
	return out
}

// isCommitHash tells a full SHA-1 commit hash, in lower case.
func isCommitHash(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validRef checks a branch, tag or ref name as git check-ref-format does,
// roughly: what it lets through is safe on a command line and in a refspec.
func validRef(ref string) error {
	bad := ref == "" || len(ref) > maxRefLen || ref[0] == '-' || ref[0] == '/' ||
		strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, ".") || strings.HasSuffix(ref, ".lock") ||
		strings.Contains(ref, "..") || strings.Contains(ref, "//") || strings.Contains(ref, "@{") ||
		strings.Contains(ref, "/.") || ref[0] == '.'
	for i := 0; i < len(ref) && !bad; i++ {
		c := ref[i]
		bad = c < 0x20 || c == 0x7f || strings.IndexByte(" ~^:?*[\\", c) >= 0
	}
	if bad {
		return fmt.Errorf("ref %q: %w", ref, ErrInvalid)
	}
	return nil
}

// resolve returns the commit ref names in the bare repository d.
func resolve(d, ref string) (string, error) {
	st := openStorage(d)
	defer st.Close()
	if isCommitHash(ref) {
		return peelCommit(st, plumbing.NewHash(ref))
	}
	if ref != "HEAD" {
		if err := validRef(ref); err != nil {
			return "", err
		}
	}
	names := []plumbing.ReferenceName{plumbing.ReferenceName(ref)}
	if ref != "HEAD" && !strings.HasPrefix(ref, "refs/") {
		names = []plumbing.ReferenceName{plumbing.NewBranchReferenceName(ref), plumbing.NewTagReferenceName(ref)}
	}
	for _, n := range names {
		got, err := storer.ResolveReference(st, n)
		if errors.Is(err, plumbing.ErrReferenceNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		return peelCommit(st, got.Hash())
	}
	return "", fmt.Errorf("no such ref: %w", ErrNotFound)
}

// peelCommit follows annotated tags from h to the commit they name.
func peelCommit(st *filesystem.Storage, h plumbing.Hash) (string, error) {
	for range 10 {
		obj, err := st.EncodedObject(plumbing.AnyObject, h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return "", fmt.Errorf("object %s: %w", h, ErrNotFound)
		}
		if err != nil {
			return "", err
		}
		switch obj.Type() {
		case plumbing.CommitObject:
			return h.String(), nil
		case plumbing.TagObject:
			tag, err := object.DecodeTag(st, obj)
			if err != nil {
				return "", err
			}
			h = tag.Target
		default:
			return "", fmt.Errorf("object %s is a %s, not a commit: %w", h, obj.Type(), ErrInvalid)
		}
	}
	return "", fmt.Errorf("object %s: too many tags in a row: %w", h, ErrInvalid)
}
