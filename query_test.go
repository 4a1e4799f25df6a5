package mcpsse

import (
	"net/url"
	"testing"
)

// queryParam agrees with url.Values.Get on what a POST's query may hold.
func TestQueryParam(t *testing.T) {
	for _, raw := range []string{
		"",
		"session_id=abc",
		"session_id=abc&x=1",
		"x=1&session_id=abc",
		"session_id=a&session_id=b",
		"session_id=",
		"session_id",
		"session%5Fid=abc",
		"session_id=a%2Db",
		"session_id=a+b",
		"session_id=%zz&session_id=ok",
		"a=1;session_id=bad&session_id=good",
		"session_id=a;b",
		"x=%zz&session_id=abc",
		"&&session_id=abc&",
	} {
		want, _ := url.ParseQuery(raw) // what it could parse, as Request.URL.Query
		if got := queryParam(raw, "session_id"); got != want.Get("session_id") {
			t.Errorf("queryParam(%q) = %q, url.Values.Get = %q", raw, got, want.Get("session_id"))
		}
	}
}

func FuzzQueryParam(f *testing.F) {
	f.Add("session_id=abc&x=1")
	f.Add("a=1;session_id=bad&session_id=go%6Fd")
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw)
		if got, want := queryParam(raw, "session_id"), q.Get("session_id"); got != want {
			t.Fatalf("queryParam(%q) = %q, url.Values.Get = %q", raw, got, want)
		}
	})
}

func BenchmarkQueryParam(b *testing.B) {
	raw := "session_id=0b6c3a43-1f0e-4c53-9d55-6b1f3c2a9e11"
	b.Run("queryParam", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			queryParam(raw, "session_id")
		}
	})
	b.Run("url.Values", func(b *testing.B) {
		b.ReportAllocs()
		u := &url.URL{RawQuery: raw}
		for b.Loop() {
			u.Query().Get("session_id")
		}
	})
}
