package signin

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-two-factor/caddy-two-factor/recovery"
	"github.com/caddy-two-factor/caddy-two-factor/seal"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	boltstore "github.com/caddy-two-factor/caddy-two-factor/store/bolt"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
	"github.com/caddy-two-factor/caddy-two-factor/totp"
)

const testPassword = "correct horse battery"

// outage is a store that fails, as a store that cannot answer does,
// while down is set.
type outage struct {
	store.Store
	down atomic.Bool
}

var errOutage = fmt.Errorf("test outage: %w", store.ErrUnavailable)

func (o *outage) View(fn func(store.Tx) error) error {
	if o.down.Load() {
		return errOutage
	}
	return o.Store.View(fn)
}

func (o *outage) Update(fn func(store.Tx) error) error {
	if o.down.Load() {
		return errOutage
	}
	return o.Store.Update(fn)
}

// env is a service on a bbolt file of its own, with a clock the test
// moves and the events it reported.
type env struct {
	svc     *Service
	store   *outage
	tracker *throttle.Tracker
	hashing *throttle.HashLimiter
	now     time.Time
	hash    string
	mu      sync.Mutex
	events  []Event
}

// testAccounts are declared in every env's policy; other users come from
// the store.
var testAccounts = []string{"alice", "bob"}

func newEnv(t *testing.T, configure func(*Policy)) *env {
	t.Helper()
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "signin.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bolt.Close() })
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		store:   &outage{Store: bolt},
		now:     time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC),
		hashing: throttle.NewHashLimiter(2, 4, time.Second, false),
		hash:    string(hash),
	}
	e.tracker = throttle.New(e.store)
	p := Policy{
		SessionIdle:     30 * time.Minute,
		SessionLifetime: 12 * time.Hour,
		PendingLifetime: 5 * time.Minute,
		RecoveryCodes:   4,
		Limits: throttle.Limits{
			Pair:    throttle.Budget{Limit: 3, Window: 5 * time.Minute, Lockout: 15 * time.Minute},
			Account: throttle.Budget{Limit: 100, Window: throttle.MaxWindow, Lockout: 15 * time.Minute, Consecutive: true},
			Client:  throttle.Budget{Limit: 50, Window: 5 * time.Minute, Lockout: 15 * time.Minute},
		},
		Accounts: make(map[string]Account),
	}
	for _, name := range testAccounts {
		if p.Accounts[name], err = NewAccount(e.hash); err != nil {
			t.Fatal(err)
		}
	}
	if p.Fake, err = FakeAccount(p.Accounts["alice"].Class); err != nil {
		t.Fatal(err)
	}
	if configure != nil {
		configure(&p)
	}
	sealer, err := seal.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = New(p, Deps{Store: e.store, Attempts: e.tracker, Hashing: e.hashing, Sealer: sealer, Now: e.clock})
	e.svc.Observe(e.record)
	return e
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

func (e *env) record(ev Event) {
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
}

// take returns the events reported since the last call.
func (e *env) take() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	evs := e.events
	e.events = nil
	return evs
}

// lastKind returns the kind of the last event reported since take.
func (e *env) last(t *testing.T) Event {
	t.Helper()
	evs := e.take()
	if len(evs) == 0 {
		t.Fatal("no event reported")
	}
	return evs[len(evs)-1]
}

var alpha = Client{IP: "192.0.2.1", UserAgent: "test"}

func (e *env) login(t *testing.T, user, password string) (LoginResult, error) {
	t.Helper()
	return e.svc.Login(context.Background(), LoginRequest{User: user, Password: password, Client: alpha, Next: "/next"})
}

// pending signs in with user's password and returns the pending session.
func (e *env) pending(t *testing.T, user string) (*store.Session, LoginResult) {
	t.Helper()
	res, err := e.login(t, user, testPassword)
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	key, ok := store.ParseSessionToken(res.Token)
	if !ok {
		t.Fatalf("login %s: token %q", user, res.Token)
	}
	sess, _, err := e.svc.Pending(key)
	if err != nil {
		t.Fatalf("pending session of %s: %v", user, err)
	}
	return sess, res
}

