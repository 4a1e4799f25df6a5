package generation

// A scan of the members of a JSON object the bridge has already checked
// is valid (every message it reads was decoded once): where each member's
// key and value lie, so that one member can be replaced or removed
// without decoding the whole message into maps and encoding it again.

import "bytes"

// maxScanned is the most members scanMembers lists.
const maxScanned = 32

// member is one member of an object: its key as written (between the
// quotes, escapes kept), and the bytes of its value.
type member struct {
	key        []byte
	start, end int // of the whole member: key through value
	value      []byte
}

// scanMembers lists the members of obj, a valid JSON object. ok is false
// for anything else, for a key written with escapes (which a caller would
// have to unquote to compare), a repeated key or more than maxScanned
// members: the caller takes its slow path instead.
func scanMembers(obj []byte) (out []member, ok bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false
	}
	i++
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) {
			return nil, false
		}
		if obj[i] == '}' {
			return out, skipSpace(obj, i+1) == len(obj)
		}
		if obj[i] == ',' && len(out) > 0 {
			i = skipSpace(obj, i+1)
		}
		if i >= len(obj) || obj[i] != '"' {
			return nil, false
		}
		start := i
		end := skipString(obj, i)
		if end < 0 {
			return nil, false
		}
		key := obj[i+1 : end-1]
		for _, c := range key {
			if c == '\\' {
				return nil, false
			}
		}
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return nil, false
		}
		v := skipSpace(obj, i+1)
		ve := skipValue(obj, v)
		if ve < 0 {
			return nil, false
		}
		if findBytes(out, key) != nil || len(out) == maxScanned {
			// A repeated key means what decoders choose (the last one, for
			// encoding/json), and many members a quadratic check: both go
			// the slow way.
			return nil, false
		}
		if out == nil {
			out = make([]member, 0, 8)
		}
		out = append(out, member{key: key, start: start, end: ve, value: obj[v:ve]})
		i = ve
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"'),
// -1 if it does not end.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index after the value starting at b[i], -1 if
// it does not end.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				e := skipString(b, i)
				if e < 0 {
					return -1
				}
				i = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	// A number, true, false or null: up to the next delimiter.
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

// find is the member named key, nil if none.
func find(ms []member, key string) *member {
	for i := range ms {
		if string(ms[i].key) == key {
			return &ms[i]
		}
	}
	return nil
}

func findBytes(ms []member, key []byte) *member {
	for i := range ms {
		if bytes.Equal(ms[i].key, key) {
			return &ms[i]
		}
	}
	return nil
}
