package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/egress"
)

// External repositories are fetched by the git binary, which resolves and
// connects on its own: Go's dialer, and the check egress makes in it,
// never see those connections. So before git runs, the repository's host
// is resolved here and its addresses checked (Options.Egress), and for
// http and https git is pinned to the addresses checked: curl's resolve
// list (http.curloptResolve, git 2.37) makes it connect there and nowhere
// else, whatever a second DNS answer would say. Redirects are not
// followed (they would name a host no one checked), and no proxy is used
// (a proxy connects where this check cannot see).
//
// For ssh and git:// URLs the host is checked the same way but git is not
// pinned: ssh and git's own TCP transport resolve the name again, so a DNS
// answer that changes between the check and the connection (rebinding) is
// not caught for them.

// resolveTimeout bounds the lookup of a repository's host.
const resolveTimeout = 10 * time.Second

// remoteHost returns the host and port (0 if none is given) an external
// repository URL names, and whether git connects to it over http(s).
func remoteHost(raw string) (host string, port int, web bool, err error) {
	if h, _, ok := scpLike(raw); ok {
		return h, 0, false, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return "", 0, false, fmt.Errorf("repository URL %q: no host: %w", Redact(raw), ErrInvalid)
	}
	if p := u.Port(); p != "" {
		if _, err := fmt.Sscanf(p, "%d", &port); err != nil || port < 1 || port > 65535 {
			return "", 0, false, fmt.Errorf("repository URL %q: port %q: %w", Redact(raw), p, ErrInvalid)
		}
	}
	web = u.Scheme == "http" || u.Scheme == "https"
	if web && port == 0 {
		port = 443
		if u.Scheme == "http" {
			port = 80
		}
	}
	return u.Hostname(), port, web, nil
}

// reach checks that the external repository raw is one git may connect
// to, and returns the configuration that pins git to the addresses
// checked.
func (r *Repos) reach(ctx context.Context, raw string) ([]kv, error) {
	host, port, web, err := remoteHost(raw)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := r.egress().Resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	if !web {
		return nil, nil
	}
	list := make([]string, len(addrs))
	for i, a := range addrs {
		list[i] = a.String()
		if a.Is6() {
			list[i] = "[" + list[i] + "]"
		}
	}
	return []kv{
		{"http.curloptResolve", net.JoinHostPort(host, fmt.Sprint(port)) + ":" + strings.Join(list, ",")},
		{"http.followRedirects", "false"},
		{"remote.src.proxy", ""},
	}, nil
}

func (r *Repos) egress() *egress.Guard {
	if r.opts.Egress != nil {
		return r.opts.Egress
	}
	return defaultEgress
}

// defaultEgress is the guard of Repos without Options.Egress: nothing but
// public addresses.
var defaultEgress = egress.New(nil)

// CheckRemote is the early check of an external repository's URL, when a
// pipeline names it: a host that is, or resolves now to, only addresses g
// refuses is an error (which names the host, not the URL's credentials).
// A name that does not resolve now passes; it is checked again at each
// fetch.
func CheckRemote(ctx context.Context, g *egress.Guard, raw string) error {
	host, _, _, err := remoteHost(raw)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = g.Resolve(ctx, host)
	if errors.Is(err, egress.ErrRefused) {
		return fmt.Errorf("repository %s: %w", Redact(raw), err)
	}
	return nil
}