// enroll signs user in for the first time and returns their secret, the
// recovery codes and the signed-in session.
func (e *env) enroll(t *testing.T, user string) ([]byte, []string, *store.Session) {
	t.Helper()
	sess, res := e.pending(t, user)
	if res.Stage != NeedsSetup {
		t.Fatalf("%s: stage %v, want NeedsSetup", user, res.Stage)
	}
	secret, err := e.svc.SetupSecret(sess, false)
	if err != nil {
		t.Fatal(err)
	}
	done, err := e.svc.FinishSetup(sess, e.code(t, secret), alpha)
	if err != nil {
		t.Fatalf("setup of %s: %v", user, err)
	}
	e.take()
	e.advance(30 * time.Second) // the next code is a new step
	return secret, done.RecoveryCodes, e.signedIn(t, done.Token)
}

func (e *env) signedIn(t *testing.T, token string) *store.Session {
	t.Helper()
	key, _ := store.ParseSessionToken(token)
	sess, _, err := e.svc.SignedIn(key)
	if err != nil {
		t.Fatalf("signed-in session: %v", err)
	}
	return sess
}

func (e *env) code(t *testing.T, secret []byte) string {
	t.Helper()
	code, err := totp.CodeAt(secret, e.clock())
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func TestLogin(t *testing.T) {
	for _, tc := range []struct {
		name, user, password string
		err                  error
		event                Event
	}{
		{"right password, declared user", "alice", testPassword, nil, Event{Kind: EventPasswordAccepted, User: "alice", Known: true}},
		{"wrong password", "alice", "wrong", ErrBadCredentials, Event{Kind: EventBadPassword, User: "alice", Known: true}},
		{"unknown user", "mallory", testPassword, ErrBadCredentials, Event{Kind: EventBadPassword, User: "mallory", Known: false}},
		{"empty password", "bob", "", ErrBadCredentials, Event{Kind: EventBadPassword, User: "bob", Known: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			res, err := e.login(t, tc.user, tc.password)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if (res.Token != "") != (tc.err == nil) {
				t.Errorf("token %q with error %v", res.Token, err)
			}
			if tc.err == nil && res.Stage != NeedsSetup {
				t.Errorf("stage %v, want NeedsSetup", res.Stage)
			}
			ev := e.last(t)
			if ev.Kind != tc.event.Kind || ev.User != tc.event.User || ev.Known != tc.event.Known || ev.Step != StepLogin || ev.Client != alpha {
				t.Errorf("event %+v, want %+v", ev, tc.event)
			}
		})
	}
}

// TestLoginHashesForEveryName: an unknown name and a wrong password take
// the same path through the password hashing: with no slot free, both are
// refused as busy rather than answered at once.
func TestLoginHashesForEveryName(t *testing.T) {
	for _, user := range []string{"alice", "mallory"} {
		t.Run(user, func(t *testing.T) {
			e := newEnv(t, nil)
			e.svc.SetHashing(throttle.NewHashLimiter(1, 0, 0, false))
			done, ok := e.svc.deps.Hashing.Acquire(context.Background())
			if !ok {
				t.Fatal("no slot")
			}
			defer done()
			if _, err := e.login(t, user, "wrong"); !errors.Is(err, ErrBusy) {
				t.Fatalf("error %v, want ErrBusy: the name skipped the hashing", err)
			}
		})
	}
}

// TestLoginFreesTheHashingSlotOnPanic: a password check that panics (as
// argon2 does on parameters it cannot use) gives its hashing slot back, so
// the sign-ins after it are not refused as busy until a restart.
func TestLoginFreesTheHashingSlotOnPanic(t *testing.T) {
	e := newEnv(t, func(p *Policy) {
		// No key: argon2 panics. ClassOf refuses such a hash; this one is
		// made by hand.
		p.Accounts["eve"] = Account{Class: HashClass{Algorithm: Argon2id, Time: 1, Memory: 8, Threads: 1}}
	})
	e.svc.SetHashing(throttle.NewHashLimiter(1, 0, 0, false))
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the check of a hash without a key did not panic: the test proves nothing")
			}
		}()
		_, _ = e.login(t, "eve", "anything")
	}()
	if _, err := e.login(t, "alice", "wrong"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("error %v, want ErrBadCredentials: the panic kept the only hashing slot", err)
	}
}

