// Package source is the first stage of scangate's pipelines: it hosts git
// repositories, watches external ones, and tells the pipeline layer which
// commit to build.
//
// Hosted repositories are bare repositories under one folder, served over
// git's smart HTTP protocol by git itself: ServeHTTP checks the request's
// token and hands it to `git http-backend` through net/http/cgi. Reusing
// the reference implementation keeps every protocol detail (versions 0 and
// 2, side-band progress, shallow clones, gzip request bodies, atomic ref
// updates) right for free; a Go reimplementation of receive-pack would be
// the largest and riskiest part of this package. Go's CGI handler refuses
// chunked request bodies, which git sends for any push larger than its
// http.postBuffer, so such bodies are first spooled to a temporary file
// whose size is then known.
//
// A token limited to some repositories (auth.Scope) is refused the others
// with 403, clone and push alike. The branches pipelines build
// (Options.Protected) refuse non-fast-forward pushes and deletions from
// tokens that are not admins, through a pre-receive hook whose reasons are
// put in git's own report (protect.go).
//
// A push is reported by comparing the repository's refs before and after
// git-receive-pack runs, with pushes to one repository serialized so the
// difference is exactly that push's. The report is not durable: the refs
// change inside git before Options.OnPush is called, so a crash in between,
// or an OnPush that fails, loses the notification. The server therefore
// calls Repos.Heads when it starts and gives every branch head to the
// pipeline layer, which starts the executions it has not seen. Refs are
// read with go-git's storage package, in process, rather than by running
// `git for-each-ref` twice per push.
//
// External repositories are fetched into bare caches under root/.remotes,
// one per repository (named by a hash of its RepoKey, so its HTTPS and SSH
// URLs share one), so that a build context can be archived from them as
// from a hosted repository. Only http, https, ssh and git URLs are taken:
// file:// would let a pipeline definition read the server's own files, and
// git's ext:: transport runs commands. Their changes are found by a
// Poller (`git ls-remote` on a timer) or announced by a forge's push
// webhook (GitHub, GitLab, Gitea; see WebhookHandler). Credentials may be
// part of a remote URL; they are given to git through its environment, not
// its command line, and are removed from every log line and error.
package source
