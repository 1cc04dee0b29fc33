package pgurl

import (
	"cmp"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// RedactText returns text with every occurrence of each of secrets
// replaced by a placeholder (Mask, unless a secret contains an 'x'), and
// nothing else changed. It is for messages that have no structure to work
// on, such as a pgx or server error, whose text is not promised to be free
// of the password it was given: the cause stays readable, the password
// does not.
//
// Each secret is looked for as written and in the forms a message may
// quote it in: percent-encoded as in a query, a path or the user info of
// a URL (upper- and lower-case hex), and escaped as Go's %q writes it.
// Longer forms go first, so that a password which contains another
// ("postgres123" and "postgres") is masked whole.
//
// Only the secrets' own occurrences change, wherever they are. So when a
// password is also a user or database name (the README's
// postgres:postgres@.../postgres), those names are masked too: the reader
// loses a name they can find in their own URL, which is the price of never
// showing a password. A short password ("a") masks every occurrence of it,
// inside words too, but nothing beyond them.
//
// The result holds none of the secrets' forms, even where a replacement
// meets the text around it: the placeholder is made of a byte that none of
// them contains (see maskByte).
func RedactText(text string, secrets []string) string {
	forms := textForms(secrets)
	if len(forms) == 0 {
		return text
	}
	c, ok := maskByte(forms)
	if !ok {
		// Every printable byte is in some secret: drop the occurrences
		// instead, until none is left (the text shrinks each round).
		for {
			prev := text
			for _, f := range forms {
				text = strings.ReplaceAll(text, f, "")
			}
			if text == prev {
				return text
			}
		}
	}
	mask := strings.Repeat(string(c), len(Mask))
	for _, f := range forms {
		text = strings.ReplaceAll(text, f, mask)
	}
	return text
}

// textForms returns the forms of secrets that RedactText looks for,
// without duplicates or empty strings, longest first.
func textForms(secrets []string) []string {
	var forms []string
	add := func(s string) {
		if s != "" && !slices.Contains(forms, s) {
			forms = append(forms, s)
		}
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		quoted := strconv.Quote(s)
		user := url.UserPassword("", s).String() // ":" + the escaped password
		for _, f := range []string{s, url.QueryEscape(s), url.PathEscape(s), user[1:], quoted[1 : len(quoted)-1]} {
			add(f)
			add(lowerEscapes(f))
		}
	}
	// Longest first; ties in a fixed order, so the result does not depend
	// on the order of secrets.
	slices.SortFunc(forms, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b))
	})
	return forms
}

// lowerEscapes returns s with the hex digits of its percent escapes in
// lowercase: "%2F" and "%2f" are the same byte to every URL reader.
func lowerEscapes(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' && isHex(b[i+1]) && isHex(b[i+2]) {
			b[i+1], b[i+2] = lowerHex(b[i+1]), lowerHex(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func lowerHex(c byte) byte {
	if c >= 'A' && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}

// maskByte chooses the byte the placeholder is made of: 'x' (as Mask),
// else another printable ASCII byte, that occurs in none of forms.
//
// Why that rules out a leak: a form cannot overlap a placeholder (it does
// not contain its byte), so any occurrence left would lie wholly in text
// between replacements; strings.ReplaceAll replaces the leftmost
// occurrences first, so it leaves none there; and replacing a later form
// only cuts such text into smaller pieces, which cannot hold an earlier
// form either.
func maskByte(forms []string) (byte, bool) {
	used := func(c byte) bool {
		for _, f := range forms {
			if strings.IndexByte(f, c) >= 0 {
				return true
			}
		}
		return false
	}
	for _, c := range []byte("x*#") {
		if !used(c) {
			return c, true
		}
	}
	for c := byte('!'); c <= '~'; c++ {
		if !used(c) {
			return c, true
		}
	}
	return 0, false
}
