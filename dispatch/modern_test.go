package dispatch

import (
	"testing"
	"time"
)

// TestRetryLaterDelay: the pause before retrying a round that asked for
// nothing starts at 250ms, doubles, and stays at 5s however many rounds
// came before (a shift past the cap must not overflow into no pause).
func TestRetryLaterDelay(t *testing.T) {
	for n, want := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		if got := retryLaterDelay(n); got != want {
			t.Errorf("retryLaterDelay(%d) = %s, want %s", n, got, want)
		}
	}
	for _, n := range []int{30, 36, 40, 63, 64, 1000} {
		if got := retryLaterDelay(n); got != 5*time.Second {
			t.Errorf("retryLaterDelay(%d) = %s, want 5s", n, got)
		}
	}
}
