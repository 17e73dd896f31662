package boltstore_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
	boltstore "github.com/caddy-two-factor/caddy-two-factor/store/bolt"
	"github.com/caddy-two-factor/caddy-two-factor/store/storetest"
)

func TestBoltConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		b, err := boltstore.Open(filepath.Join(t.TempDir(), "2fa.db"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return b
	})
}

func TestBoltClaims(t *testing.T) {
	b, err := boltstore.Open(filepath.Join(t.TempDir(), "2fa.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	var _ store.Claimer = b
	// The store claims through store.LocalClaims; its expiry is checked
	// there, on a clock the test moves.
	storetest.RunClaimer(t, b, nil)
	now := time.Unix(1e9, 0)
	local := &store.LocalClaims{Now: func() time.Time { return now }}
	t.Run("Local", func(t *testing.T) {
		storetest.RunClaimer(t, local, func(d time.Duration) { now = now.Add(d) })
	})
}
