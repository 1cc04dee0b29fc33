package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/tenantsql/tenantsql/store"
)

// The operator's page over HTTP, mounted under a prefix as a program
// mounts the API: its files without the token, with their headers;
// everything else still behind it.
func TestUIOverHTTP(t *testing.T) {
	h, err := New(store.NewMemory(), WithToken(testToken), WithUI(), WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	tests := []struct {
		name, method, path string
		header             map[string]string
		want               int
		wantType           string // Content-Type prefix
		wantBody           string // a part of the body
	}{
		{name: "page", method: "GET", path: "/admin/ui/", want: 200, wantType: "text/html", wantBody: `<script src="app.js" defer></script>`},
		{name: "script", method: "GET", path: "/admin/ui/app.js", want: 200, wantType: "text/javascript", wantBody: "'use strict'"},
		{name: "style", method: "GET", path: "/admin/ui/app.css", want: 200, wantType: "text/css"},
		{name: "icon", method: "GET", path: "/admin/ui/favicon.svg", want: 200, wantType: "image/svg+xml"},
		{name: "auth", method: "GET", path: "/admin/ui/auth.json", want: 200, wantType: "application/json", wantBody: `{"token_required":true}`},
		{name: "head", method: "HEAD", path: "/admin/ui/", want: 200, wantType: "text/html"},
		{name: "missing file", method: "GET", path: "/admin/ui/secrets.txt", want: 404, wantType: "application/json", wantBody: "no such file of the operator's page"},
		{name: "no listing", method: "GET", path: "/admin/ui/index.html", want: 404, wantType: "application/json"},
		{name: "post", method: "POST", path: "/admin/ui/", want: 405, wantType: "application/json", wantBody: "allowed: GET, HEAD"},
		{name: "API still needs the token", method: "GET", path: "/admin/tenant/", want: 401, wantType: "application/json"},
		{name: "a wrong token is still refused", method: "GET", path: "/admin/stats/", header: map[string]string{"Authorization": "Bearer nope"}, want: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Fatalf("%s %s: %d, want %d: %s", tt.method, tt.path, resp.StatusCode, tt.want, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
				t.Errorf("Content-Type %q, want %q", ct, tt.wantType)
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("body does not hold %q:\n%.300s", tt.wantBody, body)
			}
			if tt.method == "HEAD" && len(body) != 0 {
				t.Errorf("HEAD answered a body of %d bytes", len(body))
			}
			if resp.StatusCode == 200 && tt.wantType != "application/json" {
				for k, v := range map[string]string{
					"Content-Security-Policy": uiCSP,
					"X-Content-Type-Options":  "nosniff",
					"X-Frame-Options":         "DENY",
					"Referrer-Policy":         "no-referrer",
				} {
					if got := resp.Header.Get(k); got != v {
						t.Errorf("%s: %q, want %q", k, got, v)
					}
				}
			}
		})
	}

	// "ui" without the slash goes to "ui/" under the prefix, wherever
	// the API is mounted.
	resp, err := srv.Client().Get(srv.URL + "/admin/ui")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/admin/ui/" {
		t.Errorf("GET /admin/ui ended at %s with %d, want /admin/ui/ with 200", resp.Request.URL.Path, resp.StatusCode)
	}

	// A browser that has the page revalidates it for nothing.
	first, err := srv.Client().Get(srv.URL + "/admin/ui/app.js")
	if err != nil {
		t.Fatal(err)
	}
	first.Body.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/admin/ui/app.js", nil)
	req.Header.Set("If-None-Match", first.Header.Get("ETag"))
	again, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	again.Body.Close()
	if first.Header.Get("ETag") == "" || again.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation with ETag %q: %d, want 304", first.Header.Get("ETag"), again.StatusCode)
	}
}

// Without WithUI there is no page, and its path is behind the token like
// any unknown route; WithoutAuth tells the page it needs no token.
func TestUIOption(t *testing.T) {
	off, err := New(store.NewMemory(), WithToken(testToken), WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	if rec := serve(t, off, request{method: "GET", path: "/ui/", header: map[string]string{"Authorization": ""}}); rec.Code != http.StatusUnauthorized {
		t.Errorf("GET /ui/ without WithUI and without the token: %d, want 401", rec.Code)
	}
	if rec := serve(t, off, request{method: "GET", path: "/ui/"}); rec.Code != http.StatusNotFound {
		t.Errorf("GET /ui/ without WithUI: %d, want 404", rec.Code)
	}

	open, err := New(store.NewMemory(), WithoutAuth(), WithUI(), WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	rec := serve(t, open, request{method: "GET", path: "/ui/auth.json"})
	var auth struct {
		TokenRequired *bool `json:"token_required"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &auth); err != nil || auth.TokenRequired == nil || *auth.TokenRequired {
		t.Errorf("GET /ui/auth.json under WithoutAuth: %s (%v), want token_required false", rec.Body, err)
	}
}

// The page's files hold nothing its Content-Security-Policy would refuse
// (the browser tests of examples/hospital see the policy applied): no
// inline script, style or handler, and no way to turn a string into HTML
// or code. Strings from the API, tenant ids and error texts among them,
// can only become text.
func TestUIFilesFollowThePolicy(t *testing.T) {
	assets, err := loadUI()
	if err != nil {
		t.Fatal(err)
	}
	html := string(assets["/"].body)
	// The script's code, without its comment lines (which may name what
	// the code must not do).
	js := regexp.MustCompile(`(?m)^\s*//.*$`).ReplaceAllString(string(assets["/app.js"].body), "")
	for _, tt := range []struct {
		file, text string
		re         *regexp.Regexp
	}{
		{"index.html", html, regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`)}, // a script with a body
		{"index.html", html, regexp.MustCompile(`\sstyle=|<style`)},
		{"index.html", html, regexp.MustCompile(`\son[a-z]+=`)},
		{"index.html", html, regexp.MustCompile(`(?:src|href)="(?:https?:)?//`)},
		{"app.js", js, regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setTimeout\(['"]`)},
		{"app.js", js, regexp.MustCompile(`localStorage|sessionStorage|document\.cookie|indexedDB`)},
	} {
		if m := tt.re.FindString(tt.text); m != "" {
			t.Errorf("%s holds %q (%s)", tt.file, m, tt.re)
		}
	}
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(html, -1) {
		if !strings.Contains(tag, ` src="`) {
			t.Errorf("index.html holds a script without src: %s", tag)
		}
	}
}
