package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/tenantsql/tenantsql/internal/clip"
	"github.com/tenantsql/tenantsql/store"
)

// handler is the http.Handler New returns.
type handler struct {
	store             store.Store
	noAuth            bool
	tokenSum          [sha256.Size]byte
	maxBody           int64
	allow             *allowList // nil: any host
	health            *healthConfig
	healthQuery       string // SELECT max(version_id) FROM <quoted table>
	stats             func(context.Context) any
	log               *slog.Logger
	serverCredentials bool     // WithServerCredentials
	ui                uiAssets // WithUI; nil without

	collection, item, healthRoute, statsRoute route
}

// New returns the admin API for the tenants of s. It fails if no
// authentication was chosen (WithToken or WithoutAuth), if an option is
// invalid, or if a name given to WithAllowedHosts does not resolve.
func New(s store.Store, opts ...Option) (http.Handler, error) {
	if s == nil {
		return nil, errors.New("api: New: the store is nil")
	}
	c, err := build(opts)
	if err != nil {
		return nil, err
	}
	h := &handler{
		store:             s,
		noAuth:            c.noAuth,
		serverCredentials: c.serverCredentials,
		maxBody:           c.maxBodyBytes,
		health:            c.health,
		stats:             c.stats,
		log:               c.log,
	}
	if !c.noAuth {
		h.tokenSum = tokenDigest(c.token)
	} else {
		h.log.Warn("tenantsql admin API: authentication is off (WithoutAuth); anyone who can reach it can change tenants")
	}
	if c.allowedSet {
		if h.allow, err = newAllowList(c.allowed, c.lookup); err != nil {
			return nil, err
		}
	}
	if c.ui {
		if h.ui, err = loadUI(); err != nil {
			return nil, err
		}
	}
	if c.health != nil {
		h.healthQuery = "SELECT max(version_id) FROM " + quoteTable(c.health.table)
	}
	h.routes()
	return h, nil
}

// route is one resource: the methods it answers and how.
type route struct {
	allow   string // for the Allow header of a 405
	methods map[string]func(w http.ResponseWriter, r *http.Request, id string)
}

func (h *handler) routes() {
	h.collection = route{allow: "GET, POST", methods: map[string]func(http.ResponseWriter, *http.Request, string){
		http.MethodGet:  h.listTenants,
		http.MethodPost: h.createTenant,
	}}
	h.item = route{allow: "GET, PUT, DELETE", methods: map[string]func(http.ResponseWriter, *http.Request, string){
		http.MethodGet:    h.getTenant,
		http.MethodPut:    h.updateTenant,
		http.MethodDelete: h.deleteTenant,
	}}
	h.healthRoute = route{allow: "GET", methods: map[string]func(http.ResponseWriter, *http.Request, string){
		http.MethodGet: h.healthCheck,
	}}
	h.statsRoute = route{allow: "GET", methods: map[string]func(http.ResponseWriter, *http.Request, string){
		http.MethodGet: h.serveStats,
	}}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer h.recoverPanic(w, r)
	// The page's files are the one exception to the token (see serveUI).
	if h.ui != nil {
		if name, ok := uiPath(r.URL.Path); ok {
			h.serveUI(w, r, name)
			return
		}
	}
	// Authentication comes before routing, so that without a token not
	// even the existence of a route can be probed.
	e := h.authenticate(w, r)
	if e == nil && h.noAuth {
		e = crossOrigin(r)
	}
	if e != nil {
		h.log.Warn("tenantsql admin API: request refused", "remote_addr", r.RemoteAddr, "method", clip.String(r.Method), "path", clip.String(r.URL.Path), "reason", e.msg)
		writeError(w, e)
		return
	}
	rt, id := h.match(r.URL.Path)
	if rt == nil {
		routes := "/tenant/, /tenant/{id}/, /health-check/"
		if h.stats != nil {
			routes += ", /stats/"
		}
		if h.ui != nil {
			routes += ", /ui/"
		}
		writeError(w, errorf(http.StatusNotFound, "no such route: %s %s (routes: %s)", clip.String(r.Method), clip.String(r.URL.Path), routes))
		return
	}
	fn, ok := rt.methods[r.Method]
	if !ok {
		w.Header().Set("Allow", rt.allow)
		writeError(w, errorf(http.StatusMethodNotAllowed, "method %s is not allowed here; allowed: %s", clip.String(r.Method), rt.allow))
		return
	}
	fn(w, r, id)
}

