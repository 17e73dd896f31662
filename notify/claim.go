package notify

import (
	"sync"
	"time"
)

// MemoryClaims is a Config.Claim for one process (and for tests): the first
// claim of a key within TTL wins. A shared store implements the same
// contract across instances (with Redis: SET key NX PX ttl).
type MemoryClaims struct {
	TTL time.Duration
	Now func() time.Time

	mu     sync.Mutex
	claims map[string]time.Time
}

// Claim records key and reports whether this call was the first to claim
// it within TTL (default one day).
func (m *MemoryClaims) Claim(key string) (bool, error) {
	ttl, now := m.TTL, time.Now
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	if m.Now != nil {
		now = m.Now
	}
	t := now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.claims == nil {
		m.claims = make(map[string]time.Time)
	}
	for k, at := range m.claims {
		if t.Sub(at) >= ttl {
			delete(m.claims, k)
		}
	}
	if _, taken := m.claims[key]; taken {
		return false, nil
	}
	m.claims[key] = t
	return true, nil
}
