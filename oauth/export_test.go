package oauth

import "crypto/sha256"

// ExchangeWaiters is how many calls wait for the exchange under way for
// subjectToken (-1: none is under way); for the tests.
func (x *Exchanger) ExchangeWaiters(subjectToken string) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	f, ok := x.flights[sha256.Sum256([]byte(subjectToken))]
	if !ok {
		return -1
	}
	return f.waiters
}
