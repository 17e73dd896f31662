// Package seed fills a store with users and signed-in sessions, for
// benchmarks and for the bench/seed command that measures the module at
// scale.
package seed

import (
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-two-factor/caddy-two-factor/recovery"
	"github.com/caddy-two-factor/caddy-two-factor/seal"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	"github.com/caddy-two-factor/caddy-two-factor/totp"
)

// recoveryCodes is the module's default number of recovery codes, whose
// digests every enrolled user keeps.
const recoveryCodes = 10

// userAgents are typical browser User-Agents, so stored sessions have a
// realistic size.
var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
}

// Options say what to write.
type Options struct {
	// Users are managed in the database (a password hash, an enrolled
	// authenticator, a session identifier) and named by UserName.
	Users int
	// Sessions are signed in, spread over the users round-robin, with
	// expiries spread evenly over Lifetime from Now.
	Sessions int
	// Expired of the sessions (the first ones) have already expired.
	Expired  int
	Lifetime time.Duration
	Now      time.Time
	// Password is every user's password (hashed at bcrypt's lowest cost).
	Password string
	// Tokens is how many cookie values of live sessions to return.
	Tokens int
	// Batch is the number of records per write transaction.
	Batch int
}

// UserName is the name of the i-th user, from 0.
func UserName(i int) string { return fmt.Sprintf("user%07d", i+1) }

// Fill writes the users and sessions of o and returns the cookie values
// of the o.Tokens sessions that expire last.
func Fill(st store.Store, o Options) ([]string, error) {
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(o.Password), bcrypt.MinCost)
	if err != nil {
		return nil, err
	}
	sealer, err := seal.New(nil)
	if err != nil {
		return nil, err
	}
	sessionIDs := make([]string, o.Users)
	// Users are written in random order, as they enroll in a real
	// deployment; in name order, bbolt would leave every page half empty.
	order := rand.Perm(o.Users)
	for lo := 0; lo < o.Users; lo += o.Batch {
		err := st.Update(func(tx store.Tx) error {
			for _, i := range order[lo:min(lo+o.Batch, o.Users)] {
				u, err := newUser(UserName(i), string(hash), sealer, o.Now)
				if err != nil {
					return err
				}
				sessionIDs[i] = u.SessionID
				if err := tx.PutUser(u); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("writing users: %w", err)
		}
	}

	var tokens []string
	// Live sessions expire one step apart (Lifetime/live would overflow
	// if multiplied first).
	step := o.Lifetime / time.Duration(max(o.Sessions-o.Expired, 1))
	for lo := 0; lo < o.Sessions; lo += o.Batch {
		// A store may run a transaction again (Redis, after a conflict):
		// only the tokens of the run that committed are kept.
		var batch []string
		err := st.Update(func(tx store.Tx) error {
			batch = batch[:0]
			for i := lo; i < min(lo+o.Batch, o.Sessions); i++ {
				token, key, err := store.NewSessionToken()
				if err != nil {
					return err
				}
				expires := o.Now.Add(step * time.Duration(i-o.Expired+1))
				if i < o.Expired {
					expires = o.Now.Add(-time.Duration(o.Expired-i) * time.Millisecond)
				}
				u := i % o.Users
				created := expires.Add(-o.Lifetime)
				err = tx.PutSession(&store.Session{
					Key:           key,
					User:          UserName(u),
					Stage:         store.StageFull,
					UserSessionID: sessionIDs[u],
					Created:       created,
					LastSeen:      o.Now,
					Expires:       expires,
					ConfirmedAt:   created,
					Method:        "totp",
					ClientIP:      fmt.Sprintf("198.51.%d.%d", i/250%250, i%250+1),
					UserAgent:     userAgents[i%len(userAgents)],
					// Every user has the one hash: sessions hold where it does.
					Credential: store.CredentialOf(string(hash)),
				})
				if err != nil {
					return err
				}
				// The last sessions expire last: their tokens stay
				// good for about Lifetime.
				if i >= max(o.Expired, o.Sessions-o.Tokens) {
					batch = append(batch, token)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("writing sessions: %w", err)
		}
		tokens = append(tokens, batch...)
	}
	return tokens, nil
}

func newUser(name, hash string, sealer *seal.Sealer, now time.Time) (*store.User, error) {
	secret, err := totp.NewSecret()
	if err != nil {
		return nil, err
	}
	sealed, err := sealer.Seal(secret, name)
	if err != nil {
		return nil, err
	}
	sid, err := store.NewID()
	if err != nil {
		return nil, err
	}
	_, digests, err := recovery.Generate(recoveryCodes)
	if err != nil {
		return nil, err
	}
	return &store.User{
		Name:         name,
		PasswordHash: hash,
		SessionID:    sid,
		TOTP:         &store.Enrollment{Secret: sealed, LastStep: totp.Step(now), RecoveryDigests: digests, EnrolledAt: now},
		Created:      now,
	}, nil
}

// BenchSizes are the session counts the benchmarks run at: 1,000, and
// also 1,000,000 when the environment has TWO_FACTOR_BENCH_1M=1 (seeding
// that many takes about a minute and half a gigabyte of disk).
func BenchSizes() []int {
	if os.Getenv("TWO_FACTOR_BENCH_1M") == "1" {
		return []int{1000, 1000000}
	}
	return []int{1000}
}

// BenchOptions are the options of a benchmark database with n sessions:
// one user for every ten sessions, a fifth of the sessions expired, and
// tokens for 1,000 live ones.
func BenchOptions(n int) Options {
	return Options{
		Users:    max(n/10, 1),
		Sessions: n,
		Expired:  n / 5,
		Lifetime: 12 * time.Hour,
		Now:      time.Now(),
		Password: "seed-password",
		Tokens:   1000,
	}
}
