package signin

import (
	"crypto/sha256"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/notify"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
)

// MethodEmail is the method of a sign-in completed with an e-mailed code.
const MethodEmail = "email"

// The limits on asking for e-mailed codes: per user, and per client
// network (an IPv4 address or an IPv6 /64), within EmailCodeWindow. The
// network's limit is higher so that the users behind one NAT can each ask.
const (
	EmailCodeRequests       = 3
	EmailCodeClientRequests = 10
	EmailCodeWindow         = 15 * time.Minute
)

// Errors of SendEmailCode.
var (
	// ErrEmailCodesOff is an e-mailed code asked for or given where the
	// config does not allow them.
	ErrEmailCodesOff = errors.New("e-mailed codes are off")
	// ErrNoAddress is an e-mailed code asked for by a user without an
	// e-mail address.
	ErrNoAddress = errors.New("no e-mail address")
)

// TooManyCodesError refuses a request for an e-mailed code past its limit.
type TooManyCodesError struct {
	// Until is when a code may be asked for again.
	Until time.Time
	// Scope is ScopeAccount (the user's limit) or ScopeClient (the
	// client network's).
	Scope string
}

func (e *TooManyCodesError) Error() string {
	return "too many e-mailed codes asked for, try again after " + e.Until.UTC().Format(time.RFC3339)
}

// CodeMail is an e-mailed code to send: Deps.Mailer queues it.
type CodeMail struct {
	User, To, Code string
	// Expires is when the code stops working; a mail not sent by then is
	// not worth sending.
	Expires time.Time
	Client  Client
}

// Address returns the e-mail address of the user of record u (nil for a
// user with no record yet): the config's, for a user it declares, or the
// record's. "" means none.
func (s *Service) Address(name string, u *store.User) string {
	if acct, ok := s.policy.Accounts[name]; ok {
		return acct.Email
	}
	if u != nil {
		return u.Email
	}
	return ""
}

// OffersEmailCode reports whether the confirm page offers the user of
// record u an e-mailed code, and the masked address to show.
func (s *Service) OffersEmailCode(name string, u *store.User) (masked string, ok bool) {
	if !s.policy.EmailCodes || s.deps.Mailer == nil {
		return "", false
	}
	addr := s.Address(name, u)
	return notify.MaskAddress(addr), addr != ""
}

// SendEmailCode e-mails a new fallback code to the user of the pending
// session sess, or of the signed-in session sess when step-up takes
// e-mailed codes (Policy.EmailCodesStepUp; see Reconfirm), and returns
// their address, masked. The code (notify.NewCode)
// works for notify.CodeLifetime, once, in this session only; a new one
// replaces it. Only its digest is stored. Whether the mail goes out is not
// known here (it is queued), so every answer is the same whatever the mail
// server does.
//
// A locked account (or client) gets no code: the code could not be used
// while the lock lasts, and a session opened before the lock would
// otherwise keep sending mail. It returns a *LockedError then, and
// otherwise ErrEmailCodesOff, ErrNoAddress, a *TooManyCodesError past
// the limits (EmailCodeRequests per user and EmailCodeClientRequests per
// client network within EmailCodeWindow), ErrSessionEnded, or the store's
// error.
func (s *Service) SendEmailCode(sess *store.Session, c Client) (string, error) {
	if !s.policy.EmailCodes || s.deps.Mailer == nil {
		return "", ErrEmailCodesOff
	}
	now := s.deps.Now()
	until, err := s.deps.Attempts.LockedUntil(sess.User, true, c.IP, s.policy.Limits, now)
	if err != nil {
		return "", err
	}
	if !until.IsZero() {
		return "", s.locked(StepEmailCode, sess.User, true, c, until, ScopeAccount)
	}
	code, err := notify.NewCode()
	if err != nil {
		return "", err
	}
	mail := CodeMail{User: sess.User, Code: code, Expires: now.Add(notify.CodeLifetime), Client: c}
	err = s.deps.Store.Update(func(tx store.Tx) error {
		rec, err := tx.Session(sess.Key)
		if err != nil {
			return asEnded(err)
		}
		if rec.Stage != store.StagePending && (rec.Stage != store.StageFull || !s.policy.EmailCodesStepUp) {
			return ErrSessionEnded
		}
		u, err := tx.User(rec.User)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if mail.To = s.Address(rec.User, u); mail.To == "" {
			return ErrNoAddress
		}
		if err := countCodeRequest(tx, emailUserKey(rec.User), EmailCodeRequests, ScopeAccount, now); err != nil {
			return err
		}
		if err := countCodeRequest(tx, emailClientKey(c.IP), EmailCodeClientRequests, ScopeClient, now); err != nil {
			return err
		}
		rec.EmailCode = notify.CodeDigest(s.deps.CodeKey, rec.User, code)
		rec.EmailCodeExpires = mail.Expires
		return tx.PutSession(rec)
	})
	if tooMany, ok := errors.AsType[*TooManyCodesError](err); ok {
		s.observers.emit(Event{Kind: EventLocked, Step: StepEmailCode, User: sess.User, Known: true, Client: c, Until: tooMany.Until, Scope: tooMany.Scope})
		return "", err
	}
	if err != nil {
		return "", err
	}
	s.deps.Mailer(mail)
	s.observers.emit(Event{Kind: EventEmailCodeSent, Step: StepEmailCode, User: sess.User, Known: true, Client: c})
	return notify.MaskAddress(mail.To), nil
}

