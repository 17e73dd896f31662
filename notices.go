package twofactor

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-two-factor/caddy-two-factor/notify"
	"github.com/caddy-two-factor/caddy-two-factor/signin"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Notify configures the notices: who gets told, and how. A config without
// it sends none.
type Notify struct {
	// The SMTP server, host:port, for notices to users' e-mail addresses.
	// Default: none (no e-mail).
	SMTP string `json:"smtp,omitempty"`

	// How the SMTP connection is protected: starttls, tls (smtps) or
	// insecure (plain text, only to a loopback host). Default: tls on
	// port 465, starttls otherwise.
	SMTPSecurity string `json:"smtp_security,omitempty"`

	// The SMTP AUTH PLAIN user name and password; both or neither. Give
	// them as placeholders ({env.SMTP_PASSWORD}), resolved at provisioning.
	// Default: no AUTH.
	SMTPUsername string `json:"smtp_username,omitempty"`
	SMTPPassword string `json:"smtp_password,omitempty"` //nolint:gosec // configured, not hard-coded

	// The sender of the e-mails, like "Example Admin <admin@example.com>".
	// Required with smtp.
	From string `json:"from,omitempty"`

	// URLs that get each notice as a JSON POST (see docs/notifications.md):
	// https, or http to a loopback host. Default: none.
	Webhooks []string `json:"webhooks,omitempty"`

	// The events to send (notify.AllEvents names; "all"). Default: all.
	Events []string `json:"events,omitempty"`

	// The account page's address, linked from every notice, like
	// https://example.com/_2fa/account. Default: none (no link).
	AccountURL string `json:"account_url,omitempty"`
}

// lowRecoveryCodes is how few recovery codes left make a use of one
// recovery_codes_low rather than recovery_code_used.
const lowRecoveryCodes = 2

// claimTTL is how long an instance's claim of a notice keeps the others
// from sending it.
const claimTTL = 24 * time.Hour

// notifier sends one config's notices.
type notifier struct {
	dispatcher *notify.Dispatcher
	events     notify.Events
	accountURL string
	hasMail    bool
	// recent holds the IDs of notices queued lately (see enqueueNotice).
	recent store.LocalClaims
}

// provisionNotify builds the transports and starts the dispatcher, so a
// bad address, URL or template is a config error at load.
func (h *TwoFactor) provisionNotify(repl *caddy.Replacer) error {
	if h.Notify == nil {
		return nil
	}
	n := h.Notify
	resolve := func(s string) string { return repl.ReplaceKnown(s, "") }
	messages, err := h.notifyMessages(repl)
	if err != nil {
		return err
	}
	events, err := notify.ParseEvents(n.Events)
	if err != nil {
		return fmt.Errorf("notify events: %w", err)
	}
	var senders []notify.Sender
	if n.SMTP != "" {
		s, err := notify.NewSMTP(notify.SMTPConfig{
			Address:  resolve(n.SMTP),
			Security: notify.Security(n.SMTPSecurity),
			Username: resolve(n.SMTPUsername),
			Password: resolve(n.SMTPPassword),
			From:     resolve(n.From),
			Messages: messages,
		})
		if err != nil {
			return fmt.Errorf("notify: %w", err)
		}
		senders = append(senders, s)
	}
	for _, raw := range n.Webhooks {
		w, err := notify.NewWebhook(notify.WebhookConfig{URL: resolve(raw), Messages: messages})
		if err != nil {
			return fmt.Errorf("notify: %w", err)
		}
		senders = append(senders, w)
	}
	cfg := notify.Config{Senders: senders, Events: events, Logger: h.logger.Named("notify")}
	if c, ok := store.As[store.Claimer](h.db.raw); ok {
		cfg.Claim = func(key string) (bool, error) { return c.Claim("notice:"+key, claimTTL) }
	}
	h.notifier = &notifier{
		dispatcher: notify.New(cfg),
		events:     events,
		accountURL: resolve(n.AccountURL),
		hasMail:    n.SMTP != "",
		recent:     store.LocalClaims{Now: func() time.Time { return h.now() }},
	}
	return nil
}

