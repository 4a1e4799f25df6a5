package generation

import (
	"sync"
	"time"
)

// Verdicts remembers, per upstream route, which generation answered the
// probe and what it said, for TTL: the revision asks clients to cache the
// era per origin and probe again when the cached assumption fails.
type Verdicts struct {
	// TTL is how long a verdict holds; zero means DefaultVerdictTTL.
	TTL time.Duration

	mu sync.Mutex
	m  map[string]verdict
}

type verdict struct {
	modern    bool
	discovery Discovery
	until     time.Time
}

// DefaultVerdictTTL is how long a route's generation is remembered.
const DefaultVerdictTTL = 5 * time.Minute

// maxVerdicts bounds the routes remembered; past it the map is emptied
// (the next probes fill it again).
const maxVerdicts = 1024

// Get returns the verdict remembered for route, if any is still fresh.
func (v *Verdicts) Get(route string) (modern bool, d Discovery, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.m[route]
	if !ok || time.Now().After(e.until) {
		return false, Discovery{}, false
	}
	return e.modern, e.discovery, true
}

// Set remembers a verdict for route.
func (v *Verdicts) Set(route string, modern bool, d Discovery) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil || len(v.m) >= maxVerdicts {
		v.m = make(map[string]verdict)
	}
	ttl := v.TTL
	if ttl == 0 {
		ttl = DefaultVerdictTTL
	}
	v.m[route] = verdict{modern: modern, discovery: d, until: time.Now().Add(ttl)}
}

// Forget drops the verdict for route: the next session probes again.
func (v *Verdicts) Forget(route string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.m, route)
}
