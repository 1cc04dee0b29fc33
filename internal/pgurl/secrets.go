package pgurl

import (
	"net/url"
	"slices"
	"strings"
)

// Secrets returns the passwords raw may hold, each as written and
// decoded: the password of the user info as pgx and as net/url read it;
// the value of every query key that names a password, the query split as
// each reader splits it; and that of every piece that any reader may take
// for such a parameter (see the package documentation). It is for
// recognising a password in text that has no structure to work on, such
// as an error message.
func Secrets(raw string) []string {
	var out []string
	add := func(s string) {
		for _, v := range []string{s, unescape(s)} {
			if v != "" && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	if p, ok := split(raw); ok {
		if pw, ok := p.password(); ok {
			add(pw)
		}
		if p.hasQuery {
			for _, seps := range querySplits {
				for q := range params(p.query, seps) {
					if q.hasValue && namesPassword(q.key) {
						add(q.value)
					}
				}
			}
		}
	}
	if u, err := url.Parse(raw); err == nil {
		if pw, ok := u.User.Password(); ok {
			add(pw)
		}
	}
	for q := range anyParams(raw) {
		if q.hasValue && namesPassword(q.key) {
			add(q.value)
		}
	}
	return out
}

// GivesPassword reports whether pw, the password pgx settled on for raw,
// is one that raw gives: one of Secrets, as pgx decodes it (spaces around
// trimmed, escapes decoded) or as written. pgx takes a password from
// elsewhere (PGPASSWORD, a password file, a service) only when the URL
// gives none, so a match means the URL's own.
func GivesPassword(raw, pw string) bool {
	for _, c := range Secrets(raw) {
		if c == pw || strings.Trim(c, " ") == pw || unescape(strings.Trim(c, " ")) == pw {
			return true
		}
	}
	return false
}

// ParseFailure says why parse cannot parse raw, without showing raw's
// passwords, or returns "" if it can. parse is pgx.ParseConfig reduced to
// its error; it is passed in so that packages that only redact do not
// depend on pgx.
//
// pgx masks passwords in its parse errors only "best effort", and the
// cause it gives may quote any part of the URL. So the failure described
// is that of a copy of raw whose passwords (all of Secrets) are replaced
// by "x": its message cannot hold what the copy does not. If the copy
// parses, the password itself is what is wrong. Of a URL whose password
// has no certain end (AmbiguousUserinfo, or an '@' past the end of the
// user info as pgx sees it) no part is quoted at all.
func ParseFailure(raw string, parse func(string) error) string {
	if parse(raw) == nil {
		return ""
	}
	switch {
	case !IsURL(raw):
		return "it is not a postgres:// or postgresql:// URL"
	case AmbiguousUserinfo(raw) || strayAt(raw):
		return "it does not parse, and where its password ends is unclear (percent-encode '@', '/', '?' and '#' in the user name and password: %40, %2F, %3F, %23)"
	}
	err := parse(withoutSecrets(raw))
	if err == nil {
		return "the password is malformed (percent-encode reserved characters, and do not use %00)"
	}
	// Drop pgx's "cannot parse `<the copy>`: ". Should the copy hold a
	// "`: " itself, some of it stays: that is untidy, never a leak.
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "cannot parse `"); ok {
		if _, cause, ok := strings.Cut(rest, "`: "); ok && cause != "" {
			return cause
		}
	}
	return msg
}

// withoutSecrets returns raw with its passwords replaced by "x", or left
// out of the user info, and everything else as it is: pgx reads it as it
// reads raw but for the passwords. The query is masked as each reader
// splits it (maskQuery), then every piece that any reader may take for a
// parameter, anywhere in raw.
func withoutSecrets(raw string) string {
	p, ok := split(raw)
	if !ok {
		return raw
	}
	p.userinfo, _, _ = strings.Cut(p.userinfo, ":")
	if p.hasQuery {
		p.query = maskQuery(p.query, "x")
	}
	s := p.String()
	if i := strings.IndexAny(s, anySeps); i >= 0 {
		s = s[:i+1] + maskParams(s[i+1:], anySeps, "x")
	}
	return s
}
