package stdio

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// maxSkippedSnippet bounds how much of a skipped stdout line is reported.
const maxSkippedSnippet = 256

// readStdout reads the process's messages, one per line. A line that is
// not a JSON-RPC message is reported and skipped (servers that print a
// banner still work); a line over MaxMessageSize ends the process, and
// what follows is drained so the process never blocks on a full pipe.
func (p *Process) readStdout() {
	defer p.readers.Done()
	skipped := newLogLimit(p.cfg.SkippedRate, p.cfg.OnSkipped)
	defer skipped.flush()
	br := bufio.NewReaderSize(p.stdout, stdoutBufferSize)
	for {
		line, err := readLine(br, p.cfg.MaxMessageSize)
		if errors.Is(err, errLineTooLong) {
			cause := fmt.Errorf("%w (%d bytes)", ErrMessageTooLarge, p.cfg.MaxMessageSize)
			p.cause.CompareAndSwap(nil, &cause)
			p.StopAsync()
			_, _ = io.Copy(io.Discard, br)
			return
		}
		if len(line) > 0 {
			p.take(line, skipped)
		}
		if err != nil {
			return
		}
	}
}

// stdoutBufferSize is the read buffer of stdout; longer lines are read in
// fragments of it.
const stdoutBufferSize = 64 << 10

func (p *Process) take(line []byte, skipped *logLimit[[]byte]) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	if !isJSONRPC(line) {
		skipped.offer(p.now(), bytes.Clone(line[:min(len(line), maxSkippedSnippet)]))
		return
	}
	p.out.Add(1)
	if p.cfg.OnMessage != nil {
		p.cfg.OnMessage(bytes.Clone(line))
	}
}

// isJSONRPC reports whether line is one JSON-RPC 2.0 message: an object
// with "jsonrpc": "2.0". (Batches are not part of the stdio transport.)
func isJSONRPC(line []byte) bool {
	if line[0] != '{' {
		return false
	}
	var env struct {
		JSONRPC string `json:"jsonrpc"`
	}
	return json.Unmarshal(line, &env) == nil && env.JSONRPC == "2.0"
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its newline. At EOF it returns
// the unterminated rest, if any, with io.EOF.
func readLine(br *bufio.Reader, maxLen int) ([]byte, error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		n := len(buf) + len(frag)
		if err == nil {
			n-- // the newline
		}
		if n > maxLen {
			return nil, errLineTooLong
		}
		switch {
		case err == nil && buf == nil:
			return frag[:len(frag)-1], nil // the common case: no copy
		case err == nil:
			return append(buf, frag[:len(frag)-1]...), nil
		case errors.Is(err, bufio.ErrBufferFull):
			buf = append(buf, frag...)
		default:
			return append(buf, frag...), err
		}
	}
}

// readStderr reports the process's stderr line by line, each cut to
// StderrMaxLine bytes and their rate bounded, and keeps the last one for
// the exit's report. stderr is the server's log, not a sign of failure.
func (p *Process) readStderr() {
	defer p.readers.Done()
	br := bufio.NewReaderSize(p.stderr, max(p.cfg.StderrMaxLine, 16))
	limit := newLogLimit(p.cfg.StderrRate, p.cfg.OnStderr)
	defer limit.flush()
	for {
		frag, err := br.ReadSlice('\n')
		line := frag
		if errors.Is(err, bufio.ErrBufferFull) {
			// Keep the start; drop the rest of the line.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
		}
		if s := strings.TrimSpace(strings.ToValidUTF8(string(line), "\uFFFD")); s != "" {
			if len(s) > p.cfg.StderrMaxLine {
				s = s[:p.cfg.StderrMaxLine]
			}
			p.lastStderr.Store(&s)
			limit.offer(p.now(), s)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// logLimit hands lines to a callback at a bounded rate. A line over the
// rate is counted, not delivered; the count goes with the next line
// delivered, and at the end (flush) the last line suppressed is delivered
// with the count of those before it, so that neither the count nor a
// process's last words (often why it died) are lost to a burst.
type logLimit[T any] struct {
	deliver  func(T, int)
	bucket   *rateLimit
	last     T    // the last line suppressed
	haveLast bool // whether there is one not yet delivered
}

func newLogLimit[T any](rate int, deliver func(T, int)) *logLimit[T] {
	return &logLimit[T]{deliver: deliver, bucket: newRateLimit(rate)}
}

func (l *logLimit[T]) offer(now time.Time, line T) {
	if l.deliver == nil {
		return
	}
	ok, suppressed := l.bucket.allow(now)
	if !ok {
		l.last, l.haveLast = line, true
		return
	}
	l.haveLast = false
	l.deliver(line, suppressed)
}

// flush delivers the last line suppressed, if any, with the count of the
// lines suppressed before it.
func (l *logLimit[T]) flush() {
	if l.deliver == nil || !l.haveLast {
		return
	}
	l.haveLast = false
	n := l.bucket.suppressed - 1
	l.bucket.suppressed = 0
	l.deliver(l.last, n)
}

// rateLimit is a token bucket of rate tokens a second, as deep as rate.
type rateLimit struct {
	rate       float64
	tokens     float64
	last       time.Time
	suppressed int
}

func newRateLimit(rate int) *rateLimit {
	return &rateLimit{rate: float64(rate), tokens: float64(rate)}
}

func (l *rateLimit) allow(now time.Time) (bool, int) {
	if !l.last.IsZero() {
		l.tokens = min(l.rate, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	n := l.suppressed
	l.suppressed = 0
	return true, n
}
