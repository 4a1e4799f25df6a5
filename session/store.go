package session

import (
	"errors"
	"sync"
	"sync/atomic"
)

// ErrTooMany is returned by Add when the store holds its limit.
var ErrTooMany = errors.New("too many sessions")

// Store finds sessions by id. The in-memory store is the default; the
// interface leaves room for one shared between instances.
type Store interface {
	// Add stores s unless the store already holds limit sessions
	// (limit <= 0: no limit), in which case it returns ErrTooMany.
	Add(s *Session, limit int) error
	// Get returns the session with id, if any.
	Get(id string) (*Session, bool)
	// ByToken returns the session whose resume token is token, if any.
	ByToken(token string) (*Session, bool)
	// Retoken finds s by its current token, no longer by old.
	Retoken(s *Session, old string)
	// Remove forgets the session with id; removing twice is harmless.
	Remove(id string)
	// Len is the number of sessions held.
	Len() int
	// Range calls f for each session until f returns false.
	Range(f func(*Session) bool)
}

// shardCount spreads sessions over independently locked maps so that
// opening, finding and closing sessions on many cores do not queue on one
// lock. A power of two, for the mask.
const shardCount = 32

// Memory is an in-memory Store. The zero value is not usable; call
// NewMemory.
type Memory struct {
	shards [shardCount]shard
	tokens [shardCount]shard // the same sessions, by resume token
	count  atomic.Int64
}

type shard struct {
	mu sync.RWMutex
	m  map[string]*Session
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	st := &Memory{}
	for i := range st.shards {
		st.shards[i].m = make(map[string]*Session)
		st.tokens[i].m = make(map[string]*Session)
	}
	return st
}

func (st *Memory) shard(id string) *shard { return &st.shards[shardIndex(id)] }

func shardIndex(id string) uint32 {
	// FNV-1a over the id; ids are random, any cheap mix spreads them.
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return h & (shardCount - 1)
}

// Add implements Store.
func (st *Memory) Add(s *Session, limit int) error {
	// Reserve a place first, so that concurrent adds cannot overshoot the
	// limit, without a store-wide lock.
	if !AddWithin(&st.count, 1, int64(limit)) {
		return ErrTooMany
	}
	sh := st.shard(s.ID)
	sh.mu.Lock()
	if _, dup := sh.m[s.ID]; dup {
		st.count.Add(-1)
	}
	sh.m[s.ID] = s
	sh.mu.Unlock()
	st.indexToken(s, s.Token())
	return nil
}

func (st *Memory) indexToken(s *Session, token string) {
	tk := &st.tokens[shardIndex(token)]
	tk.mu.Lock()
	tk.m[token] = s
	tk.mu.Unlock()
}

func (st *Memory) unindexToken(s *Session, token string) {
	tk := &st.tokens[shardIndex(token)]
	tk.mu.Lock()
	if tk.m[token] == s {
		delete(tk.m, token)
	}
	tk.mu.Unlock()
}

// Retoken implements Store.
func (st *Memory) Retoken(s *Session, old string) {
	st.unindexToken(s, old)
	if _, ok := st.Get(s.ID); ok {
		st.indexToken(s, s.Token())
	}
}

// ByToken implements Store.
func (st *Memory) ByToken(token string) (*Session, bool) {
	tk := &st.tokens[shardIndex(token)]
	tk.mu.RLock()
	s, ok := tk.m[token]
	tk.mu.RUnlock()
	return s, ok
}

// Get implements Store.
func (st *Memory) Get(id string) (*Session, bool) {
	sh := st.shard(id)
	sh.mu.RLock()
	s, ok := sh.m[id]
	sh.mu.RUnlock()
	return s, ok
}

// Remove implements Store.
func (st *Memory) Remove(id string) {
	sh := st.shard(id)
	sh.mu.Lock()
	s, ok := sh.m[id]
	delete(sh.m, id)
	sh.mu.Unlock()
	if ok {
		st.count.Add(-1)
		st.unindexToken(s, s.Token())
	}
}

// Len implements Store.
func (st *Memory) Len() int {
	return int(st.count.Load())
}

// Range implements Store. Sessions added or removed while it runs may or
// may not be seen.
func (st *Memory) Range(f func(*Session) bool) {
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.RLock()
		list := make([]*Session, 0, len(sh.m))
		for _, s := range sh.m {
			list = append(list, s)
		}
		sh.mu.RUnlock()
		for _, s := range list {
			if !f(s) {
				return
			}
		}
	}
}

// CloseAll closes every session for reason.
func CloseAll(st Store, reason string) {
	st.Range(func(s *Session) bool {
		s.Close(reason)
		return true
	})
}
