package dispatch

// The context a dispatch's requests descend from.

import (
	"context"
	"time"
)

// detached is the values of a POST's context without its cancellation,
// as context.WithoutCancel gives, and marks what descends from it as the
// dispatch's own (InProcess). It is kept in the dispatch's template, so
// the two cost no allocation, where WithoutCancel and a WithValue took
// one each on every call.
type detached struct{ parent context.Context }

func (detached) Deadline() (time.Time, bool) { return time.Time{}, false }
func (detached) Done() <-chan struct{}       { return nil }
func (detached) Err() error                  { return nil }

// Value answers for the parent, whose cancelCtx, if it has one, is only
// ever looked for (by the context package) when Done is not nil, or
// when Err is not: both are nil here.
func (c *detached) Value(key any) any {
	if _, ok := key.(inProcessKey); ok {
		return true
	}
	return c.parent.Value(key)
}

func (c *detached) String() string { return "dispatch.detached" }
