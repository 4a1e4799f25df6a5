package jsonscan

import "testing"

func TestMembers(t *testing.T) {
	obj := []byte(` { "a" : 1 , "b\u0063":{"x":[1,"}"]}, "d":"e\"f" } `)
	ms, ok := Members(obj, 8)
	if !ok || len(ms) != 3 {
		t.Fatalf("Members = %+v, %v", ms, ok)
	}
	for i, want := range []struct{ key, member, value string }{
		{"a", `"a" : 1`, `1`},
		{"bc", `"b\u0063":{"x":[1,"}"]}`, `{"x":[1,"}"]}`},
		{"d", `"d":"e\"f"`, `"e\"f"`},
	} {
		m := ms[i]
		if m.Key != want.key || string(obj[m.Start:m.End]) != want.member || string(m.Value) != want.value {
			t.Errorf("member %d = %q %q %q, want %+v", i, m.Key, obj[m.Start:m.End], m.Value, want)
		}
	}
	if Find(ms, "bc") != &ms[1] || Find(ms, "x") != nil {
		t.Error("Find")
	}
	for _, bad := range []string{`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `[1]`, `{"a":1} x`, `{"a":1,"b":2,"c":3}`} {
		if ms, ok := Members([]byte(bad), 2); ok {
			t.Errorf("Members(%s) = %+v, want not ok", bad, ms)
		}
	}
	if ms, ok := Members([]byte(`{}`), 2); !ok || len(ms) != 0 {
		t.Errorf("Members({}) = %+v, %v", ms, ok)
	}
}
