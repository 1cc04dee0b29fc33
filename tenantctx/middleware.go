package tenantctx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxShownID bounds how much of a tenant id is echoed in an answer or a
// log line: a header may be up to a megabyte long.
const maxShownID = 128

// Middleware returns a handler that finds the tenant of each request, puts
// it in the request's context with WithTenant and calls next.
//
// By default the tenant id is the value of the x-tenant-id header;
// FromHeader, FromHost, FromSubdomain and FromFunc choose another source
// (the last one given wins). Requests that Skip or SkipPrefix select go to
// next untouched, without a tenant. The others are answered with a JSON
// error, {"error": "..."}, and never reach next, when:
//
//   - the request names no tenant, or its id holds a control character
//     (400; the message says what was expected, such as the header);
//   - the FromFunc function fails (400, with its error as the message);
//   - the WithLookup function does not know the tenant (404) or fails
//     (503; the error is logged, not sent).
//
// Middleware does not check the syntax of ids: it knows no rules, and the
// lookup does. Without WithLookup every id that is not empty reaches next,
// and the tenantsql driver refuses an unknown one at the first query
// (driver.ErrUnknownTenant), usually as a 500 from the application. Give
// WithLookup the connector's LookupTenant to answer 404 instead.
//
// When the id comes from a header, the header's name is added to the
// response's Vary header. Error answers carry Cache-Control: no-store.
//
// Middleware panics if an option is misused (FromHeader(""), FromFunc(nil),
// ...) or next is nil, as http.ServeMux does with a bad pattern: that is a
// mistake in the program, found when it starts.
func Middleware(next http.Handler, opts ...MiddlewareOption) http.Handler {
	if next == nil {
		panic("tenantctx: Middleware: nil handler")
	}
	var cfg middlewareConfig
	FromHeader(DefaultHeader)(&cfg)
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.err != nil {
		panic(cfg.err)
	}
	return &middleware{next: next, cfg: cfg}
}

type middleware struct {
	next http.Handler
	cfg  middlewareConfig
}

func (m *middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if m.skip(r) {
		m.next.ServeHTTP(w, r)
		return
	}
	src := &m.cfg.src
	if src.vary != "" {
		w.Header().Add("Vary", src.vary)
	}
	id, err := src.resolve(r)
	switch {
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case id == "":
		writeError(w, http.StatusBadRequest, "no tenant: "+src.missing)
		return
	case hasControl(id):
		// An id never holds one; refusing them here keeps them out of
		// logs and lookups.
		writeError(w, http.StatusBadRequest, "bad tenant id in "+src.from+": it contains a control character")
		return
	}
	if m.cfg.lookup != nil {
		ok, err := m.cfg.lookup(r.Context(), id)
		if err != nil {
			m.logLookupError(r, id, err)
			writeError(w, http.StatusServiceUnavailable, "cannot check the tenant now; try again later")
			return
		}
		if !ok {
			writeError(w, http.StatusNotFound, "unknown tenant "+quote(id))
			return
		}
	}
	m.next.ServeHTTP(w, r.WithContext(WithTenant(r.Context(), id)))
}

func (m *middleware) skip(r *http.Request) bool {
	for _, p := range m.cfg.skipPrefixes {
		if strings.HasPrefix(r.URL.Path, p) {
			return true
		}
	}
	for _, f := range m.cfg.skips {
		if f(r) {
			return true
		}
	}
	return false
}

func (m *middleware) logLookupError(r *http.Request, id string, err error) {
	l := m.cfg.log
	if l == nil {
		l = slog.Default()
	}
	level := slog.LevelError
	if r.Context().Err() != nil && errors.Is(err, r.Context().Err()) {
		// The client went away: nothing is wrong with the lookup.
		level = slog.LevelDebug
	}
	l.Log(r.Context(), level, "tenantctx: tenant lookup failed",
		"tenant", quote(id), "method", r.Method, "path", r.URL.Path, "err", err)
}

// fromHeader returns the value of the named header without surrounding
// spaces and tabs (HTTP's optional white space; net/http already strips it
// from requests it parses, but not from requests built in code).
func fromHeader(r *http.Request, name string) (string, error) {
	vs := r.Header.Values(name)
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return strings.Trim(vs[0], " \t"), nil
	}
	return "", fmt.Errorf("bad %s header: sent %d times, want once", name, len(vs))
}

// hostname returns the host of a Host header ("host", "host:port",
// "[ipv6]", "[ipv6]:port") in lower case (ASCII only, as DNS compares
// names: strings.ToLower would turn the Kelvin sign into a "k") and
// without a trailing dot. What does not parse is returned whole, lower
// case, for the lookup to refuse.
func hostname(hostport string) string {
	h := hostport
	if strings.HasPrefix(h, "[") {
		if end := strings.IndexByte(h, ']'); end > 0 && isPort(h[end+1:], true) {
			h = h[1:end]
		}
	} else if i := strings.IndexByte(h, ':'); i >= 0 && strings.Count(h, ":") == 1 && isPort(h[i:], false) {
		// More than one colon and no brackets: an IPv6 literal
		// without its brackets, with no port to cut.
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	return lowerASCII(h)
}

// isPort reports whether s is ":digits" (or ":", which URLs allow), or
// empty if emptyOK.
func isPort(s string, emptyOK bool) bool {
	if s == "" {
		return emptyOK
	}
	if s[0] != ':' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// hasControl reports whether s holds a C0 or C1 control character or DEL.
func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// quote returns id quoted with %q, cut to maxShownID bytes (at a character
// boundary where there is one) with "..." after the closing quote when it
// is longer.
func quote(id string) string {
	if len(id) <= maxShownID {
		return strconv.Quote(id)
	}
	cut := maxShownID
	for i := 0; i < utf8.UTFMax-1 && !utf8.RuneStart(id[cut]); i++ {
		cut--
	}
	return strconv.Quote(id[:cut]) + "..."
}

// writeError answers with status and {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	// No HTML escaping: the answer is JSON served with nosniff, and
	// "\u003ctenant\u003e" helps no one read it.
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(struct {
		Error string `json:"error"`
	}{msg}); err != nil {
		// Encoding a string cannot fail (invalid UTF-8 becomes U+FFFD).
		panic(err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body.Bytes())
}
