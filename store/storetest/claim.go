package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// RunClaimer checks a store.Claimer: the first claim of a key wins and
// every later one within the TTL loses, under concurrency too; keys are
// independent; a claim ends after its TTL. wait lets the TTL pass (a store
// on the server's clock waits; one with an injected clock advances it);
// nil skips the expiry check.
func RunClaimer(t *testing.T, c store.Claimer, wait func(time.Duration)) {
	t.Run("FirstWins", func(t *testing.T) {
		const n = 16
		var wins sync.Map
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := c.Claim("first-wins", time.Minute)
				if err != nil {
					t.Errorf("Claim: %v", err)
				}
				if ok {
					wins.Store(i, true)
				}
			}()
		}
		wg.Wait()
		count := 0
		wins.Range(func(any, any) bool { count++; return true })
		if count != 1 {
			t.Fatalf("%d of %d concurrent claims of one key won, want 1", count, n)
		}
		if ok, err := c.Claim("first-wins", time.Minute); ok || err != nil {
			t.Fatalf("a later claim: %v, %v; want false", ok, err)
		}
	})
	t.Run("KeysAreIndependent", func(t *testing.T) {
		for i := range 3 {
			if ok, err := c.Claim(fmt.Sprintf("independent/%d", i), time.Minute); !ok || err != nil {
				t.Fatalf("claim %d: %v, %v; want true", i, ok, err)
			}
		}
	})
	t.Run("ExpiresAfterTTL", func(t *testing.T) {
		if wait == nil {
			t.Skip("no way to let the TTL pass")
		}
		const ttl = 50 * time.Millisecond
		if ok, err := c.Claim("expires", ttl); !ok || err != nil {
			t.Fatalf("first claim: %v, %v", ok, err)
		}
		if ok, _ := c.Claim("expires", ttl); ok {
			t.Fatal("a second claim within the TTL won")
		}
		wait(2 * ttl)
		if ok, err := c.Claim("expires", ttl); !ok || err != nil {
			t.Fatalf("a claim after the TTL: %v, %v; want true", ok, err)
		}
	})
}
