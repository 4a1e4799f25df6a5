package stdio

import (
	"runtime"
	"strings"
)

// DefaultInheritedEnv names the variables of the caller's environment a
// process inherits by default: what programs need to run and find their
// way (the search path, home, user, locale, time zone, temporary
// directory; on Windows, the system's directories and profile), and none
// of the variables that commonly carry a secret. A name ending in * is a
// prefix.
var DefaultInheritedEnv = defaultInheritedEnv(runtime.GOOS)

func defaultInheritedEnv(goos string) []string {
	names := []string{"PATH", "HOME", "USER", "LANG", "LC_*", "TZ", "TMPDIR"}
	if goos == "windows" {
		names = append(names,
			"SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT",
			"TEMP", "TMP", "USERPROFILE", "USERNAME", "USERDOMAIN",
			"HOMEDRIVE", "HOMEPATH", "APPDATA", "LOCALAPPDATA", "PROGRAMDATA",
			"PROGRAMFILES", "PROGRAMFILES(X86)", "COMMONPROGRAMFILES",
			"PROCESSOR_ARCHITECTURE", "NUMBER_OF_PROCESSORS", "OS")
	}
	return names
}

// FilterEnv returns the entries (KEY=VALUE) of environ whose key is one of
// names, or starts with the prefix of a name ending in *. Keys compare
// ignoring case on Windows, whose environment does.
func FilterEnv(environ, names []string) []string {
	return filterEnv(environ, names, runtime.GOOS == "windows")
}

func filterEnv(environ, names []string, foldCase bool) []string {
	out := []string{}
	for _, kv := range environ {
		key, _, ok := strings.Cut(kv, "=")
		if !ok || key == "" {
			continue // Windows' per-drive "=C:=C:\dir" entries among them
		}
		for _, name := range names {
			if envNameMatches(key, name, foldCase) {
				out = append(out, kv)
				break
			}
		}
	}
	return out
}

func envNameMatches(key, name string, foldCase bool) bool {
	if foldCase {
		key, name = strings.ToUpper(key), strings.ToUpper(name)
	}
	if prefix, ok := strings.CutSuffix(name, "*"); ok {
		return strings.HasPrefix(key, prefix)
	}
	return key == name
}
