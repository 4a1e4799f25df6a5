package dispatch

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestDetached: a detached context keeps its parent's values and none of
// its cancellation, whichever way it is asked (Err, Done, context.Cause,
// the cancellation of contexts made from it), and marks its descendants
// as the dispatch's own.
func TestDetached(t *testing.T) {
	type key struct{}
	parent, cancelParent := context.WithCancelCause(context.WithValue(context.Background(), key{}, "v"))
	d := &detached{parent}
	cancelParent(errors.New("the POST ended"))

	child := context.WithValue(d, struct{ k int }{1}, 1)
	if got := child.Value(key{}); got != "v" {
		t.Errorf("value through detached = %v, want v", got)
	}
	if v, _ := child.Value(inProcessKey{}).(bool); !v {
		t.Error("a descendant of detached is not marked in process")
	}
	if child.Err() != nil || child.Done() != nil {
		t.Errorf("detached is cancelled with its parent: Err %v", child.Err())
	}
	if cause := context.Cause(child); cause != nil {
		t.Errorf("context.Cause through detached = %v, want nil (the parent's cause leaked)", cause)
	}

	timed, cancel := context.WithTimeout(d, time.Hour)
	if timed.Err() != nil {
		t.Fatalf("a context made from detached is cancelled at once: %v", timed.Err())
	}
	cancel()
	select {
	case <-timed.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a context made from detached is not cancelled by its own cancel")
	}
	if cause := context.Cause(timed); cause != context.Canceled {
		t.Errorf("context.Cause of a context made from detached = %v, want its own", cause)
	}
}
