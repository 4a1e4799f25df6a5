package dispatch

import (
	"reflect"

	"github.com/caddyserver/caddy/v2"
)

// userIDPlaceholder is what Caddy's authentication handlers set for the
// authenticated user.
const userIDPlaceholder = "http.auth.user.id"

// replacerValues returns a copy of the values set on repl with Set: those
// the handlers before mcp_sse left for the handlers after it, such as the
// authenticated user's id and metadata (http.auth.user.*) and the
// captures of regexp matchers. caddy.Replacer has no way to list them, so
// they are read off its map with reflection, which stays read-only: the
// POST's own goroutine calls this while its handler runs, and nothing
// else writes the POST's replacer then. Values of kinds other than text,
// numbers and booleans are left out; should the Replacer's layout change,
// the user's id alone is copied (TestReplacerValues notices the change).
func replacerValues(repl *caddy.Replacer) map[string]any {
	static := reflect.ValueOf(repl).Elem().FieldByName("static")
	if !static.IsValid() || static.Kind() != reflect.Map || static.Type().Key().Kind() != reflect.String {
		if v, ok := repl.Get(userIDPlaceholder); ok {
			return map[string]any{userIDPlaceholder: v}
		}
		return nil
	}
	if static.Len() == 0 {
		return nil
	}
	out := make(map[string]any, static.Len())
	for it := static.MapRange(); it.Next(); {
		v := it.Value()
		for v.Kind() == reflect.Interface && !v.IsNil() {
			v = v.Elem()
		}
		switch v.Kind() {
		case reflect.String:
			out[it.Key().String()] = v.String()
		case reflect.Bool:
			out[it.Key().String()] = v.Bool()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			out[it.Key().String()] = v.Int()
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			out[it.Key().String()] = v.Uint()
		case reflect.Float32, reflect.Float64:
			out[it.Key().String()] = v.Float()
		}
	}
	return out
}
