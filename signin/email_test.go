package signin

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// mailbox records the codes a service queued.
type mailbox struct {
	mu    sync.Mutex
	mails []CodeMail
}

func (m *mailbox) send(c CodeMail) {
	m.mu.Lock()
	m.mails = append(m.mails, c)
	m.mu.Unlock()
}

func (m *mailbox) last(t *testing.T) CodeMail {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.mails) == 0 {
		t.Fatal("no code was queued")
	}
	return m.mails[len(m.mails)-1]
}

// emailEnv is an env with e-mailed codes on, alice at alice@example.com,
// and alice enrolled.
func emailEnv(t *testing.T) (*env, *mailbox) {
	t.Helper()
	e, box, _ := emailEnvWith(t, func(*Policy) {})
	return e, box
}

// emailEnvWith is emailEnv with the policy changed by change; it returns
// the signed-in session of alice's enrollment too.
func emailEnvWith(t *testing.T, change func(*Policy)) (*env, *mailbox, *store.Session) {
	t.Helper()
	e := newEnv(t, func(p *Policy) {
		p.EmailCodes = true
		a := p.Accounts["alice"]
		a.Email = "alice@example.com"
		p.Accounts["alice"] = a
		change(p)
	})
	box := &mailbox{}
	e.svc.deps.Mailer = box.send
	e.svc.deps.CodeKey = []byte("0123456789abcdef0123456789abcdef")
	_, _, sess := e.enroll(t, "alice")
	return e, box, sess
}

// TestEmailCodeAtStepUp: with EmailCodesStepUp, a signed-in session that
// must give its factor again is e-mailed a code that Reconfirm takes,
// once; without it, a signed-in session is sent no code and a code typed
// anyway is no factor. Other actions behind a fresh factor (an app token
// here) never take an e-mailed code.
func TestEmailCodeAtStepUp(t *testing.T) {
	t.Run("off", func(t *testing.T) {
		e, box, sess := emailEnvWith(t, func(*Policy) {})
		if _, err := e.svc.SendEmailCode(sess, alpha); !errors.Is(err, ErrSessionEnded) {
			t.Fatalf("SendEmailCode to a signed-in session: %v", err)
		}
		if len(box.mails) != 0 {
			t.Fatal("a code was queued")
		}
		if _, err := e.svc.Reconfirm(sess, "12345678", alpha); !errors.Is(err, ErrMalformedFactor) {
			t.Fatalf("Reconfirm with an e-mail-like code: %v", err)
		}
	})
	t.Run("on", func(t *testing.T) {
		e, box, sess := emailEnvWith(t, func(p *Policy) { p.EmailCodesStepUp = true })
		if _, err := e.svc.SendEmailCode(sess, alpha); err != nil {
			t.Fatal(err)
		}
		code := box.last(t).Code
		if _, err := e.svc.CreateAppToken(sess, code, "cli", time.Time{}, alpha); !errors.Is(err, ErrMalformedFactor) {
			t.Fatalf("an app token made with an e-mailed code: %v", err)
		}
		if _, err := e.svc.Reconfirm(sess, flip(code), alpha); !errors.Is(err, ErrBadCode) {
			t.Fatalf("a wrong e-mailed code: %v", err)
		}
		if ev := e.last(t); ev.Kind != EventBadCode || ev.Step != StepReconfirm || ev.Method != MethodEmail {
			t.Fatalf("event %+v, want a bad e-mailed code at reconfirm", ev)
		}
		token, err := e.svc.Reconfirm(sess, code, alpha)
		if err != nil {
			t.Fatal(err)
		}
		fresh := e.signedIn(t, token)
		if fresh.Method != MethodEmail || !fresh.ConfirmedAt.Equal(e.clock()) || fresh.EmailCode != nil {
			t.Fatalf("after the e-mailed code: method %q, confirmed %v, code kept %v", fresh.Method, fresh.ConfirmedAt, fresh.EmailCode != nil)
		}
		if _, err := e.svc.Reconfirm(fresh, code, alpha); !errors.Is(err, ErrBadCode) {
			t.Fatalf("the e-mailed code used again: %v", err)
		}
	})
}

