// Package egress decides which addresses scangate may connect to when the
// address comes from a user: webhook targets of rules, and the URLs of
// external git sources. Without it, anyone allowed to put a rule or a
// pipeline could make the server reach what only the server can reach:
// its own API on 127.0.0.1, the cloud metadata service at 169.254.169.254,
// or hosts of the private network it runs in (server-side request forgery).
//
// The check is made on the address actually dialled, in the dialer's
// Control hook (Guard.Control, Guard.Transport), after DNS resolution: a
// name that resolved to a public address when the rule was put and to
// 127.0.0.1 when the webhook is sent (DNS rebinding) is refused then. The
// checks at put time (Guard.CheckURL) only give a clear error early.
//
// Which addresses are refused is code.dny.dev/ssrf's list, generated from
// IANA's special-purpose address registries: loopback, link-local (the
// metadata service), private (RFC 1918, fc00::/7), unspecified, multicast,
// shared (100.64.0.0/10), documentation and reserved ranges, and every
// IPv6 address outside global unicast 2000::/3 (which takes in IPv4-mapped
// forms such as ::ffff:127.0.0.1). An admin lets some of them through with
// an allow-list of prefixes (`scangate server --allow-private-targets`),
// as a deployment whose git server or chat lives on the private network
// needs to.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
)

// FlagName is the server's setting that allow-lists prefixes; errors name
// it, so that an admin knows what to change.
const FlagName = "--allow-private-targets"

// ErrRefused reports an address that may not be connected to.
var ErrRefused = errors.New("refused")

// RefusedError says which address was refused, and what kind it is.
type RefusedError struct {
	Addr netip.Addr
	Kind string // "a loopback address", "the cloud metadata address", ...
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s is %s, which scangate does not connect to (an admin may allow it with %s)", e.Addr, e.Kind, FlagName)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Guard checks addresses against the refused ranges and the allow-list.
// The zero Guard is not usable; make one with New.
type Guard struct {
	allow    []netip.Prefix
	g        *ssrf.Guardian
	resolver *net.Resolver // nil: net.DefaultResolver
}

// New returns a Guard that lets the allow-listed prefixes through.
func New(allow []netip.Prefix) *Guard {
	var v4, v6 []netip.Prefix
	for _, p := range allow {
		p = p.Masked()
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return &Guard{
		allow: allow,
		// Webhooks and git servers listen on any port; the networks are
		// the library's default, tcp4 and tcp6.
		g: ssrf.New(ssrf.WithAnyPort(), ssrf.WithAllowedV4Prefixes(v4...), ssrf.WithAllowedV6Prefixes(v6...)),
	}
}

// WithResolver returns a copy of g that resolves names with r, at put
// time and when it dials (tests give a DNS server of their own).
func (g *Guard) WithResolver(r *net.Resolver) *Guard {
	c := *g
	c.resolver = r
	return &c
}

func (g *Guard) lookup() *net.Resolver {
	if g.resolver != nil {
		return g.resolver
	}
	return net.DefaultResolver
}

// Loopback is the allow-list of 127.0.0.0/8 and ::1, for tests and demos
// whose receivers run on this machine.
var Loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// ParseAllow reads an allow-list: prefixes in CIDR notation (10.0.0.0/8,
// fd00::/8) or single addresses.
func ParseAllow(list []string) ([]netip.Prefix, error) {
	out, err := ParsePrefixes(list)
	if err != nil {
		return nil, fmt.Errorf("%s %w", FlagName, err)
	}
	return out, nil
}

// ParsePrefixes reads prefixes in CIDR notation or single addresses (as
// /32 or /128; an IPv4-mapped address as its IPv4 one), as the server's
// address-list flags take them.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q: want a prefix such as 10.0.0.0/8 or an address", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Allowed returns the allow-list.
func (g *Guard) Allowed() []netip.Prefix { return append([]netip.Prefix(nil), g.allow...) }

// Check returns nil if a may be connected to, else a *RefusedError.
func (g *Guard) Check(a netip.Addr) error {
	if err := g.g.SafeAddr(a); err != nil {
		return &RefusedError{Addr: a, Kind: kind(a)}
	}
	return nil
}

// kind names the kind of a refused address, for the error.
func kind(a netip.Addr) string {
	u := a.Unmap()
	switch {
	case u == netip.AddrFrom4([4]byte{169, 254, 169, 254}) || u == netip.MustParseAddr("fd00:ec2::254"):
		return "the cloud metadata address"
	case u.IsLoopback():
		return "a loopback address"
	case u.IsMulticast():
		return "a multicast address"
	case u.IsLinkLocalUnicast():
		return "a link-local address"
	case u.IsPrivate():
		return "a private address"
	case u.IsUnspecified():
		return "the unspecified address"
	case a.Is4In6():
		return "an IPv4-mapped IPv6 address"
	}
	return "a special-purpose address (IANA)"
}

// Control is a net.Dialer Control hook: it refuses to connect to a
// refused address, after the name was resolved.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("egress: %s %q: %w", network, address, err)
	}
	if network != "tcp4" && network != "tcp6" {
		return fmt.Errorf("egress: network %s: %w", network, ErrRefused)
	}
	return g.Check(ap.Addr())
}

// Dialer returns a dialer that connects only where g allows.
func (g *Guard) Dialer() *net.Dialer {
	return &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: g.Control, Resolver: g.resolver}
}

// Transport returns an HTTP transport that connects only where g allows.
// It uses no proxy: through one, the dialled address would be the
// proxy's, and the target's would go unchecked.
func (g *Guard) Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = g.Dialer().DialContext
	return t
}

// Resolve returns the addresses of host (a name or an address) that g
// allows, and an error if it has none: the first refusal, or the lookup's
// failure.
func (g *Guard) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = g.lookup().LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
	}
	var ok []netip.Addr
	var refused error
	for _, a := range addrs {
		a = a.WithZone("")
		if err := g.Check(a); err != nil {
			if refused == nil {
				refused = err
			}
			continue
		}
		ok = append(ok, a)
	}
	if len(ok) == 0 {
		if refused == nil {
			return nil, fmt.Errorf("resolve %s: no address", host)
		}
		if _, lit := netip.ParseAddr(host); lit == nil {
			return nil, refused
		}
		return nil, fmt.Errorf("%s resolves to %w", host, refused)
	}
	return ok, nil
}

// putTimeout bounds the lookup of CheckURL.
const putTimeout = 5 * time.Second

// CheckURL is the early check of a URL given to be connected to later (a
// rule's webhook, a pipeline's source): it refuses a host that is, or
// resolves now to, only refused addresses. A name that does not resolve
// now passes: it is checked again at each connection. Errors name the
// host, never the rest of the URL, which may hold a secret.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil // the caller's own checks say what is wrong with it
	}
	ctx, cancel := context.WithTimeout(ctx, putTimeout)
	defer cancel()
	_, err = g.Resolve(ctx, u.Hostname())
	if errors.Is(err, ErrRefused) {
		return err
	}
	return nil
}
