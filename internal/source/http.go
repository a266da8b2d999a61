package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cgi"
	"os"
	"path/filepath"
	"strings"

	"github.com/scangate/scangate/internal/auth"
)

// PathPrefix is where ServeHTTP expects git's requests: a repository NAME
// is cloned from PathPrefix + NAME + ".git".
const PathPrefix = "/git/"

// The smart HTTP services.
const (
	uploadPack  = "git-upload-pack"  // clone and fetch
	receivePack = "git-receive-pack" // push
)

// gitRequest is a smart HTTP request's meaning.
type gitRequest struct {
	repo    string // the repository's name
	service string // uploadPack or receivePack
	advert  bool   // GET info/refs rather than POST to the service
}

// parseGitPath reads /git/NAME.git/info/refs?service=S, /git/NAME.git/S,
// and the same without ".git", as GitHub allows. The dumb protocol's paths
// (objects/..., HEAD) are not served.
func parseGitPath(p, service string) (gitRequest, bool) {
	rest, ok := strings.CutPrefix(p, PathPrefix)
	if !ok {
		return gitRequest{}, false
	}
	var g gitRequest
	switch {
	case strings.HasSuffix(rest, "/info/refs"):
		rest = strings.TrimSuffix(rest, "/info/refs")
		g.service, g.advert = service, true
	case strings.HasSuffix(rest, "/"+uploadPack):
		rest, g.service = strings.TrimSuffix(rest, "/"+uploadPack), uploadPack
	case strings.HasSuffix(rest, "/"+receivePack):
		rest, g.service = strings.TrimSuffix(rest, "/"+receivePack), receivePack
	default:
		return gitRequest{}, false
	}
	if g.service != uploadPack && g.service != receivePack {
		return gitRequest{}, false
	}
	g.repo = strings.TrimSuffix(rest, ".git")
	return g, ValidName(g.repo) == nil
}

// backendPath is the path git http-backend is given for g.
func (g gitRequest) backendPath() string {
	if g.advert {
		return PathPrefix + g.repo + ".git/info/refs"
	}
	return PathPrefix + g.repo + ".git/" + g.service
}

// need is the role g needs.
func (g gitRequest) need() auth.Role {
	if g.service == receivePack {
		return auth.RolePusher
	}
	return auth.RoleReader
}

// ServeHTTP serves git's smart HTTP protocol at PathPrefix: clone and fetch
// with a reader token, push with a pusher token. Requests without a token
// are asked for one (401 with a Basic challenge), so that git sends the
// token of a URL such as http://x:TOKEN@host/git/app.git.
func (r *Repos) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	g, ok := parseGitPath(req.URL.Path, req.URL.Query().Get("service"))
	if !ok {
		http.Error(w, "not a git smart HTTP path: want "+PathPrefix+"NAME.git/info/refs?service=..., /git-upload-pack or /git-receive-pack", http.StatusNotFound)
		return
	}
	if want := map[bool]string{true: http.MethodGet, false: http.MethodPost}[g.advert]; req.Method != want {
		w.Header().Set("Allow", want)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	user, tok, ok := r.authorize(w, req, g.need())
	if !ok {
		return
	}
	if !tok.Grants(g.repo) {
		// The same answer as for a repository that is not there would hide
		// that it is; but the token's holder knows its own scope, and a
		// clear refusal is what they can act on.
		r.logger().Warn("audit: git request refused", "token", tok.Name, "repo", g.repo, "service", g.service,
			"reason", "not in the token's repositories")
		http.Error(w, fmt.Sprintf("token %s is not granted repository %s (its repositories: %s)", tok.Name, g.repo, tok.Repositories), http.StatusForbidden)
		return
	}
	d, err := r.existing(g.repo)
	if err != nil {
		http.Error(w, "repository not found", http.StatusNotFound)
		return
	}
	if !g.advert {
		// A push's body is always read first, so that a slow client does
		// not hold the repository's push lock.
		max := r.opts.MaxBodyBytes
		if g.service == uploadPack {
			max = r.opts.MaxUploadPackBytes
		}
		done, ok := r.spool(w, req, g.service == receivePack, max)
		if !ok {
			return
		}
		defer done()
	}
	if g.service == receivePack && !g.advert {
		r.receive(w, req, g, d, tok)
		return
	}
	r.backend(w, req, g, user, nil)
}