func TestLockout(t *testing.T) {
	for _, user := range []string{"alice", "mallory"} {
		t.Run(user, func(t *testing.T) {
			e := newEnv(t, nil)
			for range 3 {
				if _, err := e.login(t, user, "wrong"); !errors.Is(err, ErrBadCredentials) {
					t.Fatalf("guess: %v", err)
				}
			}
			e.take()
			_, err := e.login(t, user, testPassword)
			locked, ok := errors.AsType[*LockedError](err)
			if !ok {
				t.Fatalf("right password while locked: %v, want a *LockedError", err)
			}
			if want := e.clock().Add(15 * time.Minute); !locked.Until.Equal(want) || locked.Scope != ScopeAccount {
				t.Errorf("locked until %v (%s), want %v (account)", locked.Until, locked.Scope, want)
			}
			if got := locked.RetryAfter(e.clock()); got != 15*time.Minute {
				t.Errorf("retry after %v", got)
			}
			if ev := e.last(t); ev.Kind != EventLocked || ev.Scope != ScopeAccount || !ev.Until.Equal(locked.Until) {
				t.Errorf("event %+v", ev)
			}
			e.advance(15 * time.Minute)
			_, err = e.login(t, user, testPassword)
			if want := map[string]error{"alice": nil, "mallory": ErrBadCredentials}[user]; !errors.Is(err, want) {
				t.Errorf("after the lockout: %v, want %v", err, want)
			}
		})
	}
}

func TestSetup(t *testing.T) {
	e := newEnv(t, nil)
	sess, _ := e.pending(t, "alice")
	if _, err := e.svc.FinishSetup(sess, "123456", alpha); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("setup before a secret was shown: %v", err)
	}
	secret, err := e.svc.SetupSecret(sess, false)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := e.svc.SetupSecret(sess, false); string(again) != string(secret) {
		t.Error("showing the setup page again made a new secret")
	}
	wrong := fmt.Sprintf("%06d", (mustAtoi(e.code(t, secret))+1)%1000000)
	for _, tc := range []struct {
		code string
		err  error
	}{
		{"12345", ErrMalformedCode},
		{"ABCD-EFGH-JKMN", ErrMalformedCode}, // a recovery code does not enroll
		{wrong, ErrBadCode},
	} {
		if _, err := e.svc.FinishSetup(sess, tc.code, alpha); !errors.Is(err, tc.err) {
			t.Errorf("code %q: %v, want %v", tc.code, err, tc.err)
		}
	}
	e.take()
	res, err := e.svc.FinishSetup(sess, e.code(t, secret), alpha)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.RecoveryCodes) != 4 || res.Next != "/next" || res.Method != MethodSetup {
		t.Errorf("result %+v", res)
	}
	if ev := e.last(t); ev.Kind != EventSetupComplete || ev.User != "alice" {
		t.Errorf("event %+v", ev)
	}
	signed := e.signedIn(t, res.Token)
	if signed.Method != MethodSetup || signed.Stage != store.StageFull {
		t.Errorf("session %+v", signed)
	}
	if _, err := e.svc.FinishSetup(sess, e.code(t, secret), alpha); !errors.Is(err, ErrNoPending) {
		t.Errorf("the pending session again: %v, want ErrNoPending", err)
	}
	if _, res := e.pending(t, "alice"); res.Stage != NeedsConfirm {
		t.Errorf("next sign-in: stage %v, want NeedsConfirm", res.Stage)
	}
}

func mustAtoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestConfirm(t *testing.T) {
	e := newEnv(t, func(p *Policy) { p.Limits.Pair.Limit = 10 })
	secret, codes, _ := e.enroll(t, "alice")
	used := e.code(t, secret)
	notHers, _, err := recovery.Generate(1)
	if err != nil {
		t.Fatal(err)
	}
	sess, _ := e.pending(t, "alice")
	res, err := e.svc.Confirm(sess, used, alpha)
	if err != nil || res.Method != MethodTOTP {
		t.Fatalf("confirm: %+v %v", res, err)
	}
	if ev := e.last(t); ev.Kind != EventSignedIn || ev.Method != MethodTOTP {
		t.Errorf("event %+v", ev)
	}
	for _, tc := range []struct {
		name, code string
		err        error
		kind       string
	}{
		{"replayed code", used, ErrReplayedCode, EventReplayedCode},
		{"wrong code", "000000", ErrBadCode, EventBadCode},
		{"wrong recovery code", notHers[0], ErrBadCode, EventBadCode},
		{"malformed", "12", ErrMalformedFactor, ""},
		{"recovery code", codes[0], nil, EventSignedIn},
		{"recovery code again", codes[0], ErrBadCode, EventBadCode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.code == "000000" && used == "000000" {
				t.Skip("the code in use is 000000")
			}
			sess, _ := e.pending(t, "alice")
			e.take()
			res, err := e.svc.Confirm(sess, tc.code, alpha)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			evs := e.take()
			if tc.kind == "" {
				if len(evs) != 0 {
					t.Errorf("events %+v for malformed input", evs)
				}
				return
			}
			if len(evs) == 0 || evs[len(evs)-1].Kind != tc.kind {
				t.Fatalf("events %+v, want %s last", evs, tc.kind)
			}
			if tc.err == nil {
				if res.Method != MethodRecovery || len(evs) != 2 || evs[0].Kind != EventRecoveryUsed || evs[0].Remaining != len(codes)-1 {
					t.Errorf("result %+v, events %+v", res, evs)
				}
			}
		})
	}
}

