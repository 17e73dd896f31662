package twofactor

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-two-factor/caddy-two-factor/internal/redistest"
	"github.com/caddy-two-factor/caddy-two-factor/internal/seed"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	boltstore "github.com/caddy-two-factor/caddy-two-factor/store/bolt"
)

// The gate's benchmarks run the handler alone, without Caddy, on a
// database seeded with 1,000 sessions, and 1,000,000 with
// TWO_FACTOR_BENCH_1M=1:
//
//	go test -run '^$' -bench . -benchmem
//	TWO_FACTOR_BENCH_1M=1 go test -run '^$' -bench . -benchmem -timeout 30m

// benchHandler provisions a handler on a database seeded with n sessions
// and returns it with cookie values of live sessions.
func benchHandler(b *testing.B, n int) (*TwoFactor, []string) {
	b.Helper()
	path, tokens := benchDatabase(b, n)
	h := &TwoFactor{DB: path}
	if err := h.provision(zap.NewNop()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Cleanup() })
	return h, tokens
}

// benchDatabase seeds a database file with n sessions and returns its path
// and cookie values of live sessions.
func benchDatabase(b *testing.B, n int) (string, []string) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "2fa.db")
	st, err := boltstore.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	tokens, err := seed.Fill(st, seed.BenchOptions(n))
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
	return path, tokens
}

// gateRequest is a GET of a protected page with cookie (none if empty),
// and its replacer, as Caddy hands them to the handler.
func gateRequest(token, accept string) (*http.Request, *caddy.Replacer) {
	r := httptest.NewRequest(http.MethodGet, "/app/page?x=1", nil)
	if token != "" {
		r.Header.Set("Cookie", "theme=dark; "+sessionCookie+"="+token+"; lang=en")
	}
	r.Header.Set("Accept", accept)
	repl := caddy.NewReplacer()
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	// Caddy keeps what the client sent, before any rewrite.
	orig := http.Request{Method: r.Method, URL: new(url.URL), RequestURI: r.RequestURI}
	*orig.URL = *r.URL
	ctx = context.WithValue(ctx, caddyhttp.OriginalRequestCtxKey, orig)
	return r.WithContext(ctx), repl
}

// nopWriter is a ResponseWriter that keeps nothing, so the benchmarks
// count the handler's allocations only.
type nopWriter struct{ h http.Header }

func (w nopWriter) Header() http.Header       { return w.h }
func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (nopWriter) WriteHeader(int)             {}

var nextNop = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })

func BenchmarkGate(b *testing.B) {
	for _, n := range seed.BenchSizes() {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			h, tokens := benchHandler(b, n)
			w := nopWriter{h: http.Header{}}

			b.Run("authenticated", func(b *testing.B) {
				r, _ := gateRequest(tokens[0], "*/*")
				for b.Loop() {
					if err := h.ServeHTTP(w, r, nextNop); err != nil {
						b.Fatal(err)
					}
				}
			})

			// With every policy option on, for a request they let through:
			// a factor given within the smallest step-up max age, and one
			// older than every rule's, so their patterns are matched.
			for name, confirmed := range map[string]time.Duration{"every-policy": time.Minute, "every-policy-stale": 2 * time.Hour} {
				b.Run("authenticated-"+name, func(b *testing.B) {
					restore, user := withEveryPolicy(b, h, tokens[0], confirmed)
					defer restore()
					r, repl := gateRequest(tokens[0], "*/*")
					repl.Set("http.auth.user.id", user) // as basic_auth would
					for b.Loop() {
						if err := h.ServeHTTP(w, r, nextNop); err != nil {
							b.Fatal(err)
						}
					}
				})
			}

			// Caddy makes a replacer per request; the gate's placeholders
			// are new keys in it. NewReplacer-only is what that costs
			// without the gate.
			b.Run("authenticated-fresh-replacer", func(b *testing.B) {
				r, _ := gateRequest(tokens[0], "*/*")
				for b.Loop() {
					ctx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer())
					if err := h.ServeHTTP(w, r.WithContext(ctx), nextNop); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("NewReplacer-only", func(b *testing.B) {
				r, _ := gateRequest(tokens[0], "*/*")
				for b.Loop() {
					ctx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer())
					if err := nextNop.ServeHTTP(w, r.WithContext(ctx)); err != nil {
						b.Fatal(err)
					}
				}
			})

			// With a matcher, as two_factor /app/* makes: a guarded
			// request matches as it is, so the request as sent is not
			// looked at; a request the gate does not guard is matched
			// both ways and goes on with empty placeholders.
			b.Run("authenticated-path-matcher", func(b *testing.B) {
				h.matchers = caddyhttp.MatcherSet{caddyhttp.MatchPath{"/app/*"}}
				defer func() { h.matchers = nil }()
				r, _ := gateRequest(tokens[0], "*/*")
				for b.Loop() {
					if err := h.ServeHTTP(w, r, nextNop); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("unguarded-path-matcher", func(b *testing.B) {
				h.matchers = caddyhttp.MatcherSet{caddyhttp.MatchPath{"/admin/*"}}
				defer func() { h.matchers = nil }()
				r, _ := gateRequest("", "*/*")
				for b.Loop() {
					if err := h.ServeHTTP(w, r, nextNop); err != nil {
						b.Fatal(err)
					}
				}
			})

			// Many sessions from many goroutines: no lock is shared.
			b.Run("authenticated-parallel", func(b *testing.B) {
				b.RunParallel(func(pb *testing.PB) {
					var reqs []*http.Request
					for _, tok := range tokens {
						r, _ := gateRequest(tok, "*/*")
						reqs = append(reqs, r)
					}
					w := nopWriter{h: http.Header{}}
					for i := 0; pb.Next(); i++ {
						if err := h.ServeHTTP(w, reqs[i%len(reqs)], nextNop); err != nil {
							b.Fatal(err)
						}
					}
				})
			})

			b.Run("no-session-401", func(b *testing.B) {
				r, _ := gateRequest("", "application/json")
				for b.Loop() {
					_ = h.ServeHTTP(w, r, nextNop)
				}
			})
			b.Run("no-session-redirect", func(b *testing.B) {
				r, _ := gateRequest("", "text/html")
				for b.Loop() {
					clear(w.h)
					if err := h.ServeHTTP(w, r, nextNop); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func BenchmarkSessionLookup(b *testing.B) {
	for _, n := range seed.BenchSizes() {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			h, tokens := benchHandler(b, n)
			now := time.Now()
			b.Run("cached", func(b *testing.B) {
				r, _ := gateRequest(tokens[0], "*/*")
				for b.Loop() {
					if _, err := h.fullSession(r, now); err != nil {
						b.Fatal(err)
					}
				}
			})
			// A cache miss: the store read and the cache insertion, over
			// 1,000 sessions of as many users.
			b.Run("store", func(b *testing.B) {
				keys := make([]store.SessionKey, len(tokens))
				for i, tok := range tokens {
					keys[i], _ = store.ParseSessionToken(tok)
				}
				for i := 0; b.Loop(); i++ {
					if _, err := h.loadSession(keys[i%len(keys)], now); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkSweep deletes the expired fifth of the sessions: the first
// iteration does the work; max-tx-ms is its longest write transaction,
// which must stay well under 50 ms.
func BenchmarkSweep(b *testing.B) {
	for _, n := range seed.BenchSizes() {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			h, _ := benchHandler(b, n)
			swept := 0
			for b.Loop() {
				m, err := h.db.sweep(time.Now())
				if err != nil {
					b.Fatal(err)
				}
				swept += m
			}
			b.ReportMetric(float64(swept), "swept")
			b.ReportMetric(float64(h.db.longestSweepTx.Load())/float64(time.Millisecond), "max-tx-ms")
		})
	}
}

// BenchmarkStartup opens a seeded database and closes it again, as a
// Caddy start and stop do.
func BenchmarkStartup(b *testing.B) {
	for _, n := range seed.BenchSizes() {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			path, _ := benchDatabase(b, n)
			for b.Loop() {
				h := &TwoFactor{DB: path}
				if err := h.provision(zap.NewNop()); err != nil {
					b.Fatal(err)
				}
				if err := h.Cleanup(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRefusedSignIn posts sign-ins for a locked account: they are
// refused with 429, and must not write to the store (writes/op). "account
// locked" keeps the client under its own budget, so every request reads
// the account's counters; "client locked" is the default, where the
// refusals soon lock the client and it is turned away from memory.
//
//	go test -run '^$' -bench RefusedSignIn -benchmem .
func BenchmarkRefusedSignIn(b *testing.B) {
	for _, bc := range []struct {
		name  string
		maxIP int
	}{{"account-locked", 1 << 30}, {"client-locked", DefaultMaxIPAttempts}} {
		b.Run(bc.name, func(b *testing.B) {
			h := &TwoFactor{DB: filepath.Join(b.TempDir(), "2fa.db"), MaxIPAttempts: bc.maxIP,
				Users: []Account{{Username: "bench", Password: testHash()}}}
			if err := h.provision(zap.NewNop()); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = h.Cleanup() })
			now := time.Now()
			for range h.MaxAttempts {
				a, _, err := h.attempts.Begin("bench", true, "192.0.2.1", h.limits(), now)
				if err != nil || a == nil {
					b.Fatalf("locking the account: %v", err)
				}
				if err := a.Failed(); err != nil {
					b.Fatal(err)
				}
			}
			pre := encodeKey(make([]byte, store.TokenBytes))
			body := "username=bench&password=wrong&csrf=" + h.csrfToken("login", []byte(pre))
			bolt, _ := store.As[*boltstore.Store](h.db.raw)
			before := bolt.Commits()
			b.ResetTimer()
			for range b.N {
				r := httptest.NewRequest(http.MethodPost, "/_2fa/login", strings.NewReader(body))
				r.RemoteAddr = "192.0.2.1:1234"
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.Header.Set("Cookie", preCookie+"="+pre)
				r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
				w := httptest.NewRecorder()
				if err := h.ServeHTTP(w, r, nextNop); err != nil || w.Code != http.StatusTooManyRequests {
					b.Fatalf("refused sign-in: %d, %v", w.Code, err)
				}
			}
			b.ReportMetric(float64(bolt.Commits()-before)/float64(b.N), "writes/op")
		})
	}
}

// BenchmarkCacheMemory loads 10,000 signed-in sessions into the gate's
// cache, from bbolt and from Redis (a local redis-server), and reports
// the heap they hold once cached, per session: the heap with the cache
// full less the heap once it is emptied, each after a GC, so neither the
// loads' garbage nor what the store's client keeps counts. Each iteration
// fills the cache and empties it.
//
//	go test -run '^$' -bench CacheMemory -benchtime 5x .
func BenchmarkCacheMemory(b *testing.B) {
	const n = 10000
	o := seed.BenchOptions(n)
	// Every session is live, the first for a minute: none expires while
	// the benchmark runs.
	o.Expired, o.Tokens, o.Lifetime = 0, n, n*time.Minute
	backends := []struct {
		name      string
		configure func(b *testing.B, h *TwoFactor)
	}{
		{"bolt", func(b *testing.B, h *TwoFactor) { h.DB = filepath.Join(b.TempDir(), "2fa.db") }},
		{"redis", func(b *testing.B, h *TwoFactor) {
			srv := redistest.Start(b)
			h.store = &RedisStore{Addresses: []string{srv.Addr}, Password: srv.Password, Timeout: caddy.Duration(time.Second)}
		}},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			h := &TwoFactor{}
			be.configure(b, h)
			if err := h.provision(zap.NewNop()); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = h.Cleanup() })
			o.Now = time.Now()
			tokens, err := seed.Fill(h.db.raw, o)
			if err != nil {
				b.Fatal(err)
			}
			keys := make([]store.SessionKey, len(tokens))
			for i, tok := range tokens {
				keys[i], _ = store.ParseSessionToken(tok)
			}
			for deadline := time.Now().Add(5 * time.Second); !h.db.cache.Trusted(); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatal("the session cache does not trust itself")
				}
			}
			var perSession float64
			for b.Loop() {
				now := time.Now()
				for _, k := range keys {
					if _, err := h.loadSession(k, now); err != nil {
						b.Fatal(err)
					}
				}
				if h.db.cache.Get(keys[0]) == nil || h.db.cache.Get(keys[n-1]) == nil {
					b.Fatal("sessions were not cached")
				}
				var full, empty runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&full)
				h.db.cache.Invalidate(nil, keys)
				runtime.GC()
				runtime.ReadMemStats(&empty)
				perSession = float64(int64(full.HeapAlloc)-int64(empty.HeapAlloc)) / n
			}
			b.ReportMetric(perSession, "heap-B/session")
		})
	}
}
