package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Security is how an SMTP connection is protected.
type Security string

const (
	// StartTLS connects in plain text and upgrades with STARTTLS before
	// anything else is said; a server that does not offer it gets nothing.
	// The default, except on port 465.
	StartTLS Security = "starttls"
	// ImplicitTLS ("smtps") speaks TLS from the first byte; the default on
	// port 465.
	ImplicitTLS Security = "tls"
	// Insecure sends in plain text; allowed only to a loopback host (a
	// local relay).
	Insecure Security = "insecure"
)

// DefaultSMTPTimeout bounds one delivery attempt: connect, talk, send.
const DefaultSMTPTimeout = 30 * time.Second

// SMTPConfig configures the e-mail transport.
type SMTPConfig struct {
	// Address is the server's host:port.
	Address string
	// Security defaults to ImplicitTLS on port 465, StartTLS otherwise.
	Security Security
	// Username and Password, when set, are sent with AUTH PLAIN (only
	// over TLS, or to a loopback host).
	Username string
	Password string
	// From is the sender, like "Example Admin <admin@example.com>".
	From string
	// RootCAs verifies the server's certificate; nil means the system's.
	RootCAs *x509.CertPool
	// Timeout bounds one attempt. Default: DefaultSMTPTimeout.
	Timeout time.Duration
	// HelloName is sent with EHLO. Default: "localhost".
	HelloName string
	// Messages renders the texts. Default: DefaultMessages().
	Messages *Messages
	// Now dates the messages. Default: time.Now.
	Now func() time.Time
}

// SMTP sends notices by e-mail to Notice.To.
type SMTP struct {
	cfg  SMTPConfig
	host string
	from *mail.Address
}

// ErrNoSTARTTLS is returned when a server does not offer STARTTLS and the
// transport requires it.
var ErrNoSTARTTLS = errors.New("smtp server does not offer STARTTLS; refusing to send in plain text")

