package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/scangate/scangate/internal/egress"
)

// forwardedHeaders are the headers a reverse proxy sets about the client
// and the URL it asked for. distribution builds the Location of uploads
// from X-Forwarded-Proto and -Host (and Forwarded), and scangate keys its
// failed-authentication limit by the client's address, so neither may be
// taken from anyone but a proxy the operator named.
var forwardedHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Real-Ip"}

// maxForwardedHops bounds how many X-Forwarded-For entries are read.
const maxForwardedHops = 32

// proxies are the reverse proxies whose X-Forwarded-* headers are believed.
type proxies []netip.Prefix

func (ps proxies) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// wrap makes r.RemoteAddr the client's address: from a trusted proxy, the
// nearest address in X-Forwarded-For that is not itself a trusted proxy
// (entries further left were written by whoever sent the request, and can
// say anything); from anyone else, the peer's, with every forwarded header
// removed.
func (ps proxies) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !ps.trusted(peer.Addr()) {
			for _, h := range forwardedHeaders {
				r.Header.Del(h)
			}
			next.ServeHTTP(w, r)
			return
		}
		if client, ok := ps.client(r.Header.Values("X-Forwarded-For")); ok {
			r.RemoteAddr = net.JoinHostPort(client.String(), "0")
		}
		next.ServeHTTP(w, r)
	})
}

// client reads X-Forwarded-For from the right.
func (ps proxies) client(values []string) (netip.Addr, bool) {
	var hops []string
	for _, v := range values {
		hops = append(hops, strings.Split(v, ",")...)
		if len(hops) > maxForwardedHops {
			hops = hops[len(hops)-maxForwardedHops:]
		}
	}
	var last netip.Addr
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed entry: the ones before it cannot be trusted
		}
		last = a.Unmap()
		if !ps.trusted(last) {
			return last, true
		}
	}
	return last, last.IsValid()
}

// ParseProxies reads CIDR prefixes or single addresses.
func ParseProxies(list []string) ([]netip.Prefix, error) { return egress.ParsePrefixes(list) }