// notifyMessages returns the texts of the notices: the English ones, with
// each file templates_dir/notify/<key>.txt in place of the text of that
// key (notify.English lists the keys). Every text is rendered once here,
// so a broken one is a config error.
func (h *TwoFactor) notifyMessages(repl *caddy.Replacer) (*notify.Messages, error) {
	if h.TemplatesDir == "" {
		return notify.DefaultMessages(), nil
	}
	dir := filepath.Join(repl.ReplaceKnown(h.TemplatesDir, ""), "notify")
	files, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil || len(files) == 0 {
		return notify.DefaultMessages(), err
	}
	catalog := maps.Clone(notify.English)
	for _, f := range files {
		key := strings.TrimSuffix(filepath.Base(f), ".txt")
		if _, ok := notify.English[key]; !ok {
			return nil, fmt.Errorf("notice template %s: no message is called %q (see notify.English for the names)", f, key)
		}
		text, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading notice template: %w", err)
		}
		catalog[key] = string(text)
	}
	m, err := notify.NewMessages(catalog)
	if err != nil {
		return nil, fmt.Errorf("notice templates in %s: %w", dir, err)
	}
	left := 3
	for _, e := range notify.AllEvents {
		sample := notify.Notice{Event: e, User: "alice", Time: time.Unix(0, 0), ClientIP: "192.0.2.1", Browser: "Firefox on Linux",
			RecoveryCodesLeft: &left, Item: "phone", AccountURL: "https://example.com/_2fa/account", To: "alice@example.com", Code: "12345678"}
		if _, _, err := m.Render(sample); err != nil {
			return nil, fmt.Errorf("notice templates in %s: %w", dir, err)
		}
	}
	return m, nil
}

// validateNotify checks what provisioning did not.
func (h *TwoFactor) validateNotify() error {
	if n := h.Notify; n != nil && n.SMTP == "" && len(n.Webhooks) == 0 {
		return errors.New("notify needs smtp or a webhook")
	}
	if n := h.Notify; n != nil && n.SMTP != "" && n.From == "" {
		return errors.New("notify: smtp needs from")
	}
	if h.EmailCodesStepUp && !h.EmailCodes {
		return errors.New("email_codes_step_up needs email_codes")
	}
	if h.EmailCodes && (h.Notify == nil || h.Notify.SMTP == "") {
		return errors.New("email_codes needs an SMTP server: set smtp in notify")
	}
	return nil
}

// closeNotify stops the dispatcher: notices still queued are dropped
// (and counted in the log). Each config has its own, closed at its
// Cleanup, so no goroutine or SMTP password outlives the config.
func (h *TwoFactor) closeNotify() {
	if h.notifier != nil {
		_ = h.notifier.dispatcher.Close()
	}
}

// emailCodes turns e-mailed codes on in policy and deps, if the config
// allows them. Their digests are keyed by a key derived from the store's
// anti-CSRF key, so every instance on the store checks them alike.
func (h *TwoFactor) emailCodes(policy *signin.Policy, deps *signin.Deps) {
	if !h.EmailCodes || h.notifier == nil || !h.notifier.hasMail {
		return
	}
	policy.EmailCodes = true
	policy.EmailCodesStepUp = h.EmailCodesStepUp
	deps.Mailer = h.mailCode
	mac := hmac.New(sha256.New, h.db.csrfKey)
	mac.Write([]byte("e-mailed sign-in codes"))
	deps.CodeKey = mac.Sum(nil)
}

// mailCode queues an e-mailed code (signin.Deps.Mailer).
func (h *TwoFactor) mailCode(m signin.CodeMail) {
	h.enqueueNotice(notify.Notice{
		ID: notify.NewID(), Event: notify.EmailCode, User: m.User, Time: h.now(),
		ClientIP: m.Client.IP, Browser: signin.Device(m.Client.UserAgent),
		To: m.To, Code: m.Code, Expires: m.Expires,
	})
}

// noticeEvent turns a sign-in event into a notice (a signin observer).
func (h *TwoFactor) noticeEvent(e signin.Event) {
	if h.notifier == nil || !e.Known {
		return
	}
	var n notify.Notice
	switch {
	case e.Kind == signin.EventSignedIn && e.NewBrowser:
		n.Event = notify.SignInNewBrowser
	case e.Kind == signin.EventRecoveryUsed:
		n.Event = notify.RecoveryCodeUsed
		if e.Remaining <= lowRecoveryCodes && h.notifier.events.Has(notify.RecoveryCodesLow) {
			n.Event = notify.RecoveryCodesLow
		}
		n.RecoveryCodesLeft = &e.Remaining
	case e.Kind == signin.EventAuthenticatorReplaced:
		n.Event = notify.AuthenticatorAdded
	case e.Kind == signin.EventAppTokenCreated:
		n.Event, n.Item = notify.AppTokenAdded, e.Reason
	case e.Kind == signin.EventAppTokenRevoked:
		n.Event, n.Item = notify.AppTokenRemoved, e.Reason
	case e.Kind == signin.EventBrowserRemembered:
		n.Event, n.Item = notify.RememberedBrowserAdded, e.Reason
	case e.Kind == signin.EventBrowsersForgotten:
		n.Event, n.Item = notify.RememberedBrowserRemoved, e.Reason
	case e.Kind == signin.EventPasskeyAdded:
		n.Event, n.Item = notify.PasskeyAdded, e.Reason
	case e.Kind == signin.EventPasskeyRemoved:
		n.Event, n.Item = notify.PasskeyRemoved, e.Reason
	case e.Kind == signin.EventLocked && e.Scope == signin.ScopeAccount && e.Step != signin.StepEmailCode:
		n.Event = notify.AccountLocked
	default:
		return
	}
	h.sendNotice(n, e)
}

