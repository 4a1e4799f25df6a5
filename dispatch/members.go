package dispatch

// Reading a JSON object's members by their exact keys. encoding/json
// matches keys case-insensitively and lets a repeated key win silently,
// while the MCP SDKs upstream match exactly: decoding with it would let a
// body such as {"params":{"name":"echo","Name":"add"}} show one tool name
// to Caddy (Mcp-Name) and another to the server.

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

var errDuplicateKey = errors.New("duplicate key")

// sameButCase refuses a key that an upstream decoding with Go's
// encoding/json would take for one of keys (it matches keys without
// regard to case, Unicode folding included, and lets the last win) while
// the bridge, reading exact keys, would not.
func sameButCase(key string, keys ...string) error {
	for _, k := range keys {
		if key != k && strings.EqualFold(key, k) {
			return fmt.Errorf("key %q differs from %q only in case", key, k)
		}
	}
	return nil
}

// eachMember calls f with the key (unescaped) and the value (as written)
// of every member of obj, in order. obj must be a valid JSON object; f's
// error stops the walk and is returned. A key without escapes is a view
// of obj's bytes (see jsonStringView), valid during the call only: f
// must copy it to keep it.
func eachMember(obj []byte, f func(key string, value []byte) error) error {
	i := skipSpace(obj, 0) + 1 // past '{'
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return nil
		}
		if obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
		end := skipString(obj, i)
		key, ok := jsonStringView(obj[i:end])
		if !ok {
			return errors.New("malformed key")
		}
		i = skipSpace(obj, end) + 1 // past ':'
		i = skipSpace(obj, i)
		vend := skipValue(obj, i)
		if err := f(key, obj[i:vend]); err != nil {
			return err
		}
		i = vend
	}
}

// jsonString decodes v if it is a JSON string.
func jsonString(v []byte) (string, bool) {
	s, ok := jsonStringView(v)
	if !ok || len(s) == 0 || unsafe.StringData(s) != &v[1] {
		return s, ok // decoded into a string of its own already
	}
	return strings.Clone(s), true
}

// jsonStringView is jsonString without a copy when v holds no escape:
// the string is then v's own bytes, valid only while they are neither
// changed nor let go of. Every member key of every message is read, and
// most are only compared.
func jsonStringView(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	for _, c := range v[1 : len(v)-1] {
		if c == '\\' {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return "", false
			}
			return s, true
		}
	}
	return unsafe.String(unsafe.SliceData(v[1:]), len(v)-2), true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string that starts at i.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index just past the value that starts at i.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}
