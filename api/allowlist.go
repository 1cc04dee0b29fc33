package api

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantsql/tenantsql/internal/clip"
)

// allowList is the set of addresses a POSTGRES_URL may point at.
//
// The rule: every host of the URL, as pgx reads it (the host list
// "h1,h2", a host= parameter, or the default when none is given), must be
// a TCP host, and every address it resolves to when the request is handled
// must lie in an allowed prefix. IP and CIDR entries are prefixes; a name
// entry is resolved once, in New, and stands for the addresses it had then.
//
// So allowing "db1.internal" allows what db1.internal was at start-up, and
// a URL naming any host that resolves there now; it does not trust the name
// itself. A name is not a promise about what it will resolve to later,
// and someone who controls a DNS zone could otherwise point an allowed
// name, or a name of their own, at a metadata service or a loopback
// port. Restart the program (or build a new handler) after moving an
// allowed database.
//
// The check is made when a tenant is created or updated. The driver
// resolves names again when it connects, so a URL with a host name whose
// DNS answer changes later ("DNS rebinding") can still reach another
// address then; URLs with IP literals are not subject to that.
type allowList struct {
	prefixes []netip.Prefix
	lookup   func(ctx context.Context, host string) ([]netip.Addr, error)
}

func newAllowList(entries []string, lookup func(context.Context, string) ([]netip.Addr, error)) (*allowList, error) {
	a := &allowList{lookup: lookup}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			return nil, fmt.Errorf("api: WithAllowedHosts: empty entry")
		case strings.Contains(e, "/"):
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("api: WithAllowedHosts: %q is not a valid CIDR prefix", e)
			}
			a.prefixes = append(a.prefixes, normalPrefix(p))
		default:
			if addr, err := netip.ParseAddr(e); err == nil {
				addr = normalAddr(addr)
				a.prefixes = append(a.prefixes, netip.PrefixFrom(addr, addr.BitLen()))
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
			addrs, err := lookup(ctx, e)
			cancel()
			if err != nil || len(addrs) == 0 {
				return nil, fmt.Errorf("api: WithAllowedHosts: cannot resolve %q: name entries are resolved once, when the handler is built", e)
			}
			for _, addr := range addrs {
				addr = normalAddr(addr)
				a.prefixes = append(a.prefixes, netip.PrefixFrom(addr, addr.BitLen()))
			}
		}
	}
	return a, nil
}

// normalAddr drops a zone and unmaps an IPv4-mapped IPv6 address, so that
// ::ffff:10.0.0.1 is judged as 10.0.0.1.
func normalAddr(a netip.Addr) netip.Addr { return a.WithZone("").Unmap() }

func normalPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return p.Masked()
}

func (a *allowList) allows(addr netip.Addr) bool {
	addr = normalAddr(addr)
	for _, p := range a.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// check applies the rule to the hosts of a parsed URL: the first one and
// those of its fallbacks (other hosts, or the same host without TLS).
func (a *allowList) check(ctx context.Context, field, first string, fallbacks []*pgconn.FallbackConfig) *apiError {
	hosts := []string{first}
	for _, fb := range fallbacks {
		if !slices.Contains(hosts, fb.Host) {
			hosts = append(hosts, fb.Host)
		}
	}
	// One deadline for all the look-ups: a URL may list many hosts.
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	for _, host := range hosts {
		if e := a.checkHost(ctx, field, host); e != nil {
			return e
		}
	}
	return nil
}

func (a *allowList) checkHost(ctx context.Context, field, host string) *apiError {
	shown := clip.String(host)
	if strings.Contains(strings.ToLower(host), "password") {
		// "postgres://password=s3cret" reads as a host to pgx, but its
		// author meant a password, and redaction treats it as one: the
		// answer must not show it either.
		shown = "(withheld: it looks like a password)"
	}
	if strings.HasPrefix(host, "/") {
		// A Unix socket usually means peer authentication: the server
		// would take us for its own operating-system user.
		return errorf(http.StatusBadRequest, "invalid %s: host %q is a Unix socket, which is not accepted when allowed hosts are set (a URL without a host uses the local socket too)", field, shown)
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if !a.allows(addr) {
			return errorf(http.StatusBadRequest, "invalid %s: host %q is not among the allowed hosts", field, shown)
		}
		return nil
	}
	addrs, err := a.lookup(ctx, host)
	if err != nil || len(addrs) == 0 {
		return errorf(http.StatusBadRequest, "invalid %s: host %q cannot be resolved, so it cannot be checked against the allowed hosts", field, shown)
	}
	for _, addr := range addrs {
		if !a.allows(addr) {
			return errorf(http.StatusBadRequest, "invalid %s: host %q resolves to %s, which is not among the allowed hosts", field, shown, normalAddr(addr))
		}
	}
	return nil
}
