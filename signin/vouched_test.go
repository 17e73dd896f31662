package signin

import (
	"errors"
	"testing"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// TestVouched: a policy of vouched sign-ins opens a pending session
// without a password, for the users it declares (any when it declares
// none), and honours only such sessions; a password policy honours none
// of them.
func TestVouched(t *testing.T) {
	t.Run("declared users only", func(t *testing.T) {
		e := newEnv(t, func(p *Policy) { p.Vouched = true })
		if _, err := e.svc.BeginVouched(VouchedRequest{User: "mallory", Client: alpha}); !errors.Is(err, ErrNotVouchable) {
			t.Fatalf("a user the config does not declare: %v", err)
		}
		if _, err := e.svc.BeginVouched(VouchedRequest{User: "", Client: alpha}); !errors.Is(err, ErrNotVouchable) {
			t.Fatalf("no user: %v", err)
		}
		res, err := e.svc.BeginVouched(VouchedRequest{User: "alice", Client: alpha, Next: "/n"})
		if err != nil || res.Stage != NeedsSetup {
			t.Fatalf("alice: %v, %v", res, err)
		}
		key, _ := store.ParseSessionToken(res.Token)
		sess, _, err := e.svc.Pending(key)
		if err != nil || sess.Next != "/n" || sess.Credential != VouchedCredential {
			t.Fatalf("pending session %+v, %v", sess, err)
		}
		if ev := e.last(t); ev.Kind != EventVouched || ev.User != "alice" {
			t.Errorf("event %+v", ev)
		}
		// The second factor completes it, as after a password.
		secret, err := e.svc.SetupSecret(sess, false)
		if err != nil {
			t.Fatal(err)
		}
		done, err := e.svc.FinishSetup(sess, e.code(t, secret), alpha)
		if err != nil {
			t.Fatal(err)
		}
		e.signedIn(t, done.Token)
	})
	t.Run("any user when none is declared", func(t *testing.T) {
		e := newEnv(t, func(p *Policy) { p.Vouched, p.Accounts = true, nil })
		if _, err := e.svc.BeginVouched(VouchedRequest{User: "mallory", Client: alpha}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a password policy takes none", func(t *testing.T) {
		e := newEnv(t, nil)
		if _, err := e.svc.BeginVouched(VouchedRequest{User: "alice", Client: alpha}); !errors.Is(err, ErrNotVouchable) {
			t.Fatalf("got %v", err)
		}
	})

	password := store.CredentialOf("$2a$04$x")
	for _, tc := range []struct {
		name    string
		policy  Policy
		user    string
		opened  store.Credential
		honours bool
	}{
		{"vouched session, vouched policy, declared", Policy{Vouched: true, Accounts: map[string]Account{"alice": {}}}, "alice", VouchedCredential, true},
		{"vouched session, vouched policy, undeclared", Policy{Vouched: true, Accounts: map[string]Account{"alice": {}}}, "bob", VouchedCredential, false},
		{"vouched session, vouched policy, no users", Policy{Vouched: true}, "bob", VouchedCredential, true},
		{"password session, vouched policy", Policy{Vouched: true}, "bob", password, false},
		{"vouched session, password policy", Policy{Accounts: map[string]Account{"alice": {Credential: password}}}, "alice", VouchedCredential, false},
		{"vouched session, password policy, database user", Policy{}, "bob", VouchedCredential, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.policy.Honours(tc.user, tc.opened, false); got != tc.honours {
				t.Errorf("Honours = %v, want %v", got, tc.honours)
			}
		})
	}
}
