package oauth

import "strings"

// Challenge is the value of a WWW-Authenticate header for a request that
// is refused (RFC 6750 section 3, RFC 9728 section 5.1): the Bearer
// scheme, where the resource's metadata is, the scope needed and, when a
// token was given, the error and a description. Values come from the
// configuration and from fixed texts, never from the request, so none
// needs escaping beyond what quote does against a stray quote.
func Challenge(metadataURL, scope, errCode, description string) string {
	var b strings.Builder
	b.WriteString(`Bearer resource_metadata=`)
	quote(&b, metadataURL)
	if scope != "" {
		b.WriteString(`, scope=`)
		quote(&b, scope)
	}
	if errCode != "" {
		b.WriteString(`, error=`)
		quote(&b, errCode)
		if description != "" {
			b.WriteString(`, error_description=`)
			quote(&b, description)
		}
	}
	return b.String()
}

func quote(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		if c < 0x20 || c == 0x7f {
			continue
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
}
