package store

import (
	"sync"
	"time"
)

// Claimer is a store that several instances can agree through on who does
// something once: the first Claim of a key within its TTL wins, every
// other returns false. A store that is not a Claimer is used by one
// process (or does not dedupe); callers then do the work themselves.
// Package storetest checks implementations with RunClaimer.
type Claimer interface {
	// Claim records key for ttl and reports whether this call was the
	// first to claim it within that time. An error that means the store
	// could not answer wraps ErrUnavailable.
	Claim(key string, ttl time.Duration) (bool, error)
}

// LocalClaims is a Claimer for one process: a store whose file only one
// process opens (bbolt) claims through it, for every config of the process
// that shares the file. The zero value is ready to use.
type LocalClaims struct {
	// Now is the clock. Default: time.Now.
	Now func() time.Time

	mu     sync.Mutex
	claims map[string]time.Time // key → when the claim ends
}

// Claim implements Claimer.
func (c *LocalClaims) Claim(key string, ttl time.Duration) (bool, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	t := now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.claims == nil {
		c.claims = make(map[string]time.Time)
	}
	for k, end := range c.claims {
		if !t.Before(end) {
			delete(c.claims, k)
		}
	}
	if _, taken := c.claims[key]; taken {
		return false, nil
	}
	c.claims[key] = t.Add(ttl)
	return true, nil
}
