package generation

// Mcp-Param-* headers (SEP-2243): a tool may mark properties of its input
// schema with "x-mcp-header": <Name>, and a request calling it must carry
// each such argument in a header Mcp-Param-<Name> as well as in its body.
// The bridge learns the marks from the tools/list results it relays; a
// tool whose marks are invalid is left out of the list, as the revision
// requires of clients.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
)

// ParamHeaderPrefix starts the name of every parameter header.
const ParamHeaderPrefix = "Mcp-Param-"

// MaxTools bounds the tools whose header bindings a session remembers.
const MaxTools = 4096

// Binding ties an argument (its path of property names) to the header
// that mirrors it.
type Binding struct {
	Path   []string
	Header string
}

type schemaProperty struct {
	Type       json.RawMessage           `json:"type"`
	XMCPHeader json.RawMessage           `json:"x-mcp-header"`
	Properties map[string]schemaProperty `json:"properties"`
}

// Bindings reads a tool's input schema's x-mcp-header marks, at any depth,
// and checks them: each on a property of type string, integer or boolean,
// naming a non-empty HTTP token, no two the same (case-insensitively).
func Bindings(inputSchema json.RawMessage) ([]Binding, error) {
	var s schemaProperty
	if len(inputSchema) == 0 || isNull(inputSchema) {
		return nil, nil
	}
	if err := json.Unmarshal(inputSchema, &s); err != nil {
		return nil, fmt.Errorf("inputSchema: %v", err)
	}
	var out []Binding
	seen := map[string]bool{}
	var walk func(props map[string]schemaProperty, prefix []string) error
	walk = func(props map[string]schemaProperty, prefix []string) error {
		for name, p := range props {
			path := append(append([]string(nil), prefix...), name)
			if p.XMCPHeader != nil {
				var typ, header string
				_ = json.Unmarshal(p.Type, &typ)
				if typ != "string" && typ != "integer" && typ != "boolean" {
					return fmt.Errorf("property %q: x-mcp-header on a property of type %s", strings.Join(path, "."), p.Type)
				}
				if json.Unmarshal(p.XMCPHeader, &header) != nil || !isToken(header) {
					return fmt.Errorf("property %q: x-mcp-header %s is not an HTTP token", strings.Join(path, "."), p.XMCPHeader)
				}
				if seen[strings.ToLower(header)] {
					return fmt.Errorf("property %q: x-mcp-header %q repeated", strings.Join(path, "."), header)
				}
				seen[strings.ToLower(header)] = true
				out = append(out, Binding{Path: path, Header: header})
			}
			if err := walk(p.Properties, path); err != nil {
				return err
			}
		}
		return nil
	}
	return out, walk(s.Properties, nil)
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// FilterTools reads a tools/list response: it returns the bindings of each
// tool, and the response without the tools whose marks are invalid
// (unchanged, same bytes, when none is).
func FilterTools(msg json.RawMessage) (out json.RawMessage, bindings map[string][]Binding, dropped []string) {
	var env map[string]json.RawMessage
	var res map[string]json.RawMessage
	var tools []json.RawMessage
	if json.Unmarshal(msg, &env) != nil || json.Unmarshal(env["result"], &res) != nil || json.Unmarshal(res["tools"], &tools) != nil {
		return msg, nil, nil
	}
	bindings = map[string][]Binding{}
	kept := tools[:0:0]
	for _, raw := range tools {
		var tool struct {
			Name        string          `json:"name"`
			InputSchema json.RawMessage `json:"inputSchema"`
		}
		_ = json.Unmarshal(raw, &tool)
		b, err := Bindings(tool.InputSchema)
		if err != nil || tool.Name == "" {
			dropped = append(dropped, tool.Name)
			continue
		}
		if len(b) > 0 {
			bindings[tool.Name] = b
		}
		kept = append(kept, raw)
	}
	if len(dropped) == 0 {
		return msg, bindings, nil
	}
	res["tools"], _ = marshal(kept)
	env["result"], _ = marshal(res)
	out, err := marshal(env)
	if err != nil {
		return msg, bindings, dropped
	}
	return out, bindings, dropped
}

// ParamHeaders are the Mcp-Param-* headers of a tools/call's params: one
// per binding whose argument is present, not null and a primitive.
func ParamHeaders(bindings []Binding, params json.RawMessage) map[string]string {
	if len(bindings) == 0 {
		return nil
	}
	var p struct {
		Arguments map[string]json.RawMessage `json:"arguments"`
	}
	if json.Unmarshal(params, &p) != nil || p.Arguments == nil {
		return nil
	}
	out := make(map[string]string, len(bindings))
	for _, b := range bindings {
		v, ok := lookup(p.Arguments, b.Path)
		if !ok || isNull(v) {
			continue
		}
		if s, ok := primitive(v); ok {
			out[ParamHeaderPrefix+b.Header] = HeaderValue(s)
		}
	}
	return out
}

func lookup(args map[string]json.RawMessage, path []string) (json.RawMessage, bool) {
	cur, ok := args[path[0]]
	for _, part := range path[1:] {
		if !ok {
			return nil, false
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(cur, &obj) != nil {
			return nil, false
		}
		cur, ok = obj[part]
	}
	return cur, ok
}

// primitive is the header form of a string, boolean or safe integer.
func primitive(v json.RawMessage) (string, bool) {
	var x any
	if json.Unmarshal(v, &x) != nil {
		return "", false
	}
	switch x := x.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53-1 {
			return "", false
		}
		return strconv.FormatInt(int64(x), 10), true
	}
	return "", false
}

// HeaderValue encodes v as the revision wants header values mirrored from
// the body: as is when it is plain visible ASCII without surrounding
// blanks (and does not look like an encoded value), otherwise base64
// inside "=?base64?…?=".
func HeaderValue(v string) string {
	plain := v == "" || (v[0] != ' ' && v[0] != '\t' && v[len(v)-1] != ' ' && v[len(v)-1] != '\t')
	for i := 0; plain && i < len(v); i++ {
		plain = v[i] >= 0x20 && v[i] <= 0x7e
	}
	if plain && !(strings.HasPrefix(v, "=?base64?") && strings.HasSuffix(v, "?=")) {
		return v
	}
	return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(v)) + "?="
}

// Tools are the x-mcp-header bindings learned from the tools/list
// results a bridge relays, by tool name, at most MaxTools of them. Safe
// for concurrent use.
type Tools struct {
	mu sync.Mutex
	m  map[string][]Binding
}

// Learn records the bindings of a tools/list response's tools.
func (t *Tools) Learn(bindings map[string][]Binding) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil || len(t.m)+len(bindings) > MaxTools {
		t.m = make(map[string][]Binding, len(bindings))
	}
	for name, b := range bindings {
		if len(t.m) >= MaxTools {
			break
		}
		t.m[name] = b
	}
}

// Of are the bindings learned for a tool, nil if none.
func (t *Tools) Of(name string) []Binding {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[name]
}

// LearnTools records the bindings of a tools/list response's tools.
func (s *Session) LearnTools(bindings map[string][]Binding) { s.tools.Learn(bindings) }

// ToolBindings are the bindings learned for a tool, nil if none.
func (s *Session) ToolBindings(name string) []Binding { return s.tools.Of(name) }

// ErrorCode is the code of an error response, 0 for any other message.
func ErrorCode(msg json.RawMessage) int {
	if absent(msg, `"error"`) {
		return 0 // no error member: no need to decode the whole result
	}
	var env struct {
		Error *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(msg, &env) != nil || env.Error == nil {
		return 0
	}
	return env.Error.Code
}
