package sse

import "time"

// SpinGuard detects a stream loop that spins: one that writes frames
// carrying no message (keepalives and the like) far faster than any
// healthy stream would. Frames that carry messages are never counted, so a
// burst of real traffic cannot trip it; mcpgateway's guard counted every
// frame and so cut healthy sessions during bursts of ten or more messages.
//
// It is a token bucket holding max tokens, refilled at max per window: an
// idle frame takes a token, and one that finds none trips the guard. So
// max+1 idle frames in a row within the window trip it, and idle frames
// spaced more than window/max apart never do. Two words per session,
// where a ring of timestamps would cost hundreds of bytes for every idle
// stream.
//
// A SpinGuard is used by one goroutine and is not safe for concurrent use.
// The zero value never trips.
type SpinGuard struct {
	max    float64
	rate   float64 // tokens per nanosecond
	tokens float64
	last   time.Time
	total  int
}

// NewSpinGuard returns a guard that trips when more than max idle frames
// are written within window. A max or window of zero or less returns the
// zero guard, which never trips.
func NewSpinGuard(max int, window time.Duration) SpinGuard {
	if max <= 0 || window <= 0 {
		return SpinGuard{}
	}
	return SpinGuard{max: float64(max), rate: float64(max) / float64(window), tokens: float64(max)}
}

// Idle records an idle frame written at now and reports whether the guard
// has tripped.
func (g *SpinGuard) Idle(now time.Time) bool {
	if g.max == 0 {
		return false
	}
	g.total++
	if !g.last.IsZero() {
		g.tokens = min(g.max, g.tokens+float64(now.Sub(g.last))*g.rate)
	}
	g.last = now
	if g.tokens < 1 {
		return true
	}
	g.tokens--
	return false
}

// Total is how many idle frames have been recorded.
func (g *SpinGuard) Total() int { return g.total }
