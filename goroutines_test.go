package mcpsse_test

import (
	"fmt"
	"runtime/pprof"
	"slices"
	"strings"
)

// modulePath is the import path of this module's packages.
const modulePath = "github.com/mcpsse/caddy-mcp-sse"

// moduleGoroutines returns the goroutines of this module: those with a
// frame of one of its packages on their stack, or started by one (the
// test package's own, mcpsse_test, are not the module's). A count of every
// goroutine of the process would also count what the machine's load
// decides: keep-alive connections of reverse_proxy and of the test's
// clients, net/http's connection goroutines finishing, the runtime's own.
// Each is summed up by the module's innermost frame on it.
func moduleGoroutines() []string {
	var buf strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	var found []string
	for g := range strings.SplitSeq(buf.String(), "\n\n") {
		for line := range strings.SplitSeq(g, "\n") {
			fn := strings.TrimPrefix(line, "created by ")
			if ofModule(fn) {
				fn, _, _ = strings.Cut(fn, " in goroutine")
				if strings.HasSuffix(fn, ")") {
					fn = fn[:strings.LastIndex(fn, "(")] // the arguments
				}
				found = append(found, fn)
				break
			}
		}
	}
	slices.Sort(found)
	return found
}

// ofModule reports whether a stack line names a function of the module's
// packages (not of its test packages).
func ofModule(fn string) bool {
	rest, ok := strings.CutPrefix(fn, modulePath)
	if !ok {
		return false
	}
	if rest, ok = strings.CutPrefix(rest, "/"); ok {
		// A package under the module: its path, then ".func".
		pkg, _, _ := strings.Cut(rest, ".")
		return !strings.HasSuffix(pkg, "_test")
	}
	return strings.HasPrefix(rest, ".")
}

// summary counts each function in fns, for a failure message.
func summary(fns []string) string {
	var b strings.Builder
	for i := 0; i < len(fns); {
		j := i
		for j < len(fns) && fns[j] == fns[i] {
			j++
		}
		fmt.Fprintf(&b, "\t%d × %s\n", j-i, fns[i])
		i = j
	}
	return b.String()
}
