package store_test

import (
	"path/filepath"
	"testing"

	"github.com/caddy-two-factor/caddy-two-factor/store"
	"github.com/caddy-two-factor/caddy-two-factor/store/storetest"
)

func TestBoltConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		b, err := store.OpenBolt(filepath.Join(t.TempDir(), "2fa.db"))
		if err != nil {
			t.Fatalf("OpenBolt: %v", err)
		}
		return b
	})
}
