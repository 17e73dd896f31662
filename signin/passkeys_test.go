package signin

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/internal/softauthn"
	"github.com/caddy-two-factor/caddy-two-factor/passkey"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// withPasskeys gives e's service passkeys for https://example.com, on e's
// clock.
func (e *env) withPasskeys(t *testing.T, login bool) {
	t.Helper()
	uv := passkey.Preferred
	if login {
		uv = passkey.Required
	}
	pk, err := passkey.New(passkey.Config{RPID: "example.com", RPName: "Test", Origins: []string{"https://example.com"}, UserVerification: uv, PasskeyLogin: login, Timeout: e.svc.policy.PendingLifetime})
	if err != nil {
		t.Fatal(err)
	}
	pk.Now = e.clock
	e.svc.deps.Passkeys = pk
}

// enrollPasskey signs user in for the first time with key and returns the
// recovery codes and the signed-in session.
func (e *env) enrollPasskey(t *testing.T, user string, key *softauthn.Authenticator) ([]string, *store.Session) {
	t.Helper()
	sess, _ := e.pending(t, user)
	options, err := e.svc.BeginPasskeySetup(sess)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.FinishPasskeySetup(sess, key.Create(t, options), "", alpha)
	if err != nil {
		t.Fatalf("passkey setup of %s: %v", user, err)
	}
	if res.Method != MethodWebAuthn || len(res.RecoveryCodes) != 4 {
		t.Fatalf("passkey setup: %+v", res)
	}
	e.take()
	return res.RecoveryCodes, e.signedIn(t, res.Token)
}

// TestPasskeyCeremonyExpires: a ceremony answered after pending_lifetime
// is refused, without counting as a wrong factor, and spent.
func TestPasskeyCeremonyExpires(t *testing.T) {
	e := newEnv(t, nil)
	e.withPasskeys(t, false)
	key := softauthn.New(t, -7)
	_, sess := e.enrollPasskey(t, "alice", key)
	options, err := e.svc.BeginPasskeyStepUp(sess)
	if err != nil {
		t.Fatal(err)
	}
	answer := key.Get(t, options)
	e.advance(5*time.Minute + time.Second)
	_, err = e.svc.BeginAddPasskey(StepUpRequest{Session: sess, Assertion: answer, Client: alpha})
	if !errors.Is(err, ErrPasskeyExpired) {
		t.Fatalf("an answer after the ceremony's time: %v, want ErrPasskeyExpired", err)
	}
	for _, ev := range e.take() {
		if ev.Kind == EventBadCode {
			t.Errorf("an expired ceremony counted as a wrong factor: %+v", ev)
		}
	}
	if _, err = e.svc.BeginAddPasskey(StepUpRequest{Session: sess, Assertion: answer, Client: alpha}); !errors.Is(err, ErrPasskeyExpired) {
		t.Fatalf("the expired ceremony answered again: %v, want ErrPasskeyExpired (spent)", err)
	}
}

// TestPasskeyFailuresLock: refused passkey answers count against the
// account's budget like wrong codes, and the lock refuses a right passkey.
func TestPasskeyFailuresLock(t *testing.T) {
	e := newEnv(t, nil)
	e.withPasskeys(t, false)
	key := softauthn.New(t, -7)
	e.enrollPasskey(t, "bob", key)
	wrong := *key
	wrong.Origin = "https://evil.example" // a phishing page relayed it
	for i := range 3 {
		sess, _ := e.pending(t, "bob")
		options, err := e.svc.BeginPasskeyConfirm(sess)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.FinishPasskeyConfirm(sess, wrong.Get(t, options), alpha); !errors.Is(err, ErrBadPasskey) {
			t.Fatalf("answer %d from another origin: %v, want ErrBadPasskey", i+1, err)
		}
		evs := e.take()
		want := []string{EventBadCode}
		if i == 2 {
			want = append(want, EventLocked) // the third failure locks
		}
		if len(evs) < len(want) {
			t.Fatalf("answer %d: events %+v, want kinds %v", i+1, evs, want)
		}
		evs = evs[len(evs)-len(want):]
		if ev := evs[0]; ev.Kind != EventBadCode || ev.Method != MethodWebAuthn || ev.Reason != "verification" {
			t.Errorf("event of a refused passkey: %+v", ev)
		}
		if i == 2 {
			if ev := evs[1]; ev.Kind != EventLocked || ev.Reason != ReasonFailures || ev.User != "bob" {
				t.Errorf("the failure that locks is reported as %+v, want a lock by failures", ev)
			}
		}
	}
	if _, err := e.login(t, "bob", testPassword); !errors.As(err, new(*LockedError)) {
		t.Fatalf("password after three refused passkeys: %v, want a lock", err)
	}
}

// TestPasskeyOnlyRecovery: a passkey-only user's recovery codes sign in
// once each, and new ones are made behind a passkey.
func TestPasskeyOnlyRecovery(t *testing.T) {
	e := newEnv(t, nil)
	e.withPasskeys(t, false)
	key := softauthn.New(t, -7)
	codes, _ := e.enrollPasskey(t, "alice", key)
	sess, res := e.pending(t, "alice")
	if res.Stage != NeedsConfirm {
		t.Fatalf("stage of an enrolled passkey user: %v", res.Stage)
	}
	done, err := e.svc.Confirm(sess, codes[0], alpha)
	if err != nil || done.Method != MethodRecovery {
		t.Fatalf("recovery code: %+v, %v", done, err)
	}
	if ev := e.take(); len(ev) < 2 || ev[1].Kind != EventRecoveryUsed || ev[1].Remaining != 3 {
		t.Errorf("events of a recovery code: %+v", ev)
	}
	full := e.signedIn(t, done.Token)
	options, err := e.svc.BeginPasskeyStepUp(full)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := e.svc.ReplaceRecoveryCodesAfter(StepUpRequest{Session: full, Assertion: key.Get(t, options), Client: alpha})
	if err != nil || len(fresh) != 4 {
		t.Fatalf("new codes behind a passkey: %v, %v", fresh, err)
	}
	sess, _ = e.pending(t, "alice")
	if _, err := e.svc.Confirm(sess, codes[1], alpha); !errors.Is(err, ErrBadCode) {
		t.Fatalf("an old code after new ones: %v, want ErrBadCode", err)
	}
}

