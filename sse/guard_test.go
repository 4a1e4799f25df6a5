package sse

import (
	"testing"
	"time"
)

func TestSpinGuard(t *testing.T) {
	t0 := time.Unix(1000, 0)
	t.Run("trips on max+1 idle frames within the window", func(t *testing.T) {
		g := NewSpinGuard(3, time.Second)
		for i := range 3 {
			if g.Idle(t0.Add(time.Duration(i) * time.Millisecond)) {
				t.Fatalf("tripped after %d frames", i+1)
			}
		}
		if !g.Idle(t0.Add(3 * time.Millisecond)) {
			t.Fatal("did not trip on the 4th frame within the window")
		}
		if g.Total() != 4 {
			t.Errorf("Total = %d, want 4", g.Total())
		}
	})
	t.Run("slow idle frames never trip", func(t *testing.T) {
		g := NewSpinGuard(3, time.Second)
		for i := range 100 {
			if g.Idle(t0.Add(time.Duration(i) * 400 * time.Millisecond)) {
				t.Fatalf("tripped at frame %d spaced 400ms apart", i)
			}
		}
	})
	t.Run("off", func(t *testing.T) {
		g := NewSpinGuard(0, time.Second)
		for range 1000 {
			if g.Idle(t0) {
				t.Fatal("a disabled guard tripped")
			}
		}
	})
}
