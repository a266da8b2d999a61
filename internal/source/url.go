package source

import (
	"fmt"
	"net/url"
	"strings"
)

// maxURLLen bounds an external repository's URL.
const maxURLLen = 2048

// CheckURL checks an external repository's URL: http, https, ssh or git, or
// SSH's scp-like user@host:path.
func CheckURL(raw string) error {
	if raw == "" || len(raw) > maxURLLen || strings.HasPrefix(raw, "-") {
		return fmt.Errorf("repository URL: want 1 to %d characters, not starting with '-': %w", maxURLLen, ErrInvalid)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] == 0x7f {
			return fmt.Errorf("repository URL %q: control character or space: %w", Redact(raw), ErrInvalid)
		}
	}
	if remoteHelper(raw) {
		// transport::address runs git's remote helper for transport.
		return fmt.Errorf("repository URL %q: remote helpers are not allowed: %w", Redact(raw), ErrInvalid)
	}
	if host, path, ok := scpLike(raw); ok {
		if !validHost(host) || path == "" {
			return fmt.Errorf("repository URL %q: bad host: %w", Redact(raw), ErrInvalid)
		}
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("repository URL %q: %w", Redact(raw), ErrInvalid)
	}
	switch u.Scheme {
	case "http", "https", "ssh", "git":
	default:
		return fmt.Errorf("repository URL %q: scheme %q: want http, https, ssh or git: %w", Redact(raw), u.Scheme, ErrInvalid)
	}
	if u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("repository URL %q: no host: %w", Redact(raw), ErrInvalid)
	}
	return nil
}

// remoteHelper tells git's transport::address form, as git reads it.
func remoteHelper(raw string) bool {
	i := 0
	for i < len(raw) && (isAlnum(raw[i]) || strings.IndexByte("+.-", raw[i]) >= 0) {
		i++
	}
	return strings.HasPrefix(raw[i:], "::")
}

// validHost checks an scp-like URL's host: a name or an IPv4 address (an
// IPv6 address needs the ssh:// form).
func validHost(h string) bool {
	if h == "" || h[0] == '-' {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !isAlnum(c) && c != '.' && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// scpLike splits SSH's user@host:path form, which has no scheme and a
// colon before any slash.
func scpLike(raw string) (host, path string, ok bool) {
	if strings.Contains(raw, "://") {
		return "", "", false
	}
	before, after, found := strings.Cut(raw, ":")
	if !found || strings.Contains(before, "/") {
		return "", "", false
	}
	if i := strings.LastIndex(before, "@"); i >= 0 {
		before = before[i+1:]
	}
	return before, after, true
}

// Redact returns raw without the credentials it may hold: the password,
// or a user name given alone (often a token, as GitHub allows).
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil || u.Scheme == "" {
		if scheme, rest, ok := strings.Cut(raw, "://"); ok {
			// Unparseable but with a scheme: drop anything before an @.
			hostEnd := strings.IndexAny(rest, "/?#")
			if hostEnd < 0 {
				hostEnd = len(rest)
			}
			if at := strings.LastIndex(rest[:hostEnd], "@"); at >= 0 {
				return scheme + "://xxxxx@" + rest[at+1:]
			}
		}
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	} else {
		u.User = url.User("xxxxx")
	}
	return u.String()
}

// redactor returns a function that removes raw's credentials from text
// git wrote, whatever form git printed the URL in.
func redactor(raw string) func(string) string {
	var secrets []string
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if pw, has := u.User.Password(); has && pw != "" {
			secrets = append(secrets, pw, url.QueryEscape(pw), url.PathEscape(pw))
		} else if name := u.User.Username(); name != "" {
			secrets = append(secrets, name, url.QueryEscape(name))
		}
	}
	return func(s string) string {
		s = strings.ReplaceAll(s, raw, Redact(raw))
		for _, sec := range secrets {
			if len(sec) >= 4 {
				s = strings.ReplaceAll(s, sec, "xxxxx")
			}
		}
		return s
	}
}

// RepoKey names the repository raw points at, the same for its HTTPS and
// SSH URLs and with or without credentials or ".git":
// https://x:t@GitHub.com/o/r.git and git@github.com:o/r both give
// github.com/o/r. Match pipelines to the pushes of a Poller or a webhook
// with it.
func RepoKey(raw string) string {
	var host, path string
	if h, p, ok := scpLike(raw); ok {
		host, path = h, p
	} else if u, err := url.Parse(raw); err == nil && u.Host != "" {
		host, path = u.Hostname(), u.Path
	} else {
		return strings.ToLower(strings.TrimSuffix(strings.Trim(raw, "/"), ".git"))
	}
	path = strings.TrimSuffix(strings.Trim(path, "/"), ".git")
	return strings.ToLower(host + "/" + path)
}
