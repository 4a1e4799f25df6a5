package stdio

import (
	"errors"
	"testing"
	"time"
)

// frozenClock is a clock that never moves: a rate limit reading it grants
// its burst and nothing more, whatever the machine's speed.
func frozenClock() func() time.Time {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time { return t0 }
}

// TestLineOverDefaultMaxMessageSize: with the default limit (4 MiB), far
// longer than the read buffer, a longer line is read in many fragments;
// the whole line's length is what is checked.
func TestLineOverDefaultMaxMessageSize(t *testing.T) {
	if DefaultMaxMessageSize <= stdoutBufferSize {
		t.Fatalf("the default limit %d no longer exceeds the buffer %d: the test reads nothing across fragments", DefaultMaxMessageSize, stdoutBufferSize)
	}
	s := start(t, Config{StopTimeout: time.Second}, "-big-line", "5000000")
	exit := waitExit(t, s.p, 20*time.Second)
	if !errors.Is(exit.Cause, ErrMessageTooLarge) {
		t.Fatalf("exit %+v, want ErrMessageTooLarge for a 5 MB line", exit)
	}
	select {
	case m := <-s.messages:
		t.Fatalf("a %d-byte message was delivered over the 4 MiB limit", len(m))
	default:
	}
}

// TestSkippedStdoutLinesRateLimited: stdout lines that are not JSON-RPC
// are reported at most SkippedRate at once, and every line dropped is
// counted in what is reported.
func TestSkippedStdoutLinesRateLimited(t *testing.T) {
	const lines, rate = 100, 5
	s := start(t, Config{SkippedRate: rate, clock: frozenClock()}, "-stdout-lines", "100")
	s.handshake(t)
	stopWithin(t, s.p, 20*time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	// The burst, then at the end the last line dropped with the count of
	// the others.
	if len(s.skipped) != rate+1 {
		t.Fatalf("%d skipped lines reported with rate %d and a clock that does not move: %q", len(s.skipped), rate, s.skipped)
	}
	if got := len(s.skipped) + s.skippedSuppressed; got != lines {
		t.Errorf("%d lines reported + %d counted as suppressed = %d, want %d", len(s.skipped), s.skippedSuppressed, got, lines)
	}
	if last := s.skipped[len(s.skipped)-1]; last != "stdout line 99" {
		t.Errorf("last line reported %q, want the last one written", last)
	}
}

// TestStderrSuppressedCounted: the stderr lines dropped by the rate limit
// are counted in what is delivered, the count of a burst at the end
// included.
func TestStderrSuppressedCounted(t *testing.T) {
	const lines, rate = 100, 5
	s := start(t, Config{StderrRate: rate, clock: frozenClock()}, "-stderr-lines", "100")
	s.handshake(t)
	stopWithin(t, s.p, 20*time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.stderr) != rate+1 {
		t.Fatalf("%d stderr lines delivered with rate %d and a clock that does not move: %q", len(s.stderr), rate, s.stderr)
	}
	// The server writes its lines, then one more as it stops.
	if got := len(s.stderr) + s.stderrSuppressed; got < lines {
		t.Errorf("%d lines delivered + %d counted as suppressed = %d, want at least the %d written", len(s.stderr), s.stderrSuppressed, got, lines)
	}
	if last := s.stderr[len(s.stderr)-1]; last != s.p.LastStderr() {
		t.Errorf("last line delivered %q, want the last one written, %q", last, s.p.LastStderr())
	}
}

// TestRateLimitCappedAfterQuiet: a quiet minute refills the bucket to its
// depth, not to a minute's worth of tokens.
func TestRateLimitCappedAfterQuiet(t *testing.T) {
	const rate = 5
	l := newRateLimit(rate)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	allowed := func(at time.Time, n int) (ok, suppressed int) {
		for range n {
			a, s := l.allow(at)
			if a {
				ok++
			}
			suppressed += s
		}
		return ok, suppressed
	}
	if ok, _ := allowed(t0, 100); ok != rate {
		t.Fatalf("%d of a burst of 100 allowed at the start, want %d", ok, rate)
	}
	ok, suppressed := allowed(t0.Add(time.Minute), 100)
	if ok != rate {
		t.Errorf("%d of a burst of 100 allowed after a quiet minute, want %d", ok, rate)
	}
	if suppressed != 100-rate {
		t.Errorf("the first line after the quiet minute carried %d suppressed, want the %d of the first burst", suppressed, 100-rate)
	}
}
