package source

import (
	"context"
	"strings"
)

// Commit is what people recognise a commit by in a list of executions: its
// author and the first line of its message.
type Commit struct {
	SHA     string
	Author  string
	Subject string
}

// maxCommits bounds one Commits call: a page of executions.
const maxCommits = 200

// Commits describes the commits shas (full hashes) of the hosted repository
// repo, or, when url is set, of the local cache of that external
// repository. Commits it does not have (an unknown hash, a cache not yet
// fetched) are left out: the caller shows the hash alone.
func (r *Repos) Commits(ctx context.Context, repo, url string, shas []string) (map[string]Commit, error) {
	var d string
	if url != "" {
		d = r.remoteCache(url)
		if !isRepo(d) {
			return map[string]Commit{}, nil
		}
	} else {
		var err error
		if d, err = r.existing(repo); err != nil {
			return nil, err
		}
	}
	var want []string
	for _, s := range shas {
		if isCommitHash(s) && len(want) < maxCommits {
			want = append(want, s)
		}
	}
	out := make(map[string]Commit, len(want))
	if len(want) == 0 {
		return out, nil
	}
	// One git process for the whole page; hashes it does not have are
	// passed over (--ignore-missing). Each is a checked hex hash, so none
	// reads as an option.
	args := append([]string{"log", "--no-walk=unsorted", "--ignore-missing", "--format=%H%x00%an%x00%s%x1e"}, want...)
	data, err := (gitCmd{dir: d, args: args}).run(ctx)
	if err != nil {
		return out, err
	}
	for _, rec := range strings.Split(string(data), "\x1e") {
		f := strings.SplitN(strings.TrimLeft(rec, "\n"), "\x00", 3)
		if len(f) == 3 {
			out[f[0]] = Commit{SHA: f[0], Author: f[1], Subject: f[2]}
		}
	}
	return out, nil
}
