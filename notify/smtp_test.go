package notify_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/caddy-two-factor/caddy-two-factor/internal/mailtest"
	"github.com/caddy-two-factor/caddy-two-factor/notify"
)

func newSMTP(t *testing.T, ms *mailtest.Server, configure func(*notify.SMTPConfig)) *notify.SMTP {
	t.Helper()
	cfg := notify.SMTPConfig{
		Address: ms.Addr,
		From:    "Example Admin <admin@example.com>",
		RootCAs: ms.Roots,
		Now:     func() time.Time { return epoch },
		Timeout: waitLimit,
	}
	if configure != nil {
		configure(&cfg)
	}
	s, err := notify.NewSMTP(cfg)
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	return s
}

func TestSMTPSendsOverSTARTTLSWithAuth(t *testing.T) {
	ms := mailtest.Start(t, mailtest.OfferSTARTTLS, func(ms *mailtest.Server) { ms.User, ms.Password = "mailer", "s3cret-pw" })
	s := newSMTP(t, ms, func(c *notify.SMTPConfig) { c.Username, c.Password = "mailer", "s3cret-pw" })
	n := aliceNotice(notify.RecoveryCodeUsed)
	n.User = "älice"
	n.RecoveryCodesLeft = intp(3)
	if err := s.Send(context.Background(), n); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := ms.Received()
	if len(got) != 1 {
		t.Fatalf("server received %d messages, want 1", len(got))
	}
	r := got[0]
	if !r.TLS || r.Authed != "mailer" || r.From != "admin@example.com" || r.To != "alice@example.com" {
		t.Errorf("envelope: tls=%v authed=%q from=%q to=%q", r.TLS, r.Authed, r.From, r.To)
	}
	m, subject, body := mailtest.Read(t, r.Data)
	headers := map[string]string{
		"From":                      `"Example Admin" <admin@example.com>`,
		"To":                        "<alice@example.com>",
		"Date":                      epoch.Format(time.RFC1123Z),
		"MIME-Version":              "1.0",
		"Content-Type":              "text/plain; charset=UTF-8",
		"Content-Transfer-Encoding": "quoted-printable",
		"Auto-Submitted":            "auto-generated",
	}
	for k, want := range headers {
		if got := m.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if id := m.Header.Get("Message-ID"); !regexp.MustCompile(`^<[0-9a-f]{32}@example\.com>$`).MatchString(id) {
		t.Errorf("Message-ID %q", id)
	}
	if subject != "A recovery code was used for älice" {
		t.Errorf("subject %q", subject)
	}
	containsAll(t, "body", body,
		"A recovery code was used to sign in to your account älice. You have 3 recovery codes left.",
		"When: Sun, 29 Nov 2026 12:00:00 UTC",
		"IP address: 203.0.113.7",
		"Browser: Firefox on Linux",
		"https://example.com/2fa/account",
		"caddy two-factor revoke älice",
	)
	if bytes.Contains(r.Data, []byte("s3cret-pw")) {
		t.Error("the message contains the SMTP password")
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	ms := mailtest.Start(t, mailtest.ImplicitTLS, nil)
	s := newSMTP(t, ms, func(c *notify.SMTPConfig) { c.Security = notify.ImplicitTLS })
	if err := s.Send(context.Background(), aliceNotice(notify.AccountLocked)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := ms.Received(); len(got) != 1 || !got[0].TLS {
		t.Fatalf("received %+v, want one message over TLS", got)
	}
}

func TestSMTPInsecureLoopback(t *testing.T) {
	ms := mailtest.Start(t, mailtest.PlainOnly, nil)
	s := newSMTP(t, ms, func(c *notify.SMTPConfig) { c.Security = notify.Insecure })
	if err := s.Send(context.Background(), aliceNotice(notify.OperatorRevoke)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := ms.Received(); len(got) != 1 || got[0].TLS {
		t.Fatalf("received %+v, want one plain message", got)
	}
}

func TestSMTPRefusesServerWithoutSTARTTLS(t *testing.T) {
	ms := mailtest.Start(t, mailtest.PlainOnly, nil)
	s := withResults(newSMTP(t, ms, func(c *notify.SMTPConfig) { c.Username, c.Password = "mailer", "s3cret-pw" }))
	log, logs := observed()
	d := newDispatcher(t, notify.Config{Senders: []notify.Sender{s}, Logger: log})
	n := aliceNotice(notify.EmailCode)
	n.Code = "24681357"
	d.Enqueue(n)
	if err := s.next(t); !errors.Is(err, notify.ErrNoSTARTTLS) || !notify.IsPermanent(err) {
		t.Fatalf("Send: %v, want permanent ErrNoSTARTTLS", err)
	}
	gaveUp := waitLog(t, logs, "sending notice failed; giving up")
	d.Close()

	mails := ms.Mails()
	if mails != 0 || len(ms.Received()) != 0 {
		t.Errorf("client went on without TLS: %d MAIL commands, %d messages", mails, len(ms.Received()))
	}
	if len(gaveUp) != 1 {
		t.Fatalf("logged %d give-ups, want 1", len(gaveUp))
	}
	if err, _ := gaveUp[0].ContextMap()["error"].(string); !strings.Contains(err, "STARTTLS") {
		t.Errorf("logged error %q does not name STARTTLS", err)
	}
	noLeak(t, logs, "24681357", "s3cret-pw", "alice@example.com")
}

func TestSMTPWrongPasswordIsPermanent(t *testing.T) {
	ms := mailtest.Start(t, mailtest.OfferSTARTTLS, func(ms *mailtest.Server) { ms.User, ms.Password = "mailer", "right" })
	s := newSMTP(t, ms, func(c *notify.SMTPConfig) { c.Username, c.Password = "mailer", "wrong-pw" })
	err := s.Send(context.Background(), aliceNotice(notify.AccountLocked))
	if !notify.IsPermanent(err) {
		t.Fatalf("Send with a wrong password: %v, want a permanent error", err)
	}
	if strings.Contains(err.Error(), "wrong-pw") {
		t.Errorf("error %q contains the password", err)
	}
}

func TestSMTPRefusesHeaderInjection(t *testing.T) {
	ms := mailtest.Start(t, mailtest.OfferSTARTTLS, nil)
	s := newSMTP(t, ms, nil)
	tests := []struct {
		name   string
		modify func(*notify.Notice)
	}{
		{"user", func(n *notify.Notice) { n.User = "alice\r\nBcc: evil@example.net" }},
		{"user LF", func(n *notify.Notice) { n.User = "alice\nBcc: evil@example.net" }},
		{"address", func(n *notify.Notice) { n.To = "alice@example.com\r\nBcc: evil@example.net" }},
		{"address LF", func(n *notify.Notice) { n.To = "alice@example.com\nBcc: evil@example.net" }},
		{"item", func(n *notify.Notice) { n.Event = notify.PasskeyAdded; n.Item = "key\r\nBcc: evil@example.net" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := aliceNotice(notify.SignInNewBrowser)
			tt.modify(&n)
			err := s.Send(context.Background(), n)
			if tt.name == "item" {
				// The item is in the body only (the subject does not name
				// it), where a line break is just a line break.
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				m, _, body := mailtest.Read(t, ms.Received()[0].Data)
				if m.Header.Get("Bcc") != "" {
					t.Error("a Bcc header got into the message")
				}
				if !strings.Contains(body, `A passkey ("key  Bcc: evil@example.net") was added`) {
					t.Errorf("the label's line break was kept:\n%s", body)
				}
				return
			}
			if !notify.IsPermanent(err) {
				t.Fatalf("Send: %v, want a permanent error", err)
			}
		})
	}
	for _, r := range ms.Received() {
		if bytes.Contains(r.Data, []byte("\r\nBcc:")) || strings.Contains(r.To, "evil") {
			t.Errorf("injected header or recipient reached the server: %q", r.Data)
		}
	}
}

func TestSMTPRetriesAfterTemporaryFailure(t *testing.T) {
	temporary := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	ms := mailtest.Start(t, mailtest.OfferSTARTTLS, func(ms *mailtest.Server) { ms.RcptErrs = []error{temporary} })
	s := withResults(newSMTP(t, ms, nil))
	clock := newFakeClock()
	log, logs := observed()
	d := newDispatcher(t, notify.Config{Senders: []notify.Sender{s}, Clock: clock, Logger: log})
	d.Enqueue(aliceNotice(notify.AuthenticatorAdded))
	if err := s.next(t); err == nil || notify.IsPermanent(err) {
		t.Fatalf("first attempt: %v, want a temporary error", err)
	}
	if got := clock.nextWait(t); got != notify.DefaultBackoff {
		t.Errorf("first backoff %v, want %v", got, notify.DefaultBackoff)
	}
	if len(ms.Received()) != 0 {
		t.Fatal("message accepted despite the 451")
	}
	clock.Advance(notify.DefaultBackoff)
	if err := s.next(t); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := ms.Received(); len(got) != 1 {
		t.Fatalf("received %d messages after the retry, want 1", len(got))
	}
	if logs.FilterMessage("sending notice failed; will retry").Len() != 1 {
		t.Error("the 451 was not logged as a retry")
	}
}

func TestSMTPSlowServerDoesNotBlock(t *testing.T) {
	ms := mailtest.Start(t, mailtest.OfferSTARTTLS, func(ms *mailtest.Server) { ms.DataBlock = make(chan struct{}) })
	defer close(ms.DataBlock)
	s := newSMTP(t, ms, nil)
	d := notify.New(notify.Config{Senders: []notify.Sender{s}, QueueSize: 2})
	start := time.Now()
	for range 5 { // one hangs in DATA, two queue, two are dropped
		d.Enqueue(aliceNotice(notify.SignInNewBrowser))
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Enqueue took %v with a hanging SMTP server", took)
	}
	closeWithin(t, d) // while the SMTP server hangs
}

func TestNewSMTPChecksConfig(t *testing.T) {
	tests := []struct {
		cfg     notify.SMTPConfig
		want    notify.Security // when valid
		wantErr string
	}{
		{cfg: notify.SMTPConfig{Address: "smtp.example.com:587"}, want: notify.StartTLS},
		{cfg: notify.SMTPConfig{Address: "smtp.example.com:465"}, want: notify.ImplicitTLS},
		{cfg: notify.SMTPConfig{Address: "smtp.example.com:465", Security: notify.StartTLS}, want: notify.StartTLS},
		{cfg: notify.SMTPConfig{Address: "localhost:25", Security: notify.Insecure}, want: notify.Insecure},
		{cfg: notify.SMTPConfig{Address: "127.0.0.1:25", Security: notify.Insecure}, want: notify.Insecure},
		{cfg: notify.SMTPConfig{Address: "[::1]:25", Security: notify.Insecure}, want: notify.Insecure},
		{cfg: notify.SMTPConfig{Address: "smtp.example.com:25", Security: notify.Insecure}, wantErr: "only for localhost"},
		{cfg: notify.SMTPConfig{Address: "10.0.0.1:25", Security: notify.Insecure}, wantErr: "only for localhost"},
		{cfg: notify.SMTPConfig{Address: "localhost.example.com:25", Security: notify.Insecure}, wantErr: "only for localhost"},
		{cfg: notify.SMTPConfig{Address: "smtp.example.com:25", Security: "ssl"}, wantErr: "unknown smtp security"},
		{cfg: notify.SMTPConfig{Address: "smtp.example.com"}, wantErr: "smtp address"},
		{cfg: notify.SMTPConfig{Address: ":587"}, wantErr: "no host"},
		{cfg: notify.SMTPConfig{Address: "smtp.example.com:0"}, wantErr: "invalid port"},
		{cfg: notify.SMTPConfig{Address: "smtp.example.com:587", Username: "u"}, wantErr: "go together"},
		{cfg: notify.SMTPConfig{Address: "smtp.example.com:587", From: "admin@example.com\r\nBcc: x@example.net"}, wantErr: "control character"},
		{cfg: notify.SMTPConfig{Address: "smtp.example.com:587", From: "not an address"}, wantErr: "from address"},
		{cfg: notify.SMTPConfig{Address: "smtp.example.com:587", Username: "u\r\n", Password: "p"}, wantErr: "control character"},
	}
	for _, tt := range tests {
		if tt.cfg.From == "" {
			tt.cfg.From = "admin@example.com"
		}
		s, err := notify.NewSMTP(tt.cfg)
		if !checkConfigErr(t, fmt.Sprintf("NewSMTP(%+v)", tt.cfg), err, tt.wantErr) {
			continue
		}
		if got := s.Security(); got != tt.want {
			t.Errorf("NewSMTP(%+v) security %q, want %q", tt.cfg, got, tt.want)
		}
	}
}

// TestSMTPErrorHidesTheAddress: a mail server that names the recipient in
// its refusal (as Postfix does) puts no address in the error, which is
// logged; the refusal stays permanent.
func TestSMTPErrorHidesTheAddress(t *testing.T) {
	rejected := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<Alice@Example.com>: Recipient address rejected: User unknown"}
	ms := mailtest.Start(t, mailtest.OfferSTARTTLS, func(ms *mailtest.Server) { ms.RcptErrs = []error{rejected} })
	err := newSMTP(t, ms, nil).Send(context.Background(), aliceNotice(notify.AccountLocked))
	if !notify.IsPermanent(err) {
		t.Fatalf("Send to a refused address: %v, want a permanent error", err)
	}
	if strings.Contains(strings.ToLower(err.Error()), "alice@example.com") {
		t.Errorf("error %q contains the address", err)
	}
}