func TestStepUp(t *testing.T) {
	e := newEnv(t, func(p *Policy) { p.ConcurrentSessions = true })
	secret, _, sess := e.enroll(t, "alice")
	if _, err := e.svc.ReplaceRecoveryCodes(sess, "000001", alpha); !errors.Is(err, ErrBadCode) && e.code(t, secret) != "000001" {
		t.Fatalf("wrong factor: %v", err)
	}
	if _, err := e.svc.ReplaceRecoveryCodes(sess, "x", alpha); !errors.Is(err, ErrMalformedFactor) {
		t.Fatalf("malformed factor: %v", err)
	}
	e.take()
	codes, err := e.svc.ReplaceRecoveryCodes(sess, e.code(t, secret), alpha)
	if err != nil || len(codes) != 4 {
		t.Fatalf("replace codes: %v %v", codes, err)
	}
	if ev := e.last(t); ev.Kind != EventRecoveryReplaced {
		t.Errorf("event %+v", ev)
	}
	// The factor was used up: the same code cannot step up again.
	if _, err := e.svc.ReplaceRecoveryCodes(sess, e.code(t, secret), alpha); !errors.Is(err, ErrReplayedCode) {
		t.Errorf("the same code again: %v", err)
	}

	// A new authenticator: a code of it and a current factor of the old.
	other := newSessionOf(t, e, "alice", secret)
	fresh, err := e.svc.SetupSecret(sess, true)
	if err != nil {
		t.Fatal(err)
	}
	e.advance(30 * time.Second)
	if _, err := e.svc.ReplaceAuthenticator(sess, e.code(t, fresh), "nope", alpha); !errors.Is(err, ErrMalformedFactor) {
		t.Fatalf("without a current factor: %v", err)
	}
	e.advance(30 * time.Second)
	ended, err := e.svc.ReplaceAuthenticator(sess, e.code(t, fresh), e.code(t, secret), alpha)
	if err != nil || ended != 1 {
		t.Fatalf("replace authenticator: ended %d, %v", ended, err)
	}
	if _, _, err := e.svc.SignedIn(other.Key); !errors.Is(err, ErrNotSignedIn) {
		t.Errorf("the other session after a new authenticator: %v", err)
	}
	if _, _, err := e.svc.SignedIn(sess.Key); err != nil {
		t.Errorf("the session that replaced it: %v", err)
	}
}

// newSessionOf signs user in once more, with a code of secret.
func newSessionOf(t *testing.T, e *env, user string, secret []byte) *store.Session {
	t.Helper()
	e.advance(30 * time.Second)
	p, _ := e.pending(t, user)
	res, err := e.svc.Confirm(p, e.code(t, secret), alpha)
	if err != nil {
		t.Fatal(err)
	}
	return e.signedIn(t, res.Token)
}

func TestSessions(t *testing.T) {
	e := newEnv(t, func(p *Policy) { p.ConcurrentSessions = true })
	secret, _, first := e.enroll(t, "alice")
	second := newSessionOf(t, e, "alice", secret)
	third := newSessionOf(t, e, "alice", secret)
	ended, err := e.svc.EndSessions(first, ScopeOne, alpha, func(s *store.Session) bool { return s.Key == second.Key })
	if err != nil || ended != 1 {
		t.Fatalf("end one: %d %v", ended, err)
	}
	if ev := e.last(t); ev.Kind != EventSessionsEnded || ev.Scope != ScopeOne || ev.Sessions != 1 {
		t.Errorf("event %+v", ev)
	}
	if ended, err := e.svc.EndOtherSessions(first, alpha); err != nil || ended != 1 {
		t.Fatalf("end others: %d %v", ended, err)
	}
	if _, _, err := e.svc.SignedIn(third.Key); !errors.Is(err, ErrNotSignedIn) {
		t.Errorf("third session: %v", err)
	}
	if err := e.svc.Logout(first, alpha); err != nil {
		t.Fatal(err)
	}
	if ev := e.last(t); ev.Kind != EventSignedOut || ev.User != "alice" {
		t.Errorf("event %+v", ev)
	}
	if _, _, err := e.svc.SignedIn(first.Key); !errors.Is(err, ErrNotSignedIn) {
		t.Errorf("after logout: %v", err)
	}
	if s, err := e.svc.Session(first.Key, false); s != nil || err != nil {
		t.Errorf("after logout: %v %v", s, err)
	}
}

