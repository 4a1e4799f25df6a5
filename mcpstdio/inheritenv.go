package mcpstdio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/mcpsse/caddy-mcp-sse/stdio"
)

// InheritEnv says which of Caddy's environment variables a process
// inherits. Empty or "on": the short list stdio.DefaultInheritedEnv
// names; "off": none; "all": every one; otherwise variable names (a name
// ending in * is a prefix) inherited besides those of the short list.
//
// In JSON it is one string ("on", "off", "all") or an array of names;
// true and false, what configs written before it held, read as "on" and
// "off".
type InheritEnv []string

// The words InheritEnv takes alone.
const (
	inheritOn  = "on"
	inheritOff = "off"
	inheritAll = "all"
)

// UnmarshalJSON reads a string, an array of names, or a bool.
func (ie *InheritEnv) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*ie = nil
		return nil
	case bytes.Equal(b, []byte("true")):
		*ie = InheritEnv{inheritOn}
		return nil
	case bytes.Equal(b, []byte("false")):
		*ie = InheritEnv{inheritOff}
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*ie = InheritEnv{s}
		return nil
	}
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return fmt.Errorf("inherit_env: want \"on\", \"off\", \"all\" or an array of variable names: %w", err)
	}
	*ie = names
	return nil
}

// MarshalJSON writes one word as a string, names as an array.
func (ie InheritEnv) MarshalJSON() ([]byte, error) {
	if len(ie) == 1 && isInheritWord(ie[0]) {
		return json.Marshal(ie[0])
	}
	return json.Marshal([]string(ie))
}

func isInheritWord(s string) bool {
	return s == inheritOn || s == inheritOff || s == inheritAll
}

// validate checks that a word stands alone and that names are names.
func (ie InheritEnv) validate() error {
	for _, name := range ie {
		switch {
		case isInheritWord(name) && len(ie) > 1:
			return fmt.Errorf("inherit_env: %q stands alone, not among names", name)
		case isInheritWord(name):
		case name == "" || name == "*" || strings.ContainsAny(name, "=\x00") || strings.Contains(strings.TrimSuffix(name, "*"), "*"):
			return fmt.Errorf("inherit_env: invalid variable name %q (a trailing * makes a prefix)", name)
		}
	}
	return nil
}

// environ returns the entries of environ (Caddy's) a process inherits.
func (ie InheritEnv) environ(environ []string) []string {
	switch {
	case slices.Equal(ie, InheritEnv{inheritOff}):
		return []string{}
	case slices.Equal(ie, InheritEnv{inheritAll}):
		return environ
	case len(ie) == 0 || slices.Equal(ie, InheritEnv{inheritOn}):
		return stdio.FilterEnv(environ, stdio.DefaultInheritedEnv)
	default:
		return stdio.FilterEnv(environ, append(slices.Clone(stdio.DefaultInheritedEnv), ie...))
	}
}