// authorize checks that the request's token has the role need, answering
// the request itself when it does not. user is the token's name, "" for an
// anonymous read (whose tok is the zero Token, granted every repository).
func (r *Repos) authorize(w http.ResponseWriter, req *http.Request, need auth.Role) (user string, tok auth.Token, ok bool) {
	secret, has := auth.Secret(req)
	if u, pw, basic := req.BasicAuth(); basic && pw == "" && strings.HasPrefix(u, auth.Prefix) {
		secret = u // http://TOKEN@host/..., as GitHub allows
	}
	if !has || secret == "" {
		if need == auth.RoleReader && r.opts.AnonymousRead {
			return "", auth.Token{}, true
		}
		challenge(w, "authentication required: use a scangate token as the password")
		return "", auth.Token{}, false
	}
	if r.tokens == nil {
		challenge(w, "invalid token")
		return "", auth.Token{}, false
	}
	tok, err := r.tokens.Verify(req.Context(), secret)
	if errors.Is(err, auth.ErrInvalid) {
		challenge(w, "invalid token")
		return "", auth.Token{}, false
	}
	if err != nil {
		r.logger().Error("git: check a token", "err", err)
		http.Error(w, "cannot check the token", http.StatusInternalServerError)
		return "", auth.Token{}, false
	}
	if !tok.Role.Allows(need) {
		http.Error(w, fmt.Sprintf("token %s (%s) may not do this; it needs the %s role", tok.Name, tok.Role, need), http.StatusForbidden)
		return "", auth.Token{}, false
	}
	return tok.Name, tok, true
}

