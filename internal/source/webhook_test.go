package source_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/scangate/scangate/internal/source"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/storetest"
)

const hookSecret = "It's a Secret to Everybody"

// sample is one forge's sample push payload and what it says.
type sample struct {
	forge source.Forge
	file  string
	want  source.Push
}

var samples = []sample{
	{source.GitHub, "github-push.json", source.Push{Repo: "https://github.com/Codertocat/Hello-World.git", Ref: "refs/heads/main",
		Old: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", New: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", External: true, Via: "webhook"}},
	{source.GitLab, "gitlab-push.json", source.Push{Repo: "http://example.com/mike/diaspora.git", Ref: "refs/heads/master",
		Old: "95790bf891e76fee5e1747ab589903a6a1f80f22", New: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", External: true, Via: "webhook"}},
	{source.Gitea, "gitea-push.json", source.Push{Repo: "https://gitea.example.com/gitea/webhooks.git", Ref: "refs/heads/develop",
		Old: "28e1879d029cb852e4844d9c718537df08844e03", New: "bffeb74224043ba2feb48d137756c8a9331c449a", External: true, Via: "webhook"}},
}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hmacHex(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// signed returns a forge's push request for body, its proof made with
// secret, as the forge sends it.
func signed(forge source.Forge, body []byte, secret string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	switch forge {
	case source.GitHub:
		h.Set("X-GitHub-Event", "push")
		h.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
		h.Set("X-Hub-Signature-256", "sha256="+hmacHex(secret, body))
	case source.GitLab:
		h.Set("X-Gitlab-Event", "Push Hook")
		h.Set("X-Gitlab-Token", secret)
	case source.Gitea:
		// Gitea sends GitHub's and Gogs's headers too.
		h.Set("X-Gitea-Event", "push")
		h.Set("X-GitHub-Event", "push")
		h.Set("X-Gogs-Event", "push")
		h.Set("X-Gitea-Signature", hmacHex(secret, body))
		h.Set("X-Hub-Signature-256", "sha256="+hmacHex(secret, body))
	}
	return h
}

// hookServer serves WebhookHandler; only the three sample repositories
// have a secret.
func hookServer(t *testing.T, s *server) *httptest.Server {
	known := map[string]bool{}
	for _, smp := range samples {
		known[source.RepoKey(smp.want.Repo)] = true
	}
	h := s.repos.WebhookHandler(func(u string) string {
		if known[source.RepoKey(u)] {
			return hookSecret
		}
		return ""
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, url string, h http.Header, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Each forge's push webhook is taken with a good signature or token and
// refused with a bad one.
func TestWebhooks(t *testing.T) {
	s := newServer(t, source.Options{})
	srv := hookServer(t, s)
	for _, smp := range samples {
		body := readSample(t, smp.file)
		if code := post(t, srv.URL, signed(smp.forge, body, hookSecret), body); code != http.StatusNoContent {
			t.Fatalf("%s, good signature: %d, want 204", smp.forge, code)
		}
		if p := s.nextPush(); p != smp.want {
			t.Errorf("%s: push = %+v, want %+v", smp.forge, p, smp.want)
		}
		if code := post(t, srv.URL, signed(smp.forge, body, "wrong secret"), body); code != http.StatusForbidden {
			t.Errorf("%s, bad signature: %d, want 403", smp.forge, code)
		}
		if smp.forge != source.GitLab { // GitLab's token signs nothing
			tampered := bytes.Replace(body, []byte(smp.want.New), []byte(strings.Repeat("a", 40)), 1)
			if code := post(t, srv.URL, signed(smp.forge, body, hookSecret), tampered); code != http.StatusForbidden {
				t.Errorf("%s, tampered body: %d, want 403", smp.forge, code)
			}
		}
		h := signed(smp.forge, body, hookSecret)
		for _, k := range []string{"X-Hub-Signature-256", "X-Gitlab-Token", "X-Gitea-Signature"} {
			h.Del(k)
		}
		if code := post(t, srv.URL, h, body); code != http.StatusForbidden {
			t.Errorf("%s, no signature: %d, want 403", smp.forge, code)
		}
		s.noPush()
	}
}

func TestWebhookRefusals(t *testing.T) {
	s := newServer(t, source.Options{})
	srv := hookServer(t, s)
	gh := readSample(t, "github-push.json")

	// GitHub's form encoding.
	form := []byte("payload=" + url.QueryEscape(string(gh)))
	h := signed(source.GitHub, form, hookSecret)
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	if code := post(t, srv.URL, h, form); code != http.StatusNoContent {
		t.Errorf("form-encoded push: %d, want 204", code)
	}
	s.nextPush()

	other := bytes.ReplaceAll(gh, []byte("Codertocat/Hello-World"), []byte("someone/else"))
	deep := []byte(strings.Repeat("[", 100) + strings.Repeat("]", 100))
	big := append(bytes.Repeat([]byte(" "), source.MaxWebhookBody), gh...)
	noRef := bytes.Replace(gh, []byte(`"ref": "refs/heads/main"`), []byte(`"ref": "main"`), 1)
	for _, c := range []struct {
		name   string
		h      http.Header
		body   []byte
		status int
	}{
		{"unwatched repository", signed(source.GitHub, other, hookSecret), other, http.StatusForbidden},
		{"not JSON", signed(source.GitHub, []byte("{"), hookSecret), []byte("{"), http.StatusBadRequest},
		{"too deep", signed(source.GitHub, deep, hookSecret), deep, http.StatusBadRequest},
		{"too big", signed(source.GitHub, big, hookSecret), big, http.StatusRequestEntityTooLarge},
		{"short ref", signed(source.GitHub, noRef, hookSecret), noRef, http.StatusBadRequest},
		{"no forge", http.Header{"Content-Type": {"application/json"}}, gh, http.StatusBadRequest},
		{"ping", http.Header{"X-GitHub-Event": {"ping"}}, []byte(`{"zen":"Keep it logically awesome."}`), http.StatusAccepted},
		{"tag push hook", http.Header{"X-Gitlab-Event": {"Tag Push Hook"}}, []byte(`{}`), http.StatusAccepted},
		{"XML", http.Header{"X-GitHub-Event": {"push"}, "Content-Type": {"application/xml"}}, gh, http.StatusUnsupportedMediaType},
	} {
		if code := post(t, srv.URL, c.h, c.body); code != c.status {
			t.Errorf("%s: %d, want %d", c.name, code, c.status)
		}
	}
	s.noPush()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}

	// An OnPush error is a 500, for the forge to redeliver.
	failing := newServer(t, source.Options{OnPush: func(context.Context, source.Push) error { return fmt.Errorf("down") }})
	fsrv := hookServer(t, failing)
	if code := post(t, fsrv.URL, signed(source.GitHub, gh, hookSecret), gh); code != http.StatusInternalServerError {
		t.Errorf("OnPush error: %d, want 500", code)
	}
}

func TestParsePushWebhook(t *testing.T) {
	for _, smp := range samples {
		ev, err := source.ParsePushWebhook(smp.forge, readSample(t, smp.file))
		if err != nil {
			t.Errorf("%s: %v", smp.forge, err)
			continue
		}
		want := source.PushEvent{Forge: smp.forge, Ref: smp.want.Ref, Before: smp.want.Old, After: smp.want.New, CloneURL: smp.want.Repo}
		if ev != want {
			t.Errorf("%s: %+v, want %+v", smp.forge, ev, want)
		}
	}
	for _, body := range []string{
		``, `null`, `[]`, `"x"`, `{}`,
		`{"ref":"refs/heads/main","before":"` + source.ZeroHash + `","after":"` + source.ZeroHash + `"}`,
		`{"ref":"refs/heads/main","before":"` + source.ZeroHash + `","after":"` + source.ZeroHash + `","repository":{"clone_url":"file:///etc"}}`,
		`{"ref":"refs/heads/main","before":"` + source.ZeroHash + `","after":"` + source.ZeroHash + `","repository":{"clone_url":"https://u:p@h/r"}}`,
		`{"ref":"refs/heads/../x","before":"` + source.ZeroHash + `","after":"` + source.ZeroHash + `","repository":{"clone_url":"https://h/r"}}`,
		`{"ref":"refs/heads/main","before":"abc","after":"` + source.ZeroHash + `","repository":{"clone_url":"https://h/r"}}`,
	} {
		if _, err := source.ParsePushWebhook(source.GitHub, []byte(body)); err == nil {
			t.Errorf("ParsePushWebhook(%s) took it", body)
		}
	}
	if _, err := source.ParsePushWebhook("bitbucket", readSample(t, "github-push.json")); err == nil {
		t.Error("an unknown forge was taken")
	}
}

// FuzzParsePushWebhook checks that the parser never panics and that what
// it accepts is whole.
func FuzzParsePushWebhook(f *testing.F) {
	for i, smp := range samples {
		f.Add(uint8(i), readSample(f, smp.file))
	}
	f.Add(uint8(0), []byte(`{"ref":"refs/heads/a","before":"`+source.ZeroHash+`","after":"`+source.ZeroHash+`","repository":{"clone_url":"https://h/r"}}`))
	f.Add(uint8(1), []byte(`{"project":{"git_http_url":"http://h/r.git"},"repository":null}`))
	f.Add(uint8(2), []byte(`[[[[{"ref":"\u0000"}]]]]`))
	forges := []source.Forge{source.GitHub, source.GitLab, source.Gitea}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		forge := forges[int(which)%len(forges)]
		ev, err := source.ParsePushWebhook(forge, body)
		if err != nil {
			return
		}
		if ev.Forge != forge || !strings.HasPrefix(ev.Ref, "refs/") || len(ev.Before) != 40 || len(ev.After) != 40 {
			t.Fatalf("accepted an incomplete event %+v", ev)
		}
		u, err := url.Parse(ev.CloneURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			t.Fatalf("accepted clone URL %q", ev.CloneURL)
		}
		if source.CheckURL(ev.CloneURL) != nil {
			t.Fatalf("accepted clone URL %q that CheckURL refuses", ev.CloneURL)
		}
	})
}

// A delivery the forge sends again (GitHub's X-GitHub-Delivery, GitLab's
// X-Gitlab-Event-UUID, Gitea's X-Gitea-Delivery) is taken and ignored; one
// that could not be told (OnPush failed) is taken when redelivered; one
// with a bad signature records nothing; ids older than a week are
// forgotten.
func TestWebhookDeliveredTwice(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenDatabase(ctx, storetest.Database(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var mu sync.Mutex
	fail := false
	s := newServer(t, source.Options{Store: st})
	reported := s.pushes
	s2 := newServer(t, source.Options{Store: st, OnPush: func(_ context.Context, p source.Push) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return fmt.Errorf("database is down")
		}
		reported <- p
		return nil
	}})
	srv, srv2 := hookServer(t, s), hookServer(t, s2)
	ids := map[source.Forge][2]string{
		source.GitHub: {"X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		source.GitLab: {"X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e"},
		source.Gitea:  {"X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"},
	}
	for _, smp := range samples {
		body := readSample(t, smp.file)
		h := signed(smp.forge, body, hookSecret)
		h.Set(ids[smp.forge][0], ids[smp.forge][1])
		bad := signed(smp.forge, body, "wrong secret")
		bad.Set(ids[smp.forge][0], ids[smp.forge][1])
		if code := post(t, srv.URL, bad, body); code != http.StatusForbidden {
			t.Fatalf("%s, bad signature: %d, want 403", smp.forge, code)
		}
		if code := post(t, srv.URL, h, body); code != http.StatusNoContent {
			t.Fatalf("%s: %d, want 204", smp.forge, code)
		}
		if p := s.nextPush(); p != smp.want {
			t.Errorf("%s: push %+v, want %+v", smp.forge, p, smp.want)
		}
		if code := post(t, srv.URL, h, body); code != http.StatusAccepted {
			t.Errorf("%s, the same delivery again: %d, want 202", smp.forge, code)
		}
		s.noPush()
	}

	// A delivery that failed is taken when the forge sends it again.
	body := readSample(t, "github-push.json")
	h := signed(source.GitHub, body, hookSecret)
	h.Set("X-GitHub-Delivery", "a-failed-one")
	mu.Lock()
	fail = true
	mu.Unlock()
	if code := post(t, srv2.URL, h, body); code != http.StatusInternalServerError {
		t.Fatalf("OnPush failing: %d, want 500", code)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	if code := post(t, srv2.URL, h, body); code != http.StatusNoContent {
		t.Fatalf("redelivered after a failure: %d, want 204", code)
	}
	s.nextPush()

	// A week later the ids are forgotten.
	if _, err := st.Writer().Exec(`UPDATE webhook_deliveries SET received_at = '2020-01-01T00:00:00Z' WHERE delivery_id <> 'a-failed-one'`); err != nil {
		t.Fatal(err)
	}
	h.Set("X-GitHub-Delivery", "one-more")
	if code := post(t, srv.URL, h, body); code != http.StatusNoContent {
		t.Fatalf("a new delivery: %d, want 204", code)
	}
	s.nextPush()
	var n int
	if err := st.Reader().QueryRow(`SELECT count(*) FROM webhook_deliveries`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d delivery ids kept, want the 2 of this week", n)
	}
}
