package boltstore_test

import (
	"path/filepath"
	"testing"

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