func TestEmailCodeSignsIn(t *testing.T) {
	e, box := emailEnv(t)
	sess, _ := e.pending(t, "alice")
	masked, err := e.svc.SendEmailCode(sess, alpha)
	if err != nil || masked != "a***@example.com" {
		t.Fatalf("SendEmailCode: %q, %v", masked, err)
	}
	mail := box.last(t)
	if mail.To != "alice@example.com" || mail.User != "alice" || len(mail.Code) != 8 || !mail.Expires.Equal(e.clock().Add(10*time.Minute)) {
		t.Fatalf("queued %+v", mail)
	}
	if ev := e.last(t); ev.Kind != EventEmailCodeSent || ev.User != "alice" {
		t.Fatalf("event %+v", ev)
	}
	res, err := e.svc.Confirm(sess, mail.Code[:4]+" "+mail.Code[4:], alpha)
	if err != nil || res.Method != MethodEmail {
		t.Fatalf("Confirm with the e-mailed code: %+v, %v", res, err)
	}
	if s := e.signedIn(t, res.Token); s.Method != MethodEmail {
		t.Fatalf("session method %q", s.Method)
	}
}

func TestEmailCodeRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		// act gets the session and the code sent for it, and returns the
		// code to type.
		act  func(e *emailCase, sess *store.Session, code string) string
		want error
	}{
		{"wrong code", func(_ *emailCase, _ *store.Session, code string) string { return flip(code) }, ErrBadCode},
		{"expired", func(e *emailCase, _ *store.Session, code string) string { e.advance(10 * time.Minute); return code }, ErrBadCode},
		{"replaced by a newer one", func(e *emailCase, sess *store.Session, code string) string {
			if _, err := e.svc.SendEmailCode(sess, alpha); err != nil {
				e.t.Fatal(err)
			}
			return code
		}, ErrBadCode},
		{"another session's code", func(e *emailCase, _ *store.Session, _ string) string {
			other, _ := e.pending(e.t, "alice")
			if _, err := e.svc.SendEmailCode(other, alpha); err != nil {
				e.t.Fatal(err)
			}
			return e.mailbox.last(e.t).Code
		}, ErrBadCode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, box := emailEnv(t)
			sess, _ := e.pending(t, "alice")
			if _, err := e.svc.SendEmailCode(sess, alpha); err != nil {
				t.Fatal(err)
			}
			code := tc.act(&emailCase{e, t, box}, sess, box.mails[0].Code)
			e.take()
			_, err := e.svc.Confirm(sess, code, alpha)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Confirm: %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				if ev := e.last(t); ev.Kind != EventBadCode || ev.Method != MethodEmail {
					t.Fatalf("event %+v, want a bad e-mailed code", ev)
				}
			}
		})
	}
}

// emailCase is what a case of TestEmailCodeRefusals acts with.
type emailCase struct {
	*env
	t       *testing.T
	mailbox *mailbox
}

// flip changes the last digit of code.
func flip(code string) string {
	last := code[len(code)-1]
	return code[:len(code)-1] + string('0'+(last-'0'+1)%10)
}

func TestEmailCodeIsSingleUse(t *testing.T) {
	e, box := emailEnv(t)
	sess, _ := e.pending(t, "alice")
	if _, err := e.svc.SendEmailCode(sess, alpha); err != nil {
		t.Fatal(err)
	}
	code := box.last(t).Code
	if _, err := e.svc.Confirm(sess, code, alpha); err != nil {
		t.Fatal(err)
	}
	// The pending session is gone with its code; a new one has none.
	again, _ := e.pending(t, "alice")
	if _, err := e.svc.Confirm(again, code, alpha); !errors.Is(err, ErrBadCode) {
		t.Fatalf("the code a second time: %v, want ErrBadCode", err)
	}
}

// TestWrongEmailCodesLock: wrong e-mailed codes count against the budget
// of wrong TOTP codes (3 per pair in this env's policy).
func TestWrongEmailCodesLock(t *testing.T) {
	e, box := emailEnv(t)
	sess, _ := e.pending(t, "alice")
	if _, err := e.svc.SendEmailCode(sess, alpha); err != nil {
		t.Fatal(err)
	}
	code := box.last(t).Code
	for range 3 {
		if _, err := e.svc.Confirm(sess, flip(code), alpha); !errors.Is(err, ErrBadCode) {
			t.Fatalf("wrong code: %v", err)
		}
	}
	if _, err := e.svc.Confirm(sess, code, alpha); !errors.As(err, new(*LockedError)) {
		t.Fatalf("right code after 3 wrong ones: %v, want a lock", err)
	}
	// While the lock lasts, the session opened before it gets no new code.
	sent := len(box.mails)
	if _, err := e.svc.SendEmailCode(sess, alpha); !errors.As(err, new(*LockedError)) {
		t.Fatalf("a code asked for while locked: %v, want a lock", err)
	}
	if len(box.mails) != sent {
		t.Fatal("a code was queued while the account was locked")
	}
}

