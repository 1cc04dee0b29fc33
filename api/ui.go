package api

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/tenantsql/tenantsql/internal/clip"
)

// The operator's page (WithUI): plain HTML, CSS and JavaScript, embedded
// so that nothing is fetched from elsewhere and nothing needs building.
//
//go:embed ui
var uiFiles embed.FS

// uiCSP is the page's Content-Security-Policy. Nothing but the page's own
// files runs or loads: no inline script or style, no eval, no other
// origin, no framing, forms submit nowhere (the script sends the API
// requests). Trusted Types are required and no policy may be made, so
// the browser itself refuses any assignment of a string to innerHTML and
// its kind: tenant ids and error texts can only ever become text.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

// uiTypes are the content types of the page's files, fixed here rather
// than read from the system's MIME tables, which differ between machines.
var uiTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// uiFile is one file of the page, read once.
type uiFile struct {
	body        []byte
	contentType string
	etag        string
}

// uiAssets holds the page's files by the path they are served at, "/"
// being index.html.
type uiAssets map[string]uiFile

func loadUI() (uiAssets, error) {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		return nil, err
	}
	assets := make(uiAssets)
	err = fs.WalkDir(sub, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(sub, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		f := uiFile{body: body, contentType: uiTypes[path.Ext(name)], etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		if f.contentType == "" {
			return fmt.Errorf("api: ui/%s: no content type for its extension", name)
		}
		if name == "index.html" {
			name = ""
		}
		assets["/"+name] = f
		return nil
	})
	return assets, err
}

// uiPath reports whether path, after the mount prefix, is the page's, and
// the file's path within it.
func uiPath(p string) (string, bool) {
	if p == "/ui" {
		return "", true
	}
	rest, ok := strings.CutPrefix(p, "/ui/")
	return "/" + rest, ok
}

// serveUI answers a request for the page's files. They are served without
// the token, unlike every other route: a browser cannot add a header to
// the navigation that loads a page, and the files hold no data. The page
// asks for the token and keeps it in a variable; only the API calls its
// script makes carry it. A cookie or HTTP basic authentication would keep
// the token where the browser sends it by itself, with every request from
// any page: see Browsers in the package documentation.
func (h *handler) serveUI(w http.ResponseWriter, r *http.Request, name string) {
	hdr := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		writeError(w, errorf(http.StatusMethodNotAllowed, "method %s is not allowed here; allowed: GET, HEAD", clip.String(r.Method)))
		return
	}
	if name == "" {
		// "ui" to "ui/": relative, so that it works under any mount prefix
		// (http.Redirect would resolve it against the stripped path).
		hdr.Set("Location", "ui/")
		w.WriteHeader(http.StatusMovedPermanently)
		return
	}
	if name == "/auth.json" {
		// Whether the page must ask for the token: what a 401 would tell
		// anyone, without the page making a request that fails.
		writeJSON(w, http.StatusOK, struct {
			TokenRequired bool `json:"token_required"`
		}{!h.noAuth})
		return
	}
	f, ok := h.ui[name]
	if !ok {
		writeError(w, errorf(http.StatusNotFound, "no such file of the operator's page: %s", clip.String(r.URL.Path)))
		return
	}
	hdr.Set("Content-Security-Policy", uiCSP)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Cross-Origin-Resource-Policy", "same-origin")
	// Revalidated every time, so that a new version of the program serves
	// its own page; the ETag makes that a 304 (ServeContent answers the
	// conditional and HEAD requests as the standard library does).
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", f.etag)
	hdr.Set("Content-Type", f.contentType)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
}
