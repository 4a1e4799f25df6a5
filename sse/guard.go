package sse

import "time"

// SpinGuard detects a stream loop that spins: one that writes frames
// carrying no message (keepalives and the like) far faster than any
// healthy stream would. Frames that carry messages are never counted, so a
// burst of real traffic cannot trip it; mcpgateway's guard counted every
// frame and so cut healthy sessions during bursts of ten or more messages.
//
// A SpinGuard is used by one goroutine and is not safe for concurrent use.
type SpinGuard struct {
	max    int
	window time.Duration
	// times is a ring of the last max+1 idle-frame times; next is where the
	// next one goes and n how many are stored.
	times []time.Time
	next  int
	n     int
	total int
}

// NewSpinGuard returns a guard that trips when more than max idle frames
// are written within window. A max of zero or less returns nil, a guard
// that never trips.
func NewSpinGuard(max int, window time.Duration) *SpinGuard {
	if max <= 0 || window <= 0 {
		return nil
	}
	return &SpinGuard{max: max, window: window, times: make([]time.Time, max+1)}
}

// Idle records an idle frame written at now and reports whether the guard
// has tripped: max+1 idle frames within the window.
func (g *SpinGuard) Idle(now time.Time) bool {
	if g == nil {
		return false
	}
	g.total++
	g.times[g.next] = now
	g.next = (g.next + 1) % len(g.times)
	if g.n < len(g.times) {
		g.n++
		if g.n < len(g.times) {
			return false
		}
	}
	oldest := g.times[g.next] // the ring is full: next is the oldest entry
	return now.Sub(oldest) < g.window
}

// Total is how many idle frames have been recorded.
func (g *SpinGuard) Total() int {
	if g == nil {
		return 0
	}
	return g.total
}
