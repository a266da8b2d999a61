package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/lazyregexp"
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
// ssh and git:// URLs are pinned too, each in its own way: ssh is told to
// connect to the address checked (-o Hostname) while it keeps checking the
// host key under the repository's name (-o HostKeyAlias), and a git://
// URL is rewritten (url.<pinned>.insteadOf) to name the address itself,
// which git's daemon protocol allows (it authenticates nothing, so the
// name it was given matters to no one). Only an operator's own ssh variant
// (GIT_SSH_VARIANT other than ssh), whose options are not OpenSSH's, goes
// unpinned.

// resolveTimeout bounds the lookup of a repository's host.
const resolveTimeout = 10 * time.Second

// transport is how git reaches an external repository.
type transport int

const (
	transportWeb transport = iota // http or https, through curl
	transportSSH                  // ssh:// or scp-like host:path
	transportGit                  // git://, git's own daemon protocol
)

// remoteHost returns the host and port (0 if none is given) an external
// repository URL names, and how git connects to it.
func remoteHost(raw string) (host string, port int, how transport, err error) {
	if h, _, ok := scpLike(raw); ok {
		return h, 0, transportSSH, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return "", 0, 0, fmt.Errorf("repository URL %q: no host: %w", Redact(raw), ErrInvalid)
	}
	if p := u.Port(); p != "" {
		if _, err := fmt.Sscanf(p, "%d", &port); err != nil || port < 1 || port > 65535 {
			return "", 0, 0, fmt.Errorf("repository URL %q: port %q: %w", Redact(raw), p, ErrInvalid)
		}
	}
	switch u.Scheme {
	case "http", "https":
		how = transportWeb
		if port == 0 {
			port = 443
			if u.Scheme == "http" {
				port = 80
			}
		}
	case "git":
		how = transportGit
		if port == 0 {
			port = 9418
		}
	default:
		how = transportSSH
	}
	return u.Hostname(), port, how, nil
}

// pin is what holds git to the addresses checked: configuration, and
// environment variables set after remote's.
type pin struct {
	config []kv
	env    []string
}

// hostName matches the host names and addresses pinning writes into an
// ssh command line (which a shell reads) and a git configuration key.
var hostName = lazyregexp.New(`^[A-Za-z0-9._:-]+$`)

// reach checks that the external repository raw is one git may connect
// to, and returns what pins git to the addresses checked.
func (r *Repos) reach(ctx context.Context, raw string) (pin, error) {
	host, port, how, err := remoteHost(raw)
	if err != nil {
		return pin{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := r.egress().Resolve(ctx, host)
	if err != nil {
		return pin{}, err
	}
	if !hostName.MatchString(host) {
		return pin{}, fmt.Errorf("repository URL %q: host %q: %w", Redact(raw), host, ErrInvalid)
	}
	switch how {
	case transportSSH:
		if v := os.Getenv("GIT_SSH_VARIANT"); v != "" && v != "ssh" {
			return pin{}, nil
		}
		// One address: ssh takes one Hostname. The host key stays the
		// name's, so a rebinding to another server fails its check too.
		return pin{env: []string{"GIT_SSH_COMMAND=" + sshCommand() +
			" -o Hostname=" + addrs[0].String() + " -o HostKeyAlias=" + host}}, nil
	case transportGit:
		u, err := url.Parse(raw)
		if err != nil {
			return pin{}, fmt.Errorf("repository URL %q: %w", Redact(raw), ErrInvalid)
		}
		pinned := "git://" + net.JoinHostPort(addrs[0].String(), fmt.Sprint(port)) + "/"
		return pin{config: []kv{{"url." + pinned + ".insteadOf", "git://" + u.Host + "/"}}}, nil
	}
	list := make([]string, len(addrs))
	for i, a := range addrs {
		list[i] = a.String()
		if a.Is6() {
			list[i] = "[" + list[i] + "]"
		}
	}
	return pin{config: []kv{
		{"http.curloptResolve", net.JoinHostPort(host, fmt.Sprint(port)) + ":" + strings.Join(list, ",")},
		{"http.followRedirects", "false"},
		{"remote.src.proxy", ""},
	}}, nil
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