// sendNotice fills in n from e and queues it.
func (h *TwoFactor) sendNotice(n notify.Notice, e signin.Event) {
	n.User, n.Time = e.User, h.now()
	n.ClientIP, n.Browser = e.Client.IP, ""
	// The language the pages chose for the client (the operator's
	// language and languages apply); an operator's action has no client
	// and gets the default language.
	n.Language = h.languagePages().bundle.Negotiate(e.Client.Language).Lang()
	if e.Client.UserAgent != "" {
		n.Browser = signin.Device(e.Client.UserAgent)
	}
	n.ID = noticeID(n, e)
	h.enqueueNotice(n)
}

// enqueueNotice addresses n and queues it, unless a notice of its ID was
// queued lately: an event reported again and again (each refused attempt
// of a locked account) is queued once. A full queue is logged by the
// dispatcher; the event itself goes on.
func (h *TwoFactor) enqueueNotice(n notify.Notice) {
	if first, _ := h.notifier.recent.Claim(n.ID, time.Hour); !first {
		return
	}
	if err := h.notifier.dispatcher.Enqueue(h.addressed(n)); err != nil && !errors.Is(err, notify.ErrClosed) {
		h.logger.Debug("notice not queued", zap.String("notice", string(n.Event)), zap.Error(err))
	}
}

// addressed returns n with the address of its user, if they have one:
// the config's, or the store's for a user it does not declare.
func (h *TwoFactor) addressed(n notify.Notice) notify.Notice {
	n.AccountURL = h.notifier.accountURL
	if !h.notifier.hasMail || n.To != "" {
		return n // no e-mail, or addressed already (an e-mailed code)
	}
	if acct, ok := h.accounts[n.User]; ok {
		n.To = acct.Email
		return n
	}
	err := h.db.store.View(func(tx store.Tx) error {
		u, err := tx.User(n.User)
		if err == nil {
			n.To = u.Email
		}
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.logger.Warn("reading the address for a notice; it goes to webhooks only",
			zap.String("notice", string(n.Event)), zap.String("user", n.User), zap.Error(err))
	}
	return n
}

// noticeID names a notice by what happened, so that every instance and
// every config that reports the same event queues a notice of the same
// ID, which the dispatchers' claims send once. A lock is named by its end,
// which every refusal during it reports alike; anything else by the
// second it happened in.
func noticeID(n notify.Notice, e signin.Event) string {
	when := n.Time.UTC().Truncate(time.Second)
	if n.Event == notify.AccountLocked {
		when = e.Until.UTC()
	}
	left := ""
	if n.RecoveryCodesLeft != nil {
		left = strconv.Itoa(*n.RecoveryCodesLeft)
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{
		string(n.Event), n.User, when.Format(time.RFC3339Nano), n.ClientIP, n.Browser, left, n.Item,
	}, "\x00")))
	return hex.EncodeToString(sum[:16])
}

// operatorNotices returns the observer of an operator's actions on db:
// each notice goes to every config on db that sends notices, under one
// ID, so a transport that several configs share sends it once.
func (db *database) operatorNotices(now time.Time) func(signin.Event) {
	return func(e signin.Event) {
		var ev notify.Event
		switch e.Kind {
		case signin.EventReset:
			ev = notify.OperatorReset
		case signin.EventRevoked:
			ev = notify.OperatorRevoke
		case signin.EventPasswordChanged:
			ev = notify.OperatorPasswordChange
		case signin.EventPasskeyRemoved:
			ev = notify.PasskeyRemoved
		default:
			return
		}
		n := notify.Notice{Event: ev, User: e.User, Time: now, Item: e.Reason}
		n.ID = noticeID(n, e)
		for h := range db.configs {
			if h.notifier != nil {
				h.enqueueNotice(n)
			}
		}
	}
}