// NewSMTP checks cfg and applies its defaults.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	host, port, err := net.SplitHostPort(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("smtp address %q: %w", cfg.Address, err)
	}
	if host == "" {
		return nil, fmt.Errorf("smtp address %q has no host", cfg.Address)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return nil, fmt.Errorf("smtp address %q has an invalid port", cfg.Address)
	}
	if cfg.Security == "" {
		cfg.Security = StartTLS
		if port == "465" {
			cfg.Security = ImplicitTLS
		}
	}
	switch cfg.Security {
	case StartTLS, ImplicitTLS:
	case Insecure:
		if !isLoopback(host) {
			return nil, fmt.Errorf("smtp server %s is not on this host: insecure (plain text) is allowed only for localhost", host)
		}
	default:
		return nil, fmt.Errorf("unknown smtp security %q (want starttls, tls or insecure)", cfg.Security)
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, errors.New("smtp username and password go together")
	}
	if strings.ContainsFunc(cfg.Username+cfg.Password+cfg.HelloName, isControl) {
		return nil, errors.New("smtp username, password or hello name contains a control character")
	}
	if strings.ContainsFunc(cfg.From, isControl) {
		return nil, errors.New("smtp from address contains a control character")
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("smtp from address %q: %w", cfg.From, err)
	}
	if _, err := ParseAddress(from.Address); err != nil {
		return nil, fmt.Errorf("smtp from address %q: %w", cfg.From, err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultSMTPTimeout
	}
	if cfg.HelloName == "" {
		cfg.HelloName = "localhost"
	}
	if cfg.Messages == nil {
		cfg.Messages = DefaultMessages()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &SMTP{cfg: cfg, host: host, from: from}, nil
}

// isLoopback reports whether host names this machine without asking DNS.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Name implements Sender.
func (s *SMTP) Name() string { return "smtp " + s.cfg.Address }

// Accepts implements Sender: only notices with an address.
func (s *SMTP) Accepts(n Notice) bool { return n.To != "" }

// Send implements Sender.
func (s *SMTP) Send(ctx context.Context, n Notice) error {
	to, err := ParseAddress(n.To)
	if err != nil {
		return Permanent(err)
	}
	msg, err := s.compose(n, to)
	if err != nil {
		return Permanent(err)
	}
	return hideAddress(s.deliver(ctx, to, msg), to)
}

// addressHidden is an error whose text has the recipient's address
// masked: mail servers name it in their refusals ("550 5.1.1
// <alice@example.com>: Recipient address rejected"), and errors are
// logged. It still wraps the error, so IsPermanent sees through it.
type addressHidden struct {
	err  error
	text string
}

func (e *addressHidden) Error() string { return e.text }
func (e *addressHidden) Unwrap() error { return e.err }

// hideAddress masks the address to, in any case, in err's text (see
// MaskAddress).
func hideAddress(err error, to string) error {
	if err == nil {
		return err
	}
	addr := regexp.MustCompile("(?i)" + regexp.QuoteMeta(to))
	if !addr.MatchString(err.Error()) {
		return err
	}
	return &addressHidden{err: err, text: addr.ReplaceAllLiteralString(err.Error(), MaskAddress(to))}
}

// compose builds the message. Every header value is checked for CR and LF,
// so nothing a user controls (name, browser, address) can add a header.
func (s *SMTP) compose(n Notice, to string) ([]byte, error) {
	subject, body, err := s.cfg.Messages.For(n.Language).Render(n)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(subject, "\r\n") {
		return nil, errors.New("mail subject would contain a line break")
	}
	domain := s.from.Address[strings.LastIndexByte(s.from.Address, '@')+1:]
	headers := [][2]string{
		{"From", s.from.String()},
		{"To", (&mail.Address{Address: to}).String()},
		{"Subject", mime.QEncoding.Encode("utf-8", subject)},
		{"Date", s.cfg.Now().Format(time.RFC1123Z)},
		{"Message-ID", "<" + NewID() + "@" + domain + ">"},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=UTF-8"},
		{"Content-Transfer-Encoding", "quoted-printable"},
		{"Auto-Submitted", "auto-generated"},
	}
	var b bytes.Buffer
	for _, h := range headers {
		if strings.ContainsAny(h[1], "\r\n") {
			return nil, fmt.Errorf("mail header %s would contain a line break", h[0])
		}
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n"))); err != nil {
		return nil, fmt.Errorf("encoding mail body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("encoding mail body: %w", err)
	}
	return b.Bytes(), nil
}

// deliver runs one SMTP conversation within the timeout; cancelling ctx
// closes the connection.
func (s *SMTP) deliver(ctx context.Context, to string, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("connecting to smtp server %s: %w", s.cfg.Address, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	tlsConfig := &tls.Config{ServerName: s.host, RootCAs: s.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	if s.cfg.Security == ImplicitTLS {
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("tls with smtp server %s: %w", s.cfg.Address, err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return s.smtpErr("greeting", err)
	}
	defer c.Close()
	if err := c.Hello(s.cfg.HelloName); err != nil {
		return s.smtpErr("EHLO", err)
	}
	if s.cfg.Security == StartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return Permanent(fmt.Errorf("%s: %w", s.cfg.Address, ErrNoSTARTTLS))
		}
		if err := c.StartTLS(tlsConfig); err != nil {
			return s.smtpErr("STARTTLS", err)
		}
	}
	if s.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return Permanent(fmt.Errorf("smtp server %s does not offer AUTH", s.cfg.Address))
		}
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.host)); err != nil {
			return s.smtpErr("AUTH", err)
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return s.smtpErr("MAIL FROM", err)
	}
	if err := c.Rcpt(to); err != nil {
		return s.smtpErr("RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return s.smtpErr("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return s.smtpErr("DATA", err)
	}
	if err := w.Close(); err != nil {
		return s.smtpErr("DATA", err)
	}
	_ = c.Quit() // the message was accepted; a failed QUIT changes nothing
	return nil
}

// smtpErr names the step that failed; a 5xx reply is permanent, a 4xx
// reply or a network error is worth a retry.
func (s *SMTP) smtpErr(step string, err error) error {
	err = fmt.Errorf("smtp server %s at %s: %w", s.cfg.Address, step, err)
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return Permanent(err)
	}
	return err
}

// Interface guards
var _ Sender = (*SMTP)(nil)

// Security returns the connection security in effect, defaults applied.
func (s *SMTP) Security() Security { return s.cfg.Security }
