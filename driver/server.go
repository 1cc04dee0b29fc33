package driver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// How budgets name servers. A budget caps the sessions one PostgreSQL
// server sees, so two spellings of one address must name one budget:
// otherwise each spelling gets a budget of its own and the server sees
// their sum. Names are compared, never resolved: resolving when a tenant is
// registered would hold up the store follower, and with it every tenant
// change, on DNS, and the answer can change afterwards. So aliases
// ("localhost" and "127.0.0.1", two names of one address, a CNAME and its
// target) stay different servers; the options' documentation tells
// operators so.

// canonicalHost returns the form under which budgets know a host. Host
// names compare without regard to ASCII case (DNS does, RFC 4343) and to a
// trailing dot ("db." is the fully qualified "db"). IP addresses compare as
// addresses: "::1" and "0:0::1" are one, and an IPv4-mapped IPv6 address is
// its IPv4 address, which the kernel connects to. A Unix socket directory
// is a path, kept as written.
func canonicalHost(host string) string {
	if strings.HasPrefix(host, "/") {
		return host
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().String()
	}
	return lowerASCII(strings.TrimSuffix(host, "."))
}

// lowerASCII lowers ASCII letters only: DNS compares the other bytes of a
// name as they are.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// serverAddr is one host and port of a server key.
func serverAddr(host string, port uint16) string {
	return net.JoinHostPort(canonicalHost(host), strconv.Itoa(int(port)))
}

// joinServerAddrs makes a server key of the addresses a URL names, in its
// order, each once. pgx lists a host twice when it tries it with and
// without TLS (sslmode=prefer); that is still one server.
func joinServerAddrs(addrs []string) string {
	var kept []string
	for _, a := range addrs {
		if !slices.Contains(kept, a) {
			kept = append(kept, a)
		}
	}
	return strings.Join(kept, ",")
}

// parseServerKey reads a server as WithServerBudget names it, "host:port",
// or for tenants whose URLs list several hosts, the list comma-separated,
// and returns its key in the form serverKey gives it.
func parseServerKey(server string) (string, error) {
	var addrs []string
	for part := range strings.SplitSeq(server, ",") {
		host, port, err := net.SplitHostPort(part)
		if err != nil {
			var ae *net.AddrError
			reason := err.Error()
			if errors.As(err, &ae) {
				reason = ae.Err
			}
			if strings.Count(part, ":") > 1 && !strings.HasPrefix(part, "[") {
				reason += " (an IPv6 address goes in brackets: [::1]:5432)"
			}
			return "", fmt.Errorf("%q is not host:port: %s", part, reason)
		}
		if host == "" {
			return "", fmt.Errorf("%q is not host:port: no host", part)
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return "", fmt.Errorf("%q is not host:port: port %q is not a number from 1 to 65535", part, port)
		}
		addrs = append(addrs, serverAddr(host, uint16(n)))
	}
	return joinServerAddrs(addrs), nil
}
