package source

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// Forge is a git hosting service whose push webhooks scangate takes.
type Forge string

// The forges WebhookHandler knows.
const (
	GitHub Forge = "github"
	GitLab Forge = "gitlab"
	Gitea  Forge = "gitea" // and Forgejo, which sends Gitea's headers
)

// MaxWebhookBody bounds a webhook's body; GitHub caps its payloads at 25
// MB, but a push's is a few kilobytes unless it carries hundreds of commits,
// and only four of its fields are read.
const MaxWebhookBody = 1 << 20

// unknownSecret is what a webhook for a repository no pipeline watches is
// checked against, so that it costs what a watched one does.
var unknownSecret = rand.Text()

// maxJSONDepth bounds the nesting of a webhook's JSON; the forges' push
// payloads nest five deep.
const maxJSONDepth = 32

// PushEvent is what a forge's push webhook says.
type PushEvent struct {
	Forge Forge
	// Ref is the full ref pushed, such as refs/heads/main.
	Ref string
	// Before and After are the commits the ref named before and after the
	// push; ZeroHash for a created or deleted ref.
	Before, After string
	// CloneURL is the repository's HTTP(S) clone URL.
	CloneURL string
}

// hookPayload holds the fields of the three forges' push payloads that
// scangate reads.
type hookPayload struct {
	Ref        string `json:"ref"`
	Before     string `json:"before"`
	After      string `json:"after"`
	Repository *struct {
		CloneURL   string `json:"clone_url"`    // GitHub, Gitea
		GitHTTPURL string `json:"git_http_url"` // GitLab's older field
	} `json:"repository"`
	Project *struct {
		GitHTTPURL string `json:"git_http_url"` // GitLab
	} `json:"project"`
}

// ParsePushWebhook reads a push webhook's JSON payload from forge. It
// checks what it returns: a valid ref, full commit hashes, and an http or
// https clone URL.
func ParsePushWebhook(forge Forge, body []byte) (PushEvent, error) {
	if len(body) > MaxWebhookBody {
		return PushEvent{}, fmt.Errorf("webhook payload larger than %d bytes", MaxWebhookBody)
	}
	if err := checkDepth(body, maxJSONDepth); err != nil {
		return PushEvent{}, err
	}
	var p hookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return PushEvent{}, fmt.Errorf("webhook payload: %w", err)
	}
	ev := PushEvent{Forge: forge, Ref: p.Ref, Before: p.Before, After: p.After}
	switch forge {
	case GitHub, Gitea:
		if p.Repository != nil {
			ev.CloneURL = p.Repository.CloneURL
		}
	case GitLab:
		if p.Project != nil {
			ev.CloneURL = p.Project.GitHTTPURL
		}
		if ev.CloneURL == "" && p.Repository != nil {
			ev.CloneURL = p.Repository.GitHTTPURL
		}
	default:
		return PushEvent{}, fmt.Errorf("unknown forge %q", forge)
	}
	if err := ev.check(); err != nil {
		return PushEvent{}, fmt.Errorf("webhook payload: %w", err)
	}
	return ev, nil
}

// check tells a complete push event.
func (ev PushEvent) check() error {
	if !strings.HasPrefix(ev.Ref, "refs/") || validRef(ev.Ref) != nil {
		return fmt.Errorf("ref %q: want a full ref name", ev.Ref)
	}
	if !isCommitHash(ev.Before) || !isCommitHash(ev.After) {
		return fmt.Errorf("before %q and after %q: want full commit hashes", ev.Before, ev.After)
	}
	if err := CheckURL(ev.CloneURL); err != nil {
		return fmt.Errorf("clone URL: %w", err)
	}
	if u, _ := url.Parse(ev.CloneURL); u == nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil {
		return fmt.Errorf("clone URL %q: want http or https, without credentials", Redact(ev.CloneURL))
	}
	return nil
}

