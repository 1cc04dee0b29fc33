package pgurl

import (
	"slices"
	"strings"
)

// IsTenantSetting reports whether a URL query key names a session setting
// that may differ between tenants sharing sessions: search_path, which
// picks a tenant's schema, and custom settings (a dot in the name, such as
// app.tenant_id), which row-level security policies read with
// current_setting. Both can be set for one transaction with set_config,
// which is what lets them travel with each statement. Other parameters
// stay with the pool: the server reports some of them to the client
// (client_encoding, TimeZone, DateStyle, application_name) and pgx relies
// on what it was told at connect time; others are fixed at connect time
// (options, the role) or change how pgx itself behaves (sslmode,
// default_query_exec_mode).
func IsTenantSetting(name string) bool {
	return name == "search_path" || strings.Contains(name, ".")
}

// SplitSettings splits raw, a postgres:// URL, into the URL without its
// tenant settings (the URL of the pool they share) and the names of those
// settings, each once, in the order first written. It finds the
// parameters as pgx does (the query split at '&', keys decoded and
// trimmed of spaces); the values are pgx's to decode, so callers take them
// from pgx's parse of raw. ok is false for a string pgx does not read as a
// URL.
func SplitSettings(raw string) (base string, names []string, ok bool) {
	if !IsURL(raw) {
		return raw, nil, false
	}
	p, ok := split(raw)
	if !ok {
		return raw, nil, false
	}
	if !p.hasQuery {
		return raw, nil, true
	}
	var kept []string
	for q := range params(p.query, pgxSeps) {
		name := strings.Trim(unescape(q.key), " ")
		if q.hasValue && IsTenantSetting(name) && !badEscape(q.key) {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
			continue
		}
		piece := q.key
		if q.hasValue {
			piece += "=" + q.value
		}
		kept = append(kept, piece)
	}
	p.query = strings.Join(kept, "&")
	p.hasQuery = p.query != ""
	return p.String(), names, true
}
