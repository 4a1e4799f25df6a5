package stdio

import (
	"slices"
	"testing"
)

func TestFilterEnv(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin", "HOME=/root", "REDIS_URL=redis://:secret@db:6379",
		"LC_ALL=C.UTF-8", "LC_TIME=de_DE", "LCX=no", "LANG=C", "TZ=UTC",
		"AWS_SECRET_ACCESS_KEY=k", "GITHUB_TOKEN=g", "=C:=C:\\dir", "NOEQUALS",
	}
	tests := []struct {
		name     string
		names    []string
		foldCase bool
		want     []string
	}{
		{"default list", defaultInheritedEnv("linux"), false,
			[]string{"PATH=/usr/bin", "HOME=/root", "LC_ALL=C.UTF-8", "LC_TIME=de_DE", "LANG=C", "TZ=UTC"}},
		{"more names", append(defaultInheritedEnv("linux"), "GITHUB_TOKEN"), false,
			[]string{"PATH=/usr/bin", "HOME=/root", "LC_ALL=C.UTF-8", "LC_TIME=de_DE", "LANG=C", "TZ=UTC", "GITHUB_TOKEN=g"}},
		{"prefix", []string{"AWS_*"}, false, []string{"AWS_SECRET_ACCESS_KEY=k"}},
		{"case matters on Unix", []string{"path"}, false, []string{}},
		{"case ignored on Windows", []string{"path"}, true, []string{"PATH=/usr/bin"}},
		{"nothing", nil, false, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := filterEnv(environ, tc.names, tc.foldCase)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDefaultInheritedEnvWindows(t *testing.T) {
	// Programs on Windows do not start without SYSTEMROOT.
	names := defaultInheritedEnv("windows")
	for _, n := range []string{"PATH", "SYSTEMROOT", "TEMP", "USERPROFILE", "APPDATA", "PATHEXT", "COMSPEC"} {
		if !slices.Contains(names, n) {
			t.Errorf("%s missing from the Windows default list", n)
		}
	}
}
