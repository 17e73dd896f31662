package seed

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
	boltstore "github.com/caddy-two-factor/caddy-two-factor/store/bolt"
)

// retrying runs every write transaction twice, as the Redis store does
// after a conflict: the first run is rolled back, the second commits.
type retrying struct{ store.Store }

var errConflict = errors.New("conflict")

func (r retrying) Update(fn func(store.Tx) error) error {
	err := r.Store.Update(func(tx store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errConflict
	})
	if !errors.Is(err, errConflict) {
		return err
	}
	return r.Store.Update(fn)
}

// TestFillReturnsOnlyCommittedTokens: a transaction run again must not
// leave the tokens of its rolled-back run among those Fill returns.
func TestFillReturnsOnlyCommittedTokens(t *testing.T) {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "2fa.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tokens, err := Fill(retrying{st}, Options{Users: 2, Sessions: 10, Tokens: 10, Lifetime: time.Hour, Batch: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 10 {
		t.Fatalf("got %d tokens, want 10", len(tokens))
	}
	err = st.View(func(tx store.Tx) error {
		for _, tok := range tokens {
			key, ok := store.ParseSessionToken(tok)
			if !ok {
				t.Fatalf("token %q does not parse", tok)
			}
			if _, err := tx.Session(key); err != nil {
				t.Errorf("a returned token's session: %v", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
