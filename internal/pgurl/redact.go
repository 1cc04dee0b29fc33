package pgurl

import (
	"net/url"
	"strings"
)

// Mask stands for a password that is not shown; it is what
// url.URL.Redacted writes.
const Mask = "xxxxx"

// What Redact returns for a URL it does not show.
const (
	UnparsableText = "(unparsable URL)"
	AmbiguousText  = "(ambiguous URL, not shown)"
)

// Redact returns raw with every password replaced by Mask: the password of
// the user info, the value of every query key that names a password (see
// the package documentation), and, as a last resort, whatever follows
// "password=" anywhere else. It works on the URL as net/url parses it, so
// it returns AmbiguousText for a URL that pgx reads differently
// (Ambiguous), and UnparsableText for one that is not an absolute
// hierarchical URL (scheme://host/... or scheme:/path): a password may sit
// anywhere in a key=value string or an opaque URL such as
// "postgres:user:pw@host". Redact("") is "".
func Redact(raw string) string {
	if raw == "" {
		return ""
	}
	if Ambiguous(raw) {
		return AmbiguousText
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		return UnparsableText
	}
	// The raw query, not url.ParseQuery's reading of it: that drops a pair
	// with a bad escape ("password=50%off") or a ';', which would then be
	// shown as it is. The order of the parameters is kept.
	u.RawQuery = maskQuery(u.RawQuery, Mask)
	return maskOutside(u.Redacted())
}

// maskOutside replaces the value of every key=value piece whose key names
// a password (its escapes decoded, in any case, as namesPassword reads a
// query key) by Mask, up to the next byte of outsideEnds. A string that is
// not quite a URL ("x:/password=...", "x:/pass%77ord=...") may hold a
// password outside the query; masking too much there costs nothing.
func maskOutside(s string) string {
	var b strings.Builder
	done := 0 // s[:done] is in b
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			continue
		}
		key := s[strings.LastIndexAny(s[:i], outsideEnds)+1 : i]
		if !strings.HasSuffix(asciiLower(unescape(key)), "password") {
			continue
		}
		end := len(s)
		if k := strings.IndexAny(s[i+1:], outsideEnds); k >= 0 {
			end = i + 1 + k
		}
		b.WriteString(s[done : i+1])
		b.WriteString(Mask)
		done, i = end, end-1
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// asciiLower lowers ASCII letters only, byte by byte, so byte offsets stay
// those of s. (strings.ToLower and strings.Map change the length of some
// letters and of invalid UTF-8.)
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