// checkDepth refuses JSON nested deeper than max, before it is decoded.
func checkDepth(b []byte, max int) error {
	depth, inString, escaped := 0, false, false
	for _, c := range b {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString:
			inString = c != '"'
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > max {
				return fmt.Errorf("webhook payload nested deeper than %d", max)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// hook is a webhook request's forge, event, credential and delivery id.
type hook struct {
	forge    Forge
	event    string
	push     bool   // whether event is a push
	proof    string // the signature or token the request carries
	delivery string // the forge's id of this delivery, the same when sent again; "" if none
}

// detect tells the forge of a webhook request by its headers. Gitea also
// sends GitHub's, so it is asked first.
func detect(h http.Header) (hook, bool) {
	switch {
	case h.Get("X-Gitea-Event") != "":
		e := h.Get("X-Gitea-Event")
		return hook{Gitea, e, e == "push", h.Get("X-Gitea-Signature"), h.Get("X-Gitea-Delivery")}, true
	case h.Get("X-Gitlab-Event") != "":
		e := h.Get("X-Gitlab-Event")
		return hook{GitLab, e, e == "Push Hook", h.Get("X-Gitlab-Token"), h.Get("X-Gitlab-Event-UUID")}, true
	case h.Get("X-GitHub-Event") != "":
		e := h.Get("X-GitHub-Event")
		return hook{GitHub, e, e == "push", h.Get("X-Hub-Signature-256"), h.Get("X-GitHub-Delivery")}, true
	}
	return hook{}, false
}

// verify checks the request's signature (GitHub, Gitea: HMAC-SHA256 of the
// body) or token (GitLab) against secret.
func (k hook) verify(body []byte, secret string) bool {
	switch k.forge {
	case GitLab:
		return subtle.ConstantTimeCompare([]byte(k.proof), []byte(secret)) == 1
	case GitHub:
		sig, ok := strings.CutPrefix(k.proof, "sha256=")
		return ok && macEqual(body, secret, sig)
	case Gitea:
		return macEqual(body, secret, k.proof)
	}
	return false
}

// macEqual tells whether sig is the hex HMAC-SHA256 of body with secret.
func macEqual(body []byte, secret, sig string) bool {
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// payload returns the JSON of a webhook body: the body itself, or the
// "payload" field of a form (GitHub's and Gitea's other content type).
func payload(contentType string, body []byte) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch mt {
	case "application/json", "":
		return body, nil
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("webhook form: %w", err)
		}
		if len(form["payload"]) != 1 {
			return nil, errors.New(`webhook form: want one "payload" field`)
		}
		return []byte(form.Get("payload")), nil
	}
	return nil, fmt.Errorf("webhook content type %q: want application/json", mt)
}

// WebhookHandler takes the push webhooks of GitHub, GitLab and Gitea and
// tells Options.OnPush of each push, as Push{Repo: clone URL, External:
// true}. secretFor returns the secret of the repository at a clone URL
// (match it with RepoKey), "" if no pipeline watches it. Other events (GitHub's ping) are answered 202 and
// otherwise ignored, as is a delivery taken before (by its forge's
// delivery id, with Options.Store). A push for a repository no pipeline
// watches is refused as an unsigned one is (403, the same body). An OnPush error is a 500, so that the
// forge shows the delivery as failed and it can be redelivered.
func (r *Repos) WebhookHandler(secretFor func(url string) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		k, ok := detect(req.Header)
		if !ok {
			http.Error(w, "not a GitHub, GitLab or Gitea webhook: no X-GitHub-Event, X-Gitlab-Event or X-Gitea-Event header", http.StatusBadRequest)
			return
		}
		if !k.push {
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprintf(w, "event %q ignored: scangate takes push events\n", k.event)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxWebhookBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, fmt.Sprintf("webhook body larger than %d bytes", MaxWebhookBody), http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "cannot read the webhook body", http.StatusBadRequest)
			return
		}
		r.serveHook(w, req, k, body, secretFor)
	})
}

// serveHook checks and reports one push webhook.
func (r *Repos) serveHook(w http.ResponseWriter, req *http.Request, k hook, body []byte, secretFor func(string) string) {
	js, err := payload(req.Header.Get("Content-Type"), body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
		return
	}
	ev, err := ParsePushWebhook(k.forge, bytes.TrimSpace(js))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// A repository no pipeline watches and a request without the right
	// signature get the same answer, after the same work (a signature is
	// checked against a throwaway secret), so that nobody can learn which
	// repositories scangate builds by asking.
	secret := secretFor(ev.CloneURL)
	known := secret != ""
	if !known {
		secret = unknownSecret
	}
	if !k.verify(body, secret) || !known {
		r.logger().Warn("source: webhook refused", "forge", k.forge, "url", Redact(ev.CloneURL), "watched", known, "remote", req.RemoteAddr)
		http.Error(w, "webhook refused: bad signature or token, or no pipeline watches the repository", http.StatusForbidden)
		return
	}
	ctx := context.WithoutCancel(req.Context())
	// A delivery is claimed once it is known to be the forge's, never
	// before: an unsigned request must not use up a delivery's id.
	claimed := k.delivery != "" && r.opts.Store != nil
	if claimed {
		if len(k.delivery) > maxDeliveryID {
			http.Error(w, fmt.Sprintf("delivery id longer than %d bytes", maxDeliveryID), http.StatusBadRequest)
			return
		}
		fresh, err := r.claimDelivery(ctx, k.forge, k.delivery)
		if err != nil {
			r.logger().Error("source: webhook delivery", "forge", k.forge, "delivery", k.delivery, "err", err)
			http.Error(w, "the delivery could not be recorded; redeliver it", http.StatusInternalServerError)
			return
		}
		if !fresh {
			r.logger().Info("source: webhook delivery taken before; ignored", "forge", k.forge, "delivery", k.delivery, "url", ev.CloneURL)
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprintf(w, "delivery %s was taken before: ignored\n", k.delivery)
			return
		}
	}
	p := Push{Repo: ev.CloneURL, Ref: ev.Ref, Old: ev.Before, New: ev.After, External: true, Via: "webhook"}
	r.logger().Info("source: webhook push", "forge", k.forge, "delivery", k.delivery, "push", p.String())
	if err := r.notify(ctx, p); err != nil {
		if claimed {
			r.releaseDelivery(ctx, k.forge, k.delivery)
		}
		http.Error(w, "the push could not be recorded; redeliver it", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
