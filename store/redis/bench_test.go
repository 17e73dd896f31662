package redisstore

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/internal/redistest"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	boltstore "github.com/caddy-two-factor/caddy-two-factor/store/bolt"
)

// BenchmarkRoundTrip compares the Redis store (a local redis-server over
// loopback) with bbolt on what requests do: a View of a session and its
// user (the gate's cache miss), and an Update that reads a session and
// puts it back (a sign-in step).
//
//	go test ./store/redis -run '^$' -bench RoundTrip -benchmem
func BenchmarkRoundTrip(b *testing.B) {
	const sessions = 1000
	open := opener(redistest.Start(b))
	backends := []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"bolt", func(b *testing.B) store.Store {
			s, err := boltstore.Open(filepath.Join(b.TempDir(), "2fa.db"))
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
		{"redis", func(b *testing.B) store.Store { return open(b) }},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			defer s.Close()
			keys := make([]store.SessionKey, sessions)
			err := s.Update(func(tx store.Tx) error {
				for i := range keys {
					keys[i] = store.SessionKey{byte(i), byte(i >> 8), 1}
					user := fmt.Sprintf("user%d", i%100)
					if err := tx.PutUser(&store.User{Name: user, TOTP: &store.Enrollment{Secret: make([]byte, 40)}}); err != nil {
						return err
					}
					err := tx.PutSession(&store.Session{Key: keys[i], User: user, Stage: store.StageFull, Expires: base, UserAgent: "Mozilla/5.0 (X11; Linux x86_64)"})
					if err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Run("View", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					err := s.View(func(tx store.Tx) error {
						sess, err := tx.Session(keys[i%sessions])
						if err != nil {
							return err
						}
						_, err = tx.User(sess.User)
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("Update", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					err := s.Update(func(tx store.Tx) error {
						sess, err := tx.Session(keys[i%sessions])
						if err != nil {
							return err
						}
						sess.LastSeen = base.Add(-time.Duration(i) * time.Second)
						return tx.PutSession(sess)
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
