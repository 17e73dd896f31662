package notify_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/caddy-two-factor/caddy-two-factor/notify"
)

// testCert is a throwaway self-signed certificate for 127.0.0.1 and
// localhost, and a pool that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "test smtp"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

type tlsMode int

const (
	plainOnly tlsMode = iota // no STARTTLS offered
	offerSTARTTLS
	implicitTLS
)

// mailServer is a real SMTP server on loopback that records what it gets.
type mailServer struct {
	addr  string
	roots *x509.CertPool

	user, password string        // required for MAIL when set
	rcptErrs       []error       // answers to the first RCPTs
	dataBlock      chan struct{} // DATA waits on it when set

	mu       sync.Mutex
	messages []received
	mails    int // MAIL commands seen
}

type received struct {
	from, to string
	data     []byte
	tls      bool
	authed   string
}

func startMailServer(t *testing.T, mode tlsMode, configure func(*mailServer)) *mailServer {
	t.Helper()
	ms := &mailServer{}
	if configure != nil {
		configure(ms)
	}
	cert, pool := testCert(t)
	ms.roots = pool
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &mailSession{ms: ms, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = waitLimit
	srv.WriteTimeout = waitLimit
	srv.ErrorLog = discardLogger{}
	switch mode {
	case offerSTARTTLS:
		srv.TLSConfig = tlsConfig
	case implicitTLS:
		ln = tls.NewListener(ln, tlsConfig)
	}
	ms.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ms
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

func (ms *mailServer) received() []received {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]received(nil), ms.messages...)
}

type mailSession struct {
	ms     *mailServer
	conn   *smtp.Conn
	authed string
	cur    received
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		if user != s.ms.user || password != s.ms.password {
			return smtp.ErrAuthFailed
		}
		s.authed = user
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	s.ms.mu.Lock()
	s.ms.mails++
	s.ms.mu.Unlock()
	if s.ms.user != "" && s.authed == "" {
		return smtp.ErrAuthRequired
	}
	s.cur = received{from: from, authed: s.authed}
	_, s.cur.tls = s.conn.TLSConnectionState()
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.ms.mu.Lock()
	var err error
	if len(s.ms.rcptErrs) > 0 {
		err, s.ms.rcptErrs = s.ms.rcptErrs[0], s.ms.rcptErrs[1:]
	}
	s.ms.mu.Unlock()
	s.cur.to = to
	return err
}

func (s *mailSession) Data(r io.Reader) error {
	if s.ms.dataBlock != nil {
		<-s.ms.dataBlock
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = data
	s.ms.mu.Lock()
	s.ms.messages = append(s.ms.messages, s.cur)
	s.ms.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        {}
func (s *mailSession) Logout() error { return nil }

func newSMTP(t *testing.T, ms *mailServer, configure func(*notify.SMTPConfig)) *notify.SMTP {
	t.Helper()
	cfg := notify.SMTPConfig{
		Address: ms.addr,
		From:    "Example Admin <admin@example.com>",
		RootCAs: ms.roots,
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

// readMail parses a received message and decodes its subject and body.
func readMail(t *testing.T, data []byte) (*mail.Message, string, string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("received message does not parse: %v\n%s", err, data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("subject: %v", err)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	return m, subject, strings.ReplaceAll(string(body), "\r\n", "\n")
}

func TestSMTPSendsOverSTARTTLSWithAuth(t *testing.T) {
	ms := startMailServer(t, offerSTARTTLS, func(ms *mailServer) { ms.user, ms.password = "mailer", "s3cret-pw" })
	s := newSMTP(t, ms, func(c *notify.SMTPConfig) { c.Username, c.Password = "mailer", "s3cret-pw" })
	n := aliceNotice(notify.RecoveryCodeUsed)
	n.User = "älice"
	n.RecoveryCodesLeft = intp(3)
	if err := s.Send(context.Background(), n); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := ms.received()
	if len(got) != 1 {
		t.Fatalf("server received %d messages, want 1", len(got))
	}
	r := got[0]
	if !r.tls || r.authed != "mailer" || r.from != "admin@example.com" || r.to != "alice@example.com" {
		t.Errorf("envelope: tls=%v authed=%q from=%q to=%q", r.tls, r.authed, r.from, r.to)
	}
	m, subject, body := readMail(t, r.data)
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
	if bytes.Contains(r.data, []byte("s3cret-pw")) {
		t.Error("the message contains the SMTP password")
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	ms := startMailServer(t, implicitTLS, nil)
	s := newSMTP(t, ms, func(c *notify.SMTPConfig) { c.Security = notify.ImplicitTLS })
	if err := s.Send(context.Background(), aliceNotice(notify.AccountLocked)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := ms.received(); len(got) != 1 || !got[0].tls {
		t.Fatalf("received %+v, want one message over TLS", got)
	}
}

func TestSMTPInsecureLoopback(t *testing.T) {
	ms := startMailServer(t, plainOnly, nil)
	s := newSMTP(t, ms, func(c *notify.SMTPConfig) { c.Security = notify.Insecure })
	if err := s.Send(context.Background(), aliceNotice(notify.OperatorRevoke)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := ms.received(); len(got) != 1 || got[0].tls {
		t.Fatalf("received %+v, want one plain message", got)
	}
}

func TestSMTPRefusesServerWithoutSTARTTLS(t *testing.T) {
	ms := startMailServer(t, plainOnly, nil)
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

	ms.mu.Lock()
	mails := ms.mails
	ms.mu.Unlock()
	if mails != 0 || len(ms.received()) != 0 {
		t.Errorf("client went on without TLS: %d MAIL commands, %d messages", mails, len(ms.received()))
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
	ms := startMailServer(t, offerSTARTTLS, func(ms *mailServer) { ms.user, ms.password = "mailer", "right" })
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
	ms := startMailServer(t, offerSTARTTLS, nil)
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
				m, _, body := readMail(t, ms.received()[0].data)
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
	for _, r := range ms.received() {
		if bytes.Contains(r.data, []byte("\r\nBcc:")) || strings.Contains(r.to, "evil") {
			t.Errorf("injected header or recipient reached the server: %q", r.data)
		}
	}
}

func TestSMTPRetriesAfterTemporaryFailure(t *testing.T) {
	temporary := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	ms := startMailServer(t, offerSTARTTLS, func(ms *mailServer) { ms.rcptErrs = []error{temporary} })
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
	if len(ms.received()) != 0 {
		t.Fatal("message accepted despite the 451")
	}
	clock.Advance(notify.DefaultBackoff)
	if err := s.next(t); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := ms.received(); len(got) != 1 {
		t.Fatalf("received %d messages after the retry, want 1", len(got))
	}
	if logs.FilterMessage("sending notice failed; will retry").Len() != 1 {
		t.Error("the 451 was not logged as a retry")
	}
}

func TestSMTPSlowServerDoesNotBlock(t *testing.T) {
	ms := startMailServer(t, offerSTARTTLS, func(ms *mailServer) { ms.dataBlock = make(chan struct{}) })
	defer close(ms.dataBlock)
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
