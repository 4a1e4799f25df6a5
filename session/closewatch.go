package session

// Cancelling a session's work in flight when it closes, without an
// allocation per piece of work.

// Canceler is work that stops when Cancel is called.
type Canceler interface{ Cancel() }

// CloseWatch has a Canceler cancelled when its session closes (see
// Session.WatchClose). It is the caller's, kept in its own state: a
// dispatch watches its session this way on every call, where
// context.AfterFunc on the session's context takes three allocations.
type CloseWatch struct {
	c          Canceler
	s          *Session
	prev, next *CloseWatch
	linked     bool
}

// WatchClose has c cancelled when s closes, at once if it has, until
// w.Stop. w must not be watching already.
func (s *Session) WatchClose(w *CloseWatch, c Canceler) {
	w.c, w.s = c, s
	s.mu.Lock()
	if s.watchesClosed {
		s.mu.Unlock()
		c.Cancel()
		return
	}
	w.next = s.watches
	if w.next != nil {
		w.next.prev = w
	}
	w.prev, w.linked = nil, true
	s.watches = w
	s.mu.Unlock()
}

// Stop ends the watch; Cancel may still be running, or about to run,
// from a Close that began before.
func (w *CloseWatch) Stop() {
	s := w.s
	if s == nil {
		return
	}
	s.mu.Lock()
	if w.linked {
		if w.prev != nil {
			w.prev.next = w.next
		} else {
			s.watches = w.next
		}
		if w.next != nil {
			w.next.prev = w.prev
		}
		w.prev, w.next, w.linked = nil, nil, false
	}
	s.mu.Unlock()
}

// cancelWatches cancels what watches s; called once, by Close.
func (s *Session) cancelWatches() {
	s.mu.Lock()
	s.watchesClosed = true
	var cs []Canceler
	for w := s.watches; w != nil; w = w.next {
		cs = append(cs, w.c)
		w.linked = false
	}
	s.watches = nil
	s.mu.Unlock()
	for _, c := range cs {
		c.Cancel()
	}
}