func TestEmailCodeRequestLimits(t *testing.T) {
	e, box := emailEnv(t)
	sess, _ := e.pending(t, "alice")
	for i := range EmailCodeRequests {
		if _, err := e.svc.SendEmailCode(sess, alpha); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	_, err := e.svc.SendEmailCode(sess, alpha)
	tooMany, ok := errors.AsType[*TooManyCodesError](err)
	if !ok || tooMany.Scope != ScopeAccount || !tooMany.Until.Equal(e.clock().Add(EmailCodeWindow)) {
		t.Fatalf("request %d: %v, want the user's limit", EmailCodeRequests+1, err)
	}
	if n := len(box.mails); n != EmailCodeRequests {
		t.Fatalf("%d codes queued, want %d", n, EmailCodeRequests)
	}
	e.advance(EmailCodeWindow)
	sess, _ = e.pending(t, "alice")
	if _, err := e.svc.SendEmailCode(sess, alpha); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestEmailCodeClientLimit(t *testing.T) {
	users := []string{"u0", "u1", "u2", "u3", "u4"}
	e := newEnv(t, func(p *Policy) {
		p.EmailCodes = true
		for _, name := range users {
			a := p.Accounts["alice"]
			a.Email = name + "@example.com"
			p.Accounts[name] = a
		}
	})
	box := &mailbox{}
	e.svc.deps.Mailer = box.send
	// Two codes for each user: under each user's limit, at the client's.
	for i := range EmailCodeClientRequests {
		sess, _ := e.pending(t, users[i%len(users)])
		if _, err := e.svc.SendEmailCode(sess, alpha); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	sess, _ := e.pending(t, "u0")
	_, err := e.svc.SendEmailCode(sess, alpha)
	if tooMany, ok := errors.AsType[*TooManyCodesError](err); !ok || tooMany.Scope != ScopeClient {
		t.Fatalf("request %d from one client: %v, want the client's limit", EmailCodeClientRequests+1, err)
	}
	// Another network is not held back.
	if _, err := e.svc.SendEmailCode(sess, Client{IP: "198.51.100.1"}); err != nil {
		t.Fatalf("from another network: %v", err)
	}
}

func TestEmailCodeOffOrNoAddress(t *testing.T) {
	e, _ := emailEnv(t)
	bobSess, _ := e.pending(t, "bob")
	if _, err := e.svc.SendEmailCode(bobSess, alpha); !errors.Is(err, ErrNoAddress) {
		t.Fatalf("bob has no address: %v", err)
	}
	e.svc.policy.EmailCodes = false
	sess, _ := e.pending(t, "alice")
	if _, err := e.svc.SendEmailCode(sess, alpha); !errors.Is(err, ErrEmailCodesOff) {
		t.Fatalf("codes off: %v", err)
	}
	if _, err := e.svc.Confirm(sess, "12345678", alpha); !errors.Is(err, ErrMalformedFactor) {
		t.Fatalf("an 8-digit code with codes off: %v, want ErrMalformedFactor", err)
	}
}

func TestNewBrowser(t *testing.T) {
	e := newEnv(t, nil)
	secret, _, _ := e.enroll(t, "alice") // enrolled from alpha: known
	signIn := func(c Client) Event {
		t.Helper()
		res, err := e.svc.Login(t.Context(), LoginRequest{User: "alice", Password: testPassword, Client: c})
		if err != nil {
			t.Fatal(err)
		}
		key, _ := store.ParseSessionToken(res.Token)
		sess, _, err := e.svc.Pending(key)
		if err != nil {
			t.Fatal(err)
		}
		e.advance(30 * time.Second)
		if _, err := e.svc.Confirm(sess, e.code(t, secret), c); err != nil {
			t.Fatal(err)
		}
		return e.last(t)
	}
	firefox := "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	for _, tc := range []struct {
		name string
		c    Client
		new  bool
	}{
		{"the browser that enrolled", alpha, false},
		{"another browser", Client{IP: "192.0.2.1", UserAgent: firefox}, true},
		{"it again", Client{IP: "192.0.2.1", UserAgent: firefox}, false},
		{"a newer version, same /24", Client{IP: "192.0.2.200", UserAgent: firefox[:len(firefox)-5] + "134.0"}, false},
		{"another network", Client{IP: "198.51.100.7", UserAgent: firefox}, true},
	} {
		if ev := signIn(tc.c); ev.Kind != EventSignedIn || ev.NewBrowser != tc.new {
			t.Errorf("%s: event %+v, want NewBrowser %v", tc.name, ev, tc.new)
		}
	}
	var u *store.User
	_ = e.store.View(func(tx store.Tx) (err error) { u, err = tx.User("alice"); return err })
	if n := len(u.KnownBrowsers); n != 3 {
		t.Errorf("%d known browsers, want 3", n)
	}
}