// The counters of requests for e-mailed codes. Their window's end is kept
// as LockedUntil, so no sweep of stale counters (which knows only the
// attempt window) drops one early.
func emailUserKey(user string) string { return "email:user:" + user }
func emailClientKey(ip string) string { return "email:client:" + throttle.NetworkOf(ip) }

// countCodeRequest counts one request against the counter key, limit per
// EmailCodeWindow, or refuses it.
func countCodeRequest(tx store.Tx, key string, limit int, scope string, now time.Time) error {
	a, err := tx.Attempts(key)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !now.Before(a.LockedUntil)) {
		a, err = &store.Attempts{WindowStart: now, LockedUntil: now.Add(EmailCodeWindow)}, nil
	}
	if err != nil {
		return err
	}
	if a.Failures >= limit {
		return &TooManyCodesError{Until: a.LockedUntil, Scope: scope}
	}
	a.Failures++
	return tx.PutAttempts(key, a)
}

// useEmailCode checks code against the e-mailed code of the session rec
// (pending, or signed in at a step-up) and uses it up. It returns ErrBadCode if there is none, it
// has expired or code is not it.
func (s *Service) useEmailCode(rec *store.Session, code string, now time.Time) error {
	ok := rec.EmailCode != nil && now.Before(rec.EmailCodeExpires) &&
		notify.CheckCode(s.deps.CodeKey, rec.User, code, rec.EmailCode)
	if !ok {
		return ErrBadCode
	}
	rec.EmailCode, rec.EmailCodeExpires = nil, time.Time{}
	return nil
}

// maxKnownBrowsers is how many browsers a user's record remembers.
const maxKnownBrowsers = 5

// browserDigest names a browser for KnownBrowsers: its kind and system
// (Device) and the client's network, an IPv4 /24 or an IPv6 /48. A browser
// is new when the user has not signed in from this kind of browser, on
// this system, from this network, among their last few sign-ins: a new
// version of the same browser is not new, a trip abroad is.
func browserDigest(c Client) []byte {
	network := c.IP
	if addr, err := netip.ParseAddr(c.IP); err == nil {
		addr = addr.Unmap()
		bits := 24
		if addr.Is6() {
			bits = 48
		}
		if p, err := addr.Prefix(bits); err == nil {
			network = p.String()
		}
	}
	sum := sha256.Sum256([]byte(Device(c.UserAgent) + "\x00" + network))
	return sum[:8]
}

// rememberBrowser records c's browser in u and reports whether it is new
// to a user who had known browsers: the first one recorded (at
// enrollment, or the first sign-in since browsers are recorded) is not
// news.
func rememberBrowser(u *store.User, c Client) bool {
	d := browserDigest(c)
	i := slices.IndexFunc(u.KnownBrowsers, func(k []byte) bool { return string(k) == string(d) })
	isNew := i < 0 && len(u.KnownBrowsers) > 0
	if i >= 0 {
		u.KnownBrowsers = slices.Delete(u.KnownBrowsers, i, i+1)
	}
	u.KnownBrowsers = append(u.KnownBrowsers, d)
	if n := len(u.KnownBrowsers); n > maxKnownBrowsers {
		u.KnownBrowsers = u.KnownBrowsers[n-maxKnownBrowsers:]
	}
	return isNew
}
