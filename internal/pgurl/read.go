package pgurl

import (
	"iter"
	"strings"
)

// The separator sets of the package documentation.
const (
	pgxSeps     = "&"      // pgx, like libpq, and net/url split a query here
	oldSeps     = "&;"     // net/url before Go 1.17, and other servers
	anySeps     = "?&;#"   // where any reader's parameter may start
	outsideEnds = "?&;#/ " // the end of a value outside the query
)

// querySplits are the readers' ways of splitting a query, coarsest first.
var querySplits = [...]string{pgxSeps, oldSeps, anySeps}

// IsURL reports whether pgx reads s as a URL. net/url lowercases the
// scheme; pgx does not, and reads anything but these two prefixes as
// key=value settings.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Ambiguous reports whether pgx and net/url read raw differently in a way
// that matters for redaction: its user info (see AmbiguousUserinfo), or a
// '#', which pgx reads as part of the query ("?a=b#&password=x" has a
// password) and net/url as the start of a fragment that redaction leaves
// alone.
func Ambiguous(raw string) bool {
	return AmbiguousUserinfo(raw) || strings.Contains(raw, "#")
}

// AmbiguousUserinfo reports whether pgx and net/url would split raw's user
// info differently. pgx ends it at the first '@' before any '/'; net/url
// ends the authority at the first '/', '?' or '#' and takes the user info
// up to its last '@'. Where they differ, a URL redacted by net/url's
// reading could show what pgx sends as the password.
func AmbiguousUserinfo(raw string) bool {
	p, ok := split(raw)
	if !ok || !p.hasUserinfo {
		return false // neither sees user info
	}
	if strings.ContainsAny(p.userinfo, "?#") {
		return true // net/url's authority ends before pgx's '@'
	}
	host := p.hostPath
	if i := strings.IndexAny(host, "/?#"); i >= 0 {
		host = host[:i]
	}
	return strings.Contains(host, "@") // net/url reads on to a later '@'
}

// strayAt reports whether an '@' stands past where pgx ends raw's user
// info. In a URL that pgx cannot parse, it may end a password that holds
// a '/' ("postgres://u:pa/ss@h/db"), which pgx then reads as a port and a
// database name and may quote as such; pgx's own redaction stops being
// exact there too.
func strayAt(raw string) bool {
	p, ok := split(raw)
	return ok && (strings.Contains(p.hostPath, "@") || strings.Contains(p.query, "@"))
}

// parts is a URL as pgx splits it, each part as written. Any scheme is
// split this way, not only the two pgx reads as URLs, so that a mistyped
// one ("POSTGRES://") hides its password too.
type parts struct {
	scheme      string // up to and including "://"
	userinfo    string // before the '@' that ends it
	hasUserinfo bool
	hostPath    string // hosts, ports and the path
	query       string // after the '?' that starts it
	hasQuery    bool
}

// split splits raw as pgx does; ok is false when raw has no "://".
func split(raw string) (p parts, ok bool) {
	i := strings.Index(raw, "://")
	if i < 0 {
		return parts{}, false
	}
	p.scheme, p.hostPath = raw[:i+len("://")], raw[i+len("://"):]
	if j := strings.IndexAny(p.hostPath, "@/"); j >= 0 && p.hostPath[j] == '@' {
		p.userinfo, p.hasUserinfo, p.hostPath = p.hostPath[:j], true, p.hostPath[j+1:]
	}
	if q := queryStart(p.hostPath); q >= 0 {
		p.query, p.hasQuery, p.hostPath = p.hostPath[q+1:], true, p.hostPath[:q]
	}
	return p, true
}

// password returns the password of the user info, as written.
func (p parts) password() (string, bool) {
	_, pw, ok := strings.Cut(p.userinfo, ":")
	return pw, ok
}

// String joins the parts again.
func (p parts) String() string {
	var b strings.Builder
	b.WriteString(p.scheme)
	if p.hasUserinfo {
		b.WriteString(p.userinfo)
		b.WriteByte('@')
	}
	b.WriteString(p.hostPath)
	if p.hasQuery {
		b.WriteByte('?')
		b.WriteString(p.query)
	}
	return b.String()
}

