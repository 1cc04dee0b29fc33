package tenantctx

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
)

// DefaultHeader is the request header Middleware reads the tenant id from
// unless another source is configured.
const DefaultHeader = "x-tenant-id"

// A MiddlewareOption configures Middleware.
type MiddlewareOption func(*middlewareConfig)

type middlewareConfig struct {
	src          source
	lookup       func(ctx context.Context, id string) (bool, error)
	skipPrefixes []string
	skips        []func(*http.Request) bool
	log          *slog.Logger
	err          error // the first misuse of an option, reported by Middleware
}

// A source finds the tenant id in a request.
type source struct {
	// resolve returns the id, "" when the request names none, or an error
	// whose text is sent to the client with status 400.
	resolve func(*http.Request) (string, error)
	// missing completes "no tenant: " in the answer to a request that
	// names none, so the client learns what it should have sent.
	missing string
	// from names the source in the answer to a malformed id.
	from string
	// vary is the request header the id comes from, if any. It is added to
	// the Vary response header so that a shared cache never serves one
	// tenant's response to another.
	vary string
}

func (c *middlewareConfig) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// FromHeader makes Middleware read the tenant id from the named request
// header (the default is FromHeader(DefaultHeader)). Spaces and tabs around
// the value are removed. A request that sends the header more than once is
// refused with 400: proxies that append a second value must not get to
// choose between two tenants.
//
// Of several From options the last one given wins.
func FromHeader(name string) MiddlewareOption {
	return func(c *middlewareConfig) {
		if strings.TrimSpace(name) == "" {
			c.fail(errors.New("tenantctx: FromHeader: empty header name"))
			return
		}
		c.src = source{
			resolve: func(r *http.Request) (string, error) { return fromHeader(r, name) },
			missing: "set the " + name + " header",
			from:    "the " + name + " header",
			vary:    http.CanonicalHeaderKey(name),
		}
	}
}

// FromHost makes Middleware take the tenant id from the request's host
// (Request.Host): lower-cased (ASCII only, as DNS compares names), without
// the port and without a trailing dot, so "Tenant-2.Test.com:8000" is
// tenant "tenant-2.test.com". An IPv6 literal loses its brackets; it is
// not a valid tenant id, so the lookup refuses it.
func FromHost() MiddlewareOption {
	return func(c *middlewareConfig) {
		c.src = source{
			resolve: func(r *http.Request) (string, error) { return hostname(r.Host), nil },
			missing: "the request names no host",
			from:    "the host",
		}
	}
}

// FromSubdomain makes Middleware take the tenant id from the first label of
// a host under base: with base "example.com", a request for
// "acme.example.com" (any case, any port) is tenant "acme". A request for
// base itself, for another domain, or for a deeper name such as
// "a.b.example.com" names no tenant and is refused with 400: tenant ids
// stay single labels, and "www.acme.example.com" does not quietly become a
// tenant "www.acme". Use Skip for hosts that are not tenants (such as
// "www.example.com"), or let the lookup refuse them.
func FromSubdomain(base string) MiddlewareOption {
	return func(c *middlewareConfig) {
		b := hostname(strings.TrimPrefix(base, "."))
		if b == "" || strings.ContainsAny(b, ":[]") {
			c.fail(errors.New("tenantctx: FromSubdomain: base must be a domain name such as example.com, got " + quote(base)))
			return
		}
		suffix := "." + b
		c.src = source{
			resolve: func(r *http.Request) (string, error) {
				label, ok := strings.CutSuffix(hostname(r.Host), suffix)
				if !ok || strings.Contains(label, ".") {
					return "", nil
				}
				return label, nil
			},
			missing: "expected a host <tenant>" + suffix,
			from:    "the host",
		}
	}
}

// FromFunc makes Middleware take the tenant id from f: for a cookie, a
// path segment, a claim of an authentication token checked earlier, ...
// An empty id means the request names no tenant (400). An error is sent to
// the client as the message of a 400 answer, so it must not hold anything
// the client may not see.
//
// Middleware does not trim what f returns.
func FromFunc(f func(*http.Request) (string, error)) MiddlewareOption {
	return func(c *middlewareConfig) {
		if f == nil {
			c.fail(errors.New("tenantctx: FromFunc: nil function"))
			return
		}
		c.src = source{
			resolve: f,
			missing: "the request names none",
			from:    "the request",
		}
	}
}

// WithLookup makes Middleware ask f whether a tenant exists before the
// request goes on. A tenant f does not know is refused with 404; when f
// fails the request is refused with 503 and the error is logged (see
// WithMiddlewareLogger), not sent, since it may name a database server.
// f gets the request's context and the id exactly as it would go into
// the context. WithLookup(nil) means no lookup.
//
// The tenantsql driver's connector has a suitable method, which answers
// from memory for tenants this process knows:
//
//	c, _ := driver.ConnectorOf(db)
//	h := tenantctx.Middleware(mux, tenantctx.WithLookup(c.LookupTenant))
func WithLookup(f func(ctx context.Context, id string) (bool, error)) MiddlewareOption {
	return func(c *middlewareConfig) { c.lookup = f }
}

// SkipPrefix makes requests whose URL path starts with one of prefixes
// (such as "/healthz" or "/api/") pass through without a tenant. Matching
// is on Request.URL.Path as received, byte for byte; the options add up.
func SkipPrefix(prefixes ...string) MiddlewareOption {
	return func(c *middlewareConfig) {
		for _, p := range prefixes {
			if p == "" {
				// "" is a prefix of every path: that turns the
				// middleware off, which is surely a mistake.
				c.fail(errors.New("tenantctx: SkipPrefix: empty prefix"))
				return
			}
		}
		c.skipPrefixes = append(c.skipPrefixes, prefixes...)
	}
}

// Skip makes requests for which f reports true pass through without a
// tenant. The options add up: a request is skipped if any says so.
func Skip(f func(*http.Request) bool) MiddlewareOption {
	return func(c *middlewareConfig) {
		if f == nil {
			c.fail(errors.New("tenantctx: Skip: nil function"))
			return
		}
		c.skips = append(c.skips, f)
	}
}

// WithMiddlewareLogger sets the logger for failed lookups. The default,
// also for nil, is slog.Default() at the time of logging, so a program may
// set its default logger after building the handler.
func WithMiddlewareLogger(l *slog.Logger) MiddlewareOption {
	return func(c *middlewareConfig) { c.log = l }
}