// TestValid: the one rule of a valid session.
func TestValid(t *testing.T) {
	e := newEnv(t, nil)
	_, _, sess := e.enroll(t, "alice")
	var u *store.User
	if err := e.store.View(func(tx store.Tx) (err error) { u, err = tx.User("alice"); return err }); err != nil {
		t.Fatal(err)
	}
	p := e.svc.Policy()
	other, _ := NewAccount("$2a$04$" + "abcdefghijklmnopqrstuu" + "abcdefghijklmnopqrstuvwxyz12345")
	for _, tc := range []struct {
		name   string
		change func(p *Policy, s *store.Session, u *store.User) time.Time
		valid  bool
	}{
		{"as signed in", func(*Policy, *store.Session, *store.User) time.Time { return e.clock() }, true},
		{"idle too long", func(*Policy, *store.Session, *store.User) time.Time { return e.clock().Add(31 * time.Minute) }, false},
		{"past its lifetime", func(_ *Policy, s *store.Session, _ *store.User) time.Time {
			s.LastSeen = e.clock().Add(12 * time.Hour)
			return e.clock().Add(12*time.Hour + time.Second)
		}, false},
		{"identifier rotated", func(_ *Policy, _ *store.Session, u *store.User) time.Time { u.SessionID = "other"; return e.clock() }, false},
		{"reset", func(_ *Policy, _ *store.Session, u *store.User) time.Time { u.TOTP = nil; return e.clock() }, false},
		{"declared with another password", func(p *Policy, _ *store.Session, _ *store.User) time.Time {
			p.Accounts = map[string]Account{"alice": other}
			return e.clock()
		}, false},
		{"no longer declared, not in the store", func(p *Policy, _ *store.Session, _ *store.User) time.Time {
			p.Accounts = nil
			return e.clock()
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, s, uc := p, *sess, *u
			now := tc.change(&p, &s, &uc)
			if got := p.Valid(&s, &uc, now); got != tc.valid {
				t.Errorf("valid %v, want %v", got, tc.valid)
			}
		})
	}
}

