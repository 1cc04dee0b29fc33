package pgurl

import "strings"

// FirstSchema returns the first schema a search_path value names, as
// PostgreSQL reads it (SplitIdentifierString): the list is split at commas
// outside double quotes, spaces around each name are dropped, a quoted
// name is taken as written (a doubled quote is one quote), and an unquoted
// one is folded to lower case (ASCII letters, as the server does in UTF-8)
// and truncated to 63 bytes. It returns "" for an empty list or one that
// PostgreSQL would refuse (an unterminated quote, an empty name). The
// result may be "$user", which the server reads as the session user's
// name: callers that need a named schema must treat it as such.
func FirstSchema(searchPath string) string {
	s := strings.TrimLeft(searchPath, " \t\n\r\f\v")
	var name string
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		i := 1
		for {
			j := strings.IndexByte(s[i:], '"')
			if j < 0 {
				return "" // unterminated
			}
			b.WriteString(s[i : i+j])
			i += j + 1
			if i < len(s) && s[i] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			break
		}
		name = b.String()
		rest := strings.TrimLeft(s[i:], " \t\n\r\f\v")
		if rest != "" && rest[0] != ',' {
			return ""
		}
	} else {
		end := strings.IndexByte(s, ',')
		if end < 0 {
			end = len(s)
		}
		name = strings.TrimRight(s[:end], " \t\n\r\f\v")
		if strings.ContainsAny(name, " \t\n\r\f\v\"") {
			return "" // two words, or a quote inside: PostgreSQL refuses the list
		}
		name = asciiLower(name)
	}
	if len(name) > 63 {
		// NAMEDATALEN-1, cut at a character boundary as the server does.
		n := 63
		for n > 0 && name[n]&0xC0 == 0x80 {
			n--
		}
		name = name[:n]
	}
	return name
}