// match finds the route of path, with or without a trailing slash, and the
// tenant id in it if any. The path is the one left after the mount
// prefix was stripped, already unescaped: "/tenant/a%2Fb/" is
// "/tenant/a/b/", which matches no route.
func (h *handler) match(path string) (*route, string) {
	p := strings.TrimSuffix(path, "/")
	switch p {
	case "/tenant":
		return &h.collection, ""
	case "/health-check":
		return &h.healthRoute, ""
	case "/stats":
		if h.stats == nil {
			return nil, ""
		}
		return &h.statsRoute, ""
	}
	if id, ok := strings.CutPrefix(p, "/tenant/"); ok && id != "" && !strings.Contains(id, "/") {
		return &h.item, id
	}
	return nil, ""
}

// authenticate checks the bearer token. Both sides are hashed before the
// constant-time comparison, so that neither the token's content nor its
// length can be learnt from the time an answer takes.
func (h *handler) authenticate(w http.ResponseWriter, r *http.Request) *apiError {
	if h.noAuth {
		return nil
	}
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		w.Header().Set("WWW-Authenticate", "Bearer")
		return errorf(http.StatusUnauthorized, "missing bearer token: send the header Authorization: Bearer <token>")
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	good := subtle.ConstantTimeCompare(sum[:], h.tokenSum[:]) == 1
	if len(values) > 1 || !strings.EqualFold(scheme, "Bearer") || !good {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		return errorf(http.StatusUnauthorized, "invalid bearer token: send the header Authorization: Bearer <token> once, with the configured token")
	}
	return nil
}

// crossOrigin refuses a request a browser sent for a page of another
// origin. It guards WithoutAuth, where nothing else tells a web page's
// request from a legitimate one: with a token, a page cannot make the
// browser send it.
//
// As net/http's CrossOriginProtection does, it trusts Sec-Fetch-Site when
// the browser sends it: only "same-origin" and "none" (typed by the user)
// pass. "same-site" is refused: for a browser, every port of localhost is
// the same site, so a page of any local development server would pass
// otherwise. Without Sec-Fetch-Site (older browsers), an Origin header
// must name the request's own host and port; its scheme is not compared,
// since a proxy in front may change it. Sec-Fetch-Site comes first
// because a same-origin UI behind a proxy that rewrites Host (a
// development server's) sends an Origin that does not match the Host the
// API sees. curl and other programs send neither header, and pass.
func crossOrigin(r *http.Request) *apiError {
	if sites := r.Header.Values("Sec-Fetch-Site"); len(sites) > 0 {
		for _, site := range sites {
			if site != "same-origin" && site != "none" {
				return errorf(http.StatusForbidden, "cross-origin request refused: Sec-Fetch-Site is %q; without authentication (WithoutAuth) only same-origin browser requests are accepted", clip.String(site))
			}
		}
		return nil
	}
	for _, origin := range r.Header.Values("Origin") {
		if !sameOrigin(origin, r.Host) {
			return errorf(http.StatusForbidden, "cross-origin request refused: Origin %q is not this server (Host %q); without authentication (WithoutAuth) only same-origin browser requests are accepted", clip.String(origin), clip.String(r.Host))
		}
	}
	return nil
}

// sameOrigin reports whether origin, "scheme://host[:port]", names host,
// the request's Host header. A default port (80 for http, 443 for https)
// may be given on either side or left out. "null", and anything with a
// path (even "/"), user info, query or fragment, is not an origin.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	def := ":80"
	if u.Scheme == "https" {
		def = ":443"
	}
	return strings.EqualFold(strings.TrimSuffix(u.Host, def), strings.TrimSuffix(host, def))
}

// recoverPanic answers 500 instead of dropping the connection when a
// handler panics, and logs the panic.
func (h *handler) recoverPanic(w http.ResponseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	// Only a runtime error's message is logged: another value may be
	// anything, a tenant's URL included.
	what := fmt.Sprintf("%T", v)
	if re, ok := v.(runtime.Error); ok {
		what = re.Error()
	}
	h.log.Error("tenantsql admin API: panic", "remote_addr", r.RemoteAddr, "method", clip.String(r.Method), "path", clip.String(r.URL.Path), "panic", what, "stack", string(debug.Stack()))
	writeError(w, errorf(http.StatusInternalServerError, "internal error"))
}

// serveStats answers GET /stats/.
func (h *handler) serveStats(w http.ResponseWriter, r *http.Request, _ string) {
	writeJSON(w, http.StatusOK, h.stats(r.Context()))
}
