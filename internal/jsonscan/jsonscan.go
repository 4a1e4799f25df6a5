// Package jsonscan reads the members of a JSON object the caller has
// already checked is valid, without decoding it: where each member's key
// and value lie, keys as views of the bytes where they hold no escape.
// The bridge reads every message's envelope and rewrites a few members
// of messages it passes on; decoding them into maps and encoding them
// again cost more than the rest of its work on a call.
package jsonscan

import (
	"encoding/json"
	"errors"
	"strings"
	"unsafe"
)

// EachMember calls f with the key (unescaped) and the value (as written)
// of every member of obj, in order. obj must be a valid JSON object; f's
// error stops the walk and is returned. A key without escapes is a view
// of obj's bytes (see StringView), valid during the call only: f
// must copy it to keep it.
func EachMember(obj []byte, f func(key string, value []byte) error) error {
	i := SkipSpace(obj, 0) + 1 // past '{'
	for {
		i = SkipSpace(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return nil
		}
		if obj[i] == ',' {
			i = SkipSpace(obj, i+1)
		}
		end := SkipString(obj, i)
		key, ok := StringView(obj[i:end])
		if !ok {
			return errors.New("malformed key")
		}
		i = SkipSpace(obj, end) + 1 // past ':'
		i = SkipSpace(obj, i)
		vend := SkipValue(obj, i)
		if err := f(key, obj[i:vend]); err != nil {
			return err
		}
		i = vend
	}
}

// String decodes v if it is a JSON string.
func String(v []byte) (string, bool) {
	s, ok := StringView(v)
	if !ok || len(s) == 0 || unsafe.StringData(s) != &v[1] {
		return s, ok // decoded into a string of its own already
	}
	return strings.Clone(s), true
}

// StringView is String without a copy when v holds no escape:
// the string is then v's own bytes, valid only while they are neither
// changed nor let go of. Every member key of every message is read, and
// most are only compared.
func StringView(v []byte) (string, bool) {
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

func SkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// SkipString returns the index just past the string that starts at i.
func SkipString(b []byte, i int) int {
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

// SkipValue returns the index just past the value that starts at i.
func SkipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return SkipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = SkipString(b, i)
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

// Member is one member of an object: its key (unescaped; a view of the
// object's bytes when it holds no escape), where the whole member lies
// (key through value) and the bytes of its value.
type Member struct {
	Key        string
	Start, End int
	Value      []byte
}

// Members lists the members of obj, a valid JSON object, with where they
// lie. ok is false for anything else, for a repeated key (decoders differ
// on which wins) or for more than max members (the check for repeats is
// quadratic): the caller then takes a slow path of its own.
func Members(obj []byte, max int) (out []Member, ok bool) {
	i := SkipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false
	}
	i++
	for {
		i = SkipSpace(obj, i)
		if i >= len(obj) {
			return nil, false
		}
		if obj[i] == '}' {
			return out, SkipSpace(obj, i+1) == len(obj)
		}
		if obj[i] == ',' && len(out) > 0 {
			i = SkipSpace(obj, i+1)
		}
		if i >= len(obj) || obj[i] != '"' {
			return nil, false
		}
		start := i
		end := SkipString(obj, i)
		key, ok := StringView(obj[i:end])
		if !ok {
			return nil, false
		}
		i = SkipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return nil, false
		}
		v := SkipSpace(obj, i+1)
		ve := SkipValue(obj, v)
		if v >= len(obj) || Find(out, key) != nil || len(out) == max {
			return nil, false
		}
		if out == nil {
			out = make([]Member, 0, 8)
		}
		out = append(out, Member{Key: key, Start: start, End: ve, Value: obj[v:ve]})
		i = ve
	}
}

// Find is the member of ms named key, nil if none.
func Find(ms []Member, key string) *Member {
	for i := range ms {
		if ms[i].Key == key {
			return &ms[i]
		}
	}
	return nil
}
