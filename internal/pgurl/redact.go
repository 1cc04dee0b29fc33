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

// maskOutside replaces whatever follows "password=", in any case, up to the
// next byte of outsideEnds, by Mask. A string that is not quite a URL
// ("x:/password=...") may hold a password outside the query.
func maskOutside(s string) string {
	const key = "password="
	if !strings.Contains(asciiLower(s), key) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(asciiLower(s), key)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := i + len(key)
		end := len(s)
		if k := strings.IndexAny(s[j:], outsideEnds); k >= 0 {
			end = j + k
		}
		b.WriteString(s[:j])
		b.WriteString(Mask)
		s = s[end:]
	}
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
