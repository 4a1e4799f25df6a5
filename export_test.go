package mcpsse

// StoreLen is the number of sessions in the shared store, for the
// end-to-end tests in package mcpsse_test; 0 when no config holds it.
func StoreLen() int { return liveSessionCount() }