// challenge answers 401, asking for Basic credentials.
func challenge(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="scangate"`)
	http.Error(w, msg, http.StatusUnauthorized)
}

// spool bounds the request's body and, if its length is not known (git
// sends pushes larger than its http.postBuffer chunked) or always is set,
// copies it to a file first: Go's CGI handler refuses chunked bodies, and
// git http-backend needs CONTENT_LENGTH. The file is unlinked as soon as it
// is made, so nothing is left behind even if the process dies; done closes
// it. At most Options.MaxSpooled bodies are spooled at once: each holds a
// file of up to max bytes on disk, and a push's lock waits for none of it.
func (r *Repos) spool(w http.ResponseWriter, req *http.Request, always bool, max int64) (done func(), ok bool) {
	if req.ContentLength > max {
		http.Error(w, fmt.Sprintf("request body larger than %d bytes", max), http.StatusRequestEntityTooLarge)
		return nil, false
	}
	if req.ContentLength >= 0 && !always {
		req.Body = http.MaxBytesReader(w, req.Body, max)
		return func() {}, true
	}
	select {
	case r.spooling <- struct{}{}:
	default:
		r.logger().Warn("git: too many request bodies being received at once; one refused", "max", cap(r.spooling))
		w.Header().Set("Retry-After", "10")
		http.Error(w, "too many pushes being received at once: retry shortly", http.StatusServiceUnavailable)
		return nil, false
	}
	f, err := os.CreateTemp(r.spoolDir(), "body-")
	if err != nil {
		<-r.spooling
		r.logger().Error("git: spool a request body", "err", err)
		http.Error(w, "cannot spool the request body", http.StatusInternalServerError)
		return nil, false
	}
	unlinked := os.Remove(f.Name()) == nil
	done = func() {
		f.Close()
		if !unlinked {
			os.Remove(f.Name())
		}
		<-r.spooling
	}
	n, err := io.Copy(f, io.LimitReader(req.Body, max+1))
	if err == nil && n > max {
		err = fmt.Errorf("request body larger than %d bytes", max)
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		done()
		return nil, false
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		r.logger().Warn("git: spool a request body", "err", err)
		http.Error(w, "cannot read the request body", http.StatusBadRequest)
		done()
		return nil, false
	}
	req.Body, req.ContentLength, req.TransferEncoding = f, n, nil
	return done, true
}

func (r *Repos) spoolDir() string { return r.root + string(os.PathSeparator) + spoolDir }

// receive runs a push, one at a time per repository, and reports the refs
// it changed to OnPush in order, before the client's request ends. The
// repository's protected branches refuse what tok may not do to them (see
// protect.go).
func (r *Repos) receive(w http.ResponseWriter, req *http.Request, g gitRequest, d string, tok auth.Token) {
	user := tok.Name
	protected, err := r.protectedRefs(req.Context(), g.repo, tok.Role.Allows(auth.RoleAdmin))
	if err != nil {
		r.logger().Error("git: read the protected branches; the push is refused", "repo", g.repo, "err", err)
		http.Error(w, "cannot read the repository's protected branches", http.StatusInternalServerError)
		return
	}
	refusals, err := os.CreateTemp(r.spoolDir(), "refusals-")
	if err != nil {
		r.logger().Error("git: make a push's refusal file", "err", err)
		http.Error(w, "cannot receive the push", http.StatusInternalServerError)
		return
	}
	refusals.Close()
	defer os.Remove(refusals.Name())
	env := []string{"SCANGATE_PROTECTED=" + strings.Join(protected, " "), "SCANGATE_REFUSALS=" + refusals.Name(), "SCANGATE_GIT=" + r.git}
	unlock, err := r.lock(req.Context(), d)
	if err != nil {
		http.Error(w, "push cancelled", http.StatusServiceUnavailable)
		return
	}
	defer unlock()
	before, err := readRefs(d)
	if err != nil {
		r.logger().Error("git: read refs before a push", "repo", g.repo, "err", err)
		http.Error(w, "cannot read the repository's refs", http.StatusInternalServerError)
		return
	}
	// The answer's end is held back, so that what OnPush says of the
	// push reaches the pusher as "remote: …" (notes.go); before that, the
	// report is held back so that a protected branch's refusal says why
	// (protect.go).
	sideBand := false
	if rs, ok := req.Body.(io.ReadSeeker); ok {
		sideBand = asksSideBand(rs)
	}
	hw := &heldWriter{ResponseWriter: w}
	n := &notes{}
	defer func() { hw.finish(n, sideBand) }()
	rw := &reportWriter{ResponseWriter: hw}
	r.backend(rw, req, g, user, env)
	refused := readRefusals(refusals.Name())
	rw.finish(refused)
	for ref, reason := range refused {
		r.logger().Warn("audit: git push refused", "token", user, "repo", g.repo, "ref", ref, "reason", reason)
	}
	after, err := readRefs(d)
	if err != nil {
		r.logger().Error("git: read refs after a push; its heads are reported when the server starts", "repo", g.repo, "err", err)
		return
	}
	// The push has happened: a client that goes away now must not stop
	// its notification.
	ctx := context.WithValue(context.WithoutCancel(req.Context()), notesKey{}, n)
	for _, p := range diffRefs(g.repo, before, after) {
		p.Pusher = user
		r.logger().Info("git push", "repo", p.Repo, "ref", p.Ref, "old", p.Old, "new", p.New, "token", user)
		r.notify(ctx, p)
	}
}

// notify tells OnPush of p, logging its error.
func (r *Repos) notify(ctx context.Context, p Push) error {
	if r.opts.OnPush == nil {
		return nil
	}
	err := r.opts.OnPush(ctx, p)
	if err != nil {
		r.logger().Error("source: push notification failed", "push", p.String(), "err", err)
	}
	return err
}

// backend hands the request to git http-backend. Receive-pack is enabled
// only for a token the caller checked may push; the request's credentials
// are not passed on.
func (r *Repos) backend(w http.ResponseWriter, req *http.Request, g gitRequest, user string, extra []string) {
	in := req.Clone(req.Context())
	in.URL.Path, in.URL.RawPath = g.backendPath(), ""
	in.Header.Del("Authorization")
	in.Header.Del("Cookie")
	config := []kv{
		{"http.uploadpack", "true"},
		{"http.receivepack", fmt.Sprint(g.service == receivePack && user != "")},
		{"receive.fsckObjects", "true"},
		{"core.hooksPath", filepath.Join(r.root, hooksDir)},
	}
	env := append([]string{
		"GIT_PROJECT_ROOT=" + r.root,
		"GIT_HTTP_EXPORT_ALL=1",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull,
	}, ConfigEnv(config)...)
	if user != "" {
		// http-backend takes any REMOTE_USER, even empty, as a login.
		env = append(env, "REMOTE_USER="+user)
	}
	env = append(env, extra...)
	log := r.logger().With("repo", g.repo, "service", g.service)
	h := &cgi.Handler{
		Path:   r.git,
		Args:   []string{"http-backend"},
		Root:   strings.TrimSuffix(PathPrefix, "/"),
		Dir:    r.root,
		Env:    env,
		Logger: slog.NewLogLogger(log.Handler(), slog.LevelError),
		Stderr: logWriter{log},
	}
	h.ServeHTTP(w, in)
}

// logWriter logs what git http-backend writes to its standard error.
type logWriter struct{ log *slog.Logger }

func (l logWriter) Write(p []byte) (int, error) {
	if msg := strings.TrimSpace(string(p)); msg != "" {
		l.log.Warn("git http-backend", "stderr", msg)
	}
	return len(p), nil
}