func TestOperator(t *testing.T) {
	e := newEnv(t, nil)
	_, _, sess := e.enroll(t, "alice")
	declared := map[string]bool{"alice": true, "bob": true}
	op := NewOperator(Scope{Declared: declared, Idle: 30 * time.Minute}, Deps{Store: e.store, Attempts: e.tracker, Now: e.clock})
	var opEvents []Event
	op.Observe(func(ev Event) { opEvents = append(opEvents, ev) })

	if _, err := op.AddUser("zoe", e.hash); err != nil {
		t.Fatal(err)
	}
	if _, res := e.pending(t, "zoe"); res.Stage != NeedsSetup {
		t.Errorf("zoe signs in: %v", res.Stage)
	}
	for _, tc := range []struct {
		name string
		do   func() error
		err  error
	}{
		{"add an existing user", func() error { _, err := op.AddUser("zoe", e.hash); return err }, ErrConflict},
		{"add a declared user", func() error { _, err := op.AddUser("bob", e.hash); return err }, ErrConflict},
		{"password of a declared user", func() error { _, err := op.SetPassword("alice", e.hash); return err }, ErrConflict},
		{"password of nobody", func() error { _, err := op.SetPassword("nobody", e.hash); return err }, ErrUnknownUser},
		{"remove nobody", func() error { _, err := op.RemoveUser("nobody"); return err }, ErrUnknownUser},
		{"reset nobody", func() error { _, err := op.Reset("nobody"); return err }, ErrUnknownUser},
		{"revoke nobody", func() error { _, err := op.Revoke("nobody"); return err }, ErrUnknownUser},
		{"unlock nobody", func() error { return op.Unlock("nobody") }, ErrUnknownUser},
	} {
		if err := tc.do(); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
	if c, ok := errors.AsType[*ConflictError](func() error { _, err := op.AddUser("zoe", e.hash); return err }()); !ok || c.Reason != ConflictExists {
		t.Errorf("conflict %+v", c)
	}

	info, err := op.UserInfo("alice")
	if err != nil || !info.Enrolled || info.Sessions != 1 || info.DefinedIn != DefinedInConfig || info.RecoveryCodesLeft != 4 {
		t.Errorf("alice: %+v %v", info, err)
	}
	if ended, err := op.Revoke("alice"); err != nil || ended != 1 {
		t.Errorf("revoke: %d %v", ended, err)
	}
	if _, _, err := e.svc.SignedIn(sess.Key); !errors.Is(err, ErrNotSignedIn) {
		t.Errorf("after revoke: %v", err)
	}
	if _, err := op.Reset("alice"); err != nil {
		t.Fatal(err)
	}
	if _, res := e.pending(t, "alice"); res.Stage != NeedsSetup {
		t.Errorf("after reset: %v", res.Stage)
	}
	for range 3 {
		_, _ = e.login(t, "bob", "wrong")
	}
	if info, _ := op.UserInfo("bob"); info.LockedUntil.IsZero() {
		t.Errorf("bob is not shown locked: %+v", info)
	}
	if err := op.Unlock("bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.login(t, "bob", testPassword); err != nil {
		t.Errorf("bob after unlock: %v", err)
	}
	if _, err := op.SetPassword("zoe", e.hash); err != nil {
		t.Error(err)
	}
	if _, err := op.RemoveUser("zoe"); err != nil {
		t.Error(err)
	}
	users, err := op.Users()
	if err != nil || len(users) != 2 || users[0].Name != "alice" || users[1].Name != "bob" {
		t.Errorf("users %+v %v", users, err)
	}
	var kinds []string
	for _, ev := range opEvents {
		kinds = append(kinds, ev.Kind)
	}
	want := []string{EventUserAdded, EventRevoked, EventReset, EventUnlocked, EventPasswordChanged, EventRemoved}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("operator events %v, want %v", kinds, want)
	}
}

// TestOutageIsNeverAnAnswer: while the store cannot answer, every call
// returns an error that is store.ErrUnavailable, never a refusal that
// would tell the user they are signed out, unknown or wrong.
func TestOutageIsNeverAnAnswer(t *testing.T) {
	e := newEnv(t, nil)
	secret, _, sess := e.enroll(t, "alice")
	pending, _ := e.pending(t, "alice")
	op := NewOperator(Scope{Declared: map[string]bool{"alice": true}}, Deps{Store: e.store, Attempts: e.tracker, Now: e.clock})
	refusals := []error{ErrBadCredentials, ErrBadCode, ErrNotSignedIn, ErrNoPending, ErrUnknownUser, ErrConflict, ErrNoSecret}
	e.store.down.Store(true)
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"login, declared user", func() error { _, err := e.login(t, "alice", testPassword); return err }},
		{"login, wrong password", func() error { _, err := e.login(t, "alice", "wrong"); return err }},
		{"login, other name", func() error { _, err := e.login(t, "zoe", testPassword); return err }},
		{"pending", func() error { _, _, err := e.svc.Pending(pending.Key); return err }},
		{"signed in", func() error { _, _, err := e.svc.SignedIn(sess.Key); return err }},
		{"session", func() error { _, err := e.svc.Session(sess.Key, true); return err }},
		{"confirm", func() error { _, err := e.svc.Confirm(pending, e.code(t, secret), alpha); return err }},
		{"setup secret", func() error { _, err := e.svc.SetupSecret(pending, true); return err }},
		{"step-up", func() error { _, err := e.svc.ReplaceRecoveryCodes(sess, e.code(t, secret), alpha); return err }},
		{"logout", func() error { return e.svc.Logout(sess, alpha) }},
		{"end sessions", func() error { _, err := e.svc.EndOtherSessions(sess, alpha); return err }},
		{"operator revoke", func() error { _, err := op.Revoke("alice"); return err }},
		{"operator revoke of nobody", func() error { _, err := op.Revoke("nobody"); return err }},
		{"operator users", func() error { _, err := op.Users(); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("error %v, want store.ErrUnavailable", err)
			}
			for _, r := range refusals {
				if errors.Is(err, r) {
					t.Errorf("the outage came back as %v", r)
				}
			}
		})
	}
	e.store.down.Store(false)
	if _, _, err := e.svc.SignedIn(sess.Key); err != nil {
		t.Errorf("once the store answers: %v", err)
	}
}
