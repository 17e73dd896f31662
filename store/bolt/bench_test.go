package boltstore_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/internal/seed"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	boltstore "github.com/caddy-two-factor/caddy-two-factor/store/bolt"
)

// BenchmarkStore measures the bbolt store at 1,000 sessions, and at
// 1,000,000 with TWO_FACTOR_BENCH_1M=1 (see seed.BenchSizes):
//
//	TWO_FACTOR_BENCH_1M=1 go test ./store -run '^$' -bench Store -benchmem
func BenchmarkStore(b *testing.B) {
	for _, n := range seed.BenchSizes() {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			o := seed.BenchOptions(n)
			st, err := boltstore.Open(filepath.Join(b.TempDir(), "2fa.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			tokens, err := seed.Fill(st, o)
			if err != nil {
				b.Fatal(err)
			}
			keys := make([]store.SessionKey, len(tokens))
			for i, tok := range tokens {
				keys[i], _ = store.ParseSessionToken(tok)
			}
			b.ResetTimer()

			// The gate's cache miss: the session and its user.
			b.Run("SessionAndUser", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					err := st.View(func(tx store.Tx) error {
						s, err := tx.Session(keys[i%len(keys)])
						if err != nil {
							return err
						}
						_, err = tx.User(s.User)
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})

			// A write-behind of last-seen times, as the cache does it.
			b.Run("PutSession-batch100", func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					err := st.Update(func(tx store.Tx) error {
						for j := range 100 {
							s, err := tx.Session(keys[(i*100+j)%len(keys)])
							if err != nil {
								return err
							}
							s.LastSeen = s.LastSeen.Add(time.Second)
							if err := tx.PutSession(s); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})

			// One transaction of the sweep. Each deletes what the one
			// before left, so this runs out of expired sessions after
			// o.Expired/batch transactions and then measures empty ones;
			// max-tx-ms is the longest transaction seen.
			batch := min(1000, max(o.Expired/50, 1))
			b.Run(fmt.Sprintf("DeleteExpiredSessions-batch%d", batch), func(b *testing.B) {
				var longest time.Duration
				deleted := 0
				for b.Loop() {
					start := time.Now()
					err := st.Update(func(tx store.Tx) error {
						n, err := tx.DeleteExpiredSessions(o.Now.Add(time.Second), batch)
						deleted += n
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
					longest = max(longest, time.Since(start))
				}
				b.ReportMetric(float64(longest)/float64(time.Millisecond), "max-tx-ms")
				b.ReportMetric(float64(deleted)/float64(b.N), "deleted/op")
			})

			// The compaction that ends reseal: every transaction waits
			// this long.
			b.Run("Compact", func(b *testing.B) {
				var stats boltstore.CompactStats
				for b.Loop() {
					var err error
					if stats, err = st.Compact(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(stats.After)/(1<<20), "MiB")
			})
		})
	}
}