// queryStart returns the index of the '?' that starts pgx's query in s,
// what follows the user info, or -1. The hosts are a comma-separated list
// of names, each ended by a '/', '?' or ','; an IPv6 address in "[...]"
// may hold a '?' of its own. (pgx's parser and its redaction both walk the
// hosts this way.) Without a closing ']' pgx fails; the first '?' is then
// as good a guess as any.
func queryStart(s string) int {
	i := 0
	for {
		if i < len(s) && s[i] == '[' {
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return strings.IndexByte(s, '?')
			}
			i += end + 1
		}
		for i < len(s) && s[i] != '/' && s[i] != '?' && s[i] != ',' {
			i++
		}
		if i < len(s) && s[i] == ',' {
			i++
			continue
		}
		break
	}
	if i == len(s) {
		return -1
	}
	if s[i] == '?' {
		return i
	}
	// A path: the database name runs to the first '?'.
	if j := strings.IndexByte(s[i:], '?'); j >= 0 {
		return i + j
	}
	return -1
}

// A param is one key=value piece of a run of parameters, as written.
type param struct {
	key, value string
	hasValue   bool   // there was an '='
	sep        string // the separator that ends it; "" for the last
}

// params splits s, a run of parameters, at every byte of seps. The first
// piece is a parameter too: s starts where one does.
func params(s, seps string) iter.Seq[param] {
	return func(yield func(param) bool) {
		for {
			piece, sep := s, ""
			if i := strings.IndexAny(s, seps); i >= 0 {
				piece, sep, s = s[:i], s[i:i+1], s[i+1:]
			}
			var p param
			p.key, p.value, p.hasValue = strings.Cut(piece, "=")
			p.sep = sep
			if !yield(p) || sep == "" {
				return
			}
		}
	}
}

// anyParams returns the parameters any reader may see in raw: everything
// after the first byte of anySeps, split at each of them.
func anyParams(raw string) iter.Seq[param] {
	i := strings.IndexAny(raw, anySeps)
	if i < 0 {
		return func(func(param) bool) {}
	}
	return params(raw[i+1:], anySeps)
}

// maskParams returns s, a run of parameters split at the bytes of seps,
// with the value of every parameter whose key names a password replaced by
// mask. Everything else is kept as it is, in order.
func maskParams(s, seps, mask string) string {
	var b strings.Builder
	for p := range params(s, seps) {
		b.WriteString(p.key)
		if p.hasValue {
			b.WriteByte('=')
			if namesPassword(p.key) {
				b.WriteString(mask)
			} else {
				b.WriteString(p.value)
			}
		}
		b.WriteString(p.sep)
	}
	return b.String()
}

// maskQuery returns q, a query, with the value of every parameter whose key
// names a password replaced by mask, as each reader splits q in turn: so
// each reader's value is replaced whole ("password=a;b" is "a;b" to pgx),
// and each key is seen ("a=1;password=b" has one for net/url before Go
// 1.17).
func maskQuery(q, mask string) string {
	for _, seps := range querySplits {
		q = maskParams(q, seps, mask)
	}
	return q
}

// Keys returns the key of every parameter that any reader may see in raw:
// every piece after one of "?&;#" (see the package documentation), up to
// its '='. Each is decoded as pgx decodes keys: valid escapes decoded and
// spaces around dropped; a key pgx would refuse for a bad escape is
// returned as written. (A reader's key can be longer, "a;sslkey" to pgx;
// then it holds a separator and is no option's name.)
func Keys(raw string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for p := range anyParams(raw) {
			if !yield(strings.Trim(unescape(p.key), " ")) {
				return
			}
		}
	}
}

// namesPassword reports whether a query key, as written, names a
// password: see the package documentation.
func namesPassword(key string) bool {
	return strings.Contains(strings.ToLower(unescape(key)), "password") || badEscape(key)
}

// unescape decodes the valid %XX escapes of s and leaves the rest as it
// is, as pgx does when it looks for a password key in a URL it cannot
// parse.
func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// badEscape reports whether s holds a '%' that is not followed by two hex
// digits.
func badEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return true
			}
			i += 2
		}
	}
	return false
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