// TestPasskeyLoginNeedsAnAccount: a passkey login signs in only a user the
// policy still has; a user whose password left the store is refused.
func TestPasskeyLoginNeedsAnAccount(t *testing.T) {
	e := newEnv(t, nil)
	e.withPasskeys(t, true)
	key := softauthn.New(t, -7)
	e.enrollPasskey(t, "alice", key)
	token, options, err := e.svc.BeginPasskeyLogin(nil, alpha)
	if err != nil {
		t.Fatal(err)
	}
	key2, _ := store.ParseSessionToken(token)
	res, err := e.svc.FinishPasskeyLogin(key2, key.Get(t, options), "/next", alpha)
	if err != nil || res.Next != "/next" {
		t.Fatalf("passkey login: %+v, %v", res, err)
	}
	e.signedIn(t, res.Token)

	delete(e.svc.policy.Accounts, "alice") // removed from the config
	token, options, err = e.svc.BeginPasskeyLogin(nil, alpha)
	if err != nil {
		t.Fatal(err)
	}
	key2, _ = store.ParseSessionToken(token)
	if _, err := e.svc.FinishPasskeyLogin(key2, key.Get(t, options), "/", alpha); !errors.Is(err, ErrBadPasskey) {
		t.Fatalf("passkey login of a user the config dropped: %v, want ErrBadPasskey", err)
	}
}

// TestPasskeyLoginOptionsFloodEndsOnlyTheFloodersOwn: one client asking
// for passkey login options again and again ends its own unfinished
// logins, not another client's.
func TestPasskeyLoginOptionsFloodEndsOnlyTheFloodersOwn(t *testing.T) {
	e := newEnv(t, nil)
	e.withPasskeys(t, true)
	key := softauthn.New(t, -7)
	e.enrollPasskey(t, "alice", key)
	token, options, err := e.svc.BeginPasskeyLogin(nil, alpha)
	if err != nil {
		t.Fatal(err)
	}
	flooder := Client{IP: "198.51.100.7", UserAgent: "flood"}
	var first string
	for i := range 2 * maxAnonymousPending {
		e.advance(time.Millisecond)
		tok, _, err := e.svc.BeginPasskeyLogin(nil, flooder)
		if err != nil {
			t.Fatalf("options %d: %v", i, err)
		}
		if i == 0 {
			first = tok
		}
	}
	own, _ := store.ParseSessionToken(first)
	if _, err := e.svc.FinishPasskeyLogin(own, key.Get(t, options), "/", flooder); !errors.Is(err, ErrNoPending) {
		t.Errorf("the flooder's first passkey login: %v, want it ended (ErrNoPending)", err)
	}
	victim, _ := store.ParseSessionToken(token)
	if _, err := e.svc.FinishPasskeyLogin(victim, key.Get(t, options), "/", alpha); err != nil {
		t.Fatalf("passkey login begun before another client's flood: %v", err)
	}
}

// scanCounter is a store that counts the reads of every user.
type scanCounter struct {
	store.Store
	scans atomic.Int32
}

type scanCountingTx struct {
	store.Tx
	c *scanCounter
}

func (c *scanCounter) View(fn func(store.Tx) error) error {
	return c.Store.View(func(tx store.Tx) error { return fn(scanCountingTx{tx, c}) })
}

func (c *scanCounter) Update(fn func(store.Tx) error) error {
	return c.Store.Update(func(tx store.Tx) error { return fn(scanCountingTx{tx, c}) })
}

func (tx scanCountingTx) ForEachUser(fn func(*store.User) error) error {
	tx.c.scans.Add(1)
	return tx.Tx.ForEachUser(fn)
}

// TestPasskeyLoginAnswerWithoutCeremonyReadsNoUsers: an answer naming an
// unknown user handle, posted with no passkey login begun, is refused
// without reading every user (which it could do without limit: it counts
// against no budget).
func TestPasskeyLoginAnswerWithoutCeremonyReadsNoUsers(t *testing.T) {
	e := newEnv(t, nil)
	e.withPasskeys(t, true)
	counter := &scanCounter{Store: e.svc.deps.Store}
	e.svc.deps.Store = counter
	_, options, err := e.svc.BeginPasskeyLogin(nil, alpha)
	if err != nil {
		t.Fatal(err)
	}
	stranger := softauthn.New(t, -7) // a handle no user has
	stranger.Handle = []byte("no-such-handle")
	answer := stranger.Get(t, options)
	pending, _ := e.pending(t, "bob")
	for _, key := range []store.SessionKey{{}, pending.Key} {
		if _, err := e.svc.FinishPasskeyLogin(key, answer, "/", alpha); !errors.Is(err, ErrSessionEnded) {
			t.Fatalf("answer without a passkey login: %v, want ErrSessionEnded", err)
		}
	}
	if n := counter.scans.Load(); n != 0 {
		t.Errorf("answers without a passkey login read every user %d times", n)
	}
}
