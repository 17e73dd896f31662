// Package mailtest runs a real SMTP server (emersion/go-smtp) on loopback
// for tests, and records what it receives: the notify package's tests of
// its SMTP transport and the module's integration tests share it.
package mailtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mode is how the server offers TLS.
type Mode int

const (
	// PlainOnly offers no STARTTLS.
	PlainOnly Mode = iota
	// OfferSTARTTLS offers STARTTLS with a certificate Server.Roots trusts.
	OfferSTARTTLS
	// ImplicitTLS speaks TLS from the first byte ("smtps").
	ImplicitTLS
)

// Timeout bounds the server's reads and writes, and Wait.
const Timeout = 10 * time.Second

// Server is a real SMTP server on loopback that records what it gets.
// Set its exported fields in Start's configure function.
type Server struct {
	// Addr is host:port; Roots trusts its certificate.
	Addr  string
	Roots *x509.CertPool

	// User and Password, when set, are required (AUTH PLAIN) before MAIL.
	User, Password string
	// RcptErrs are the answers to the first RCPT commands.
	RcptErrs []error
	// DataBlock, when set, holds every DATA until it is closed.
	DataBlock chan struct{}

	srv      *smtp.Server
	mu       sync.Mutex
	messages []Message
	mails    int
	changed  chan struct{}
}

// Message is one message received.
type Message struct {
	From, To string
	Data     []byte
	// TLS says whether it came over TLS; Authed is the AUTH user, if any.
	TLS    bool
	Authed string
}

// Start starts a server; configure, if not nil, sets its fields first.
// The test's cleanup stops it.
func Start(t testing.TB, mode Mode, configure func(*Server)) *Server {
	t.Helper()
	ms := &Server{changed: make(chan struct{})}
	if configure != nil {
		configure(ms)
	}
	cert, pool := testCert(t)
	ms.Roots = pool
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{ms: ms, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = Timeout
	srv.WriteTimeout = Timeout
	srv.ErrorLog = discardLogger{}
	switch mode {
	case OfferSTARTTLS:
		srv.TLSConfig = tlsConfig
	case ImplicitTLS:
		ln = tls.NewListener(ln, tlsConfig)
	}
	ms.Addr = ln.Addr().String()
	ms.srv = srv
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ms
}

// Received returns the messages received so far.
func (ms *Server) Received() []Message {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]Message(nil), ms.messages...)
}

// Mails counts the MAIL commands seen.
func (ms *Server) Mails() int {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.mails
}

// Wait waits until n messages have arrived (at most Timeout) and returns
// them all.
func (ms *Server) Wait(t testing.TB, n int) []Message {
	t.Helper()
	deadline := time.After(Timeout)
	for {
		ms.mu.Lock()
		got, changed := len(ms.messages), ms.changed
		ms.mu.Unlock()
		if got >= n {
			return ms.Received()
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%d messages arrived within %s, want %d", got, Timeout, n)
		}
	}
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

type session struct {
	ms     *Server
	conn   *smtp.Conn
	authed string
	cur    Message
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		if user != s.ms.User || password != s.ms.Password {
			return smtp.ErrAuthFailed
		}
		s.authed = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.ms.mu.Lock()
	s.ms.mails++
	s.ms.mu.Unlock()
	if s.ms.User != "" && s.authed == "" {
		return smtp.ErrAuthRequired
	}
	s.cur = Message{From: from, Authed: s.authed}
	_, s.cur.TLS = s.conn.TLSConnectionState()
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.ms.mu.Lock()
	var err error
	if len(s.ms.RcptErrs) > 0 {
		err, s.ms.RcptErrs = s.ms.RcptErrs[0], s.ms.RcptErrs[1:]
	}
	s.ms.mu.Unlock()
	s.cur.To = to
	return err
}

func (s *session) Data(r io.Reader) error {
	if s.ms.DataBlock != nil {
		<-s.ms.DataBlock
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = data
	s.ms.mu.Lock()
	s.ms.messages = append(s.ms.messages, s.cur)
	close(s.ms.changed)
	s.ms.changed = make(chan struct{})
	s.ms.mu.Unlock()
	return nil
}

func (s *session) Reset()        {}
func (s *session) Logout() error { return nil }

// Read parses a received message and decodes its subject and body (lines
// end in \n).
func Read(t testing.TB, data []byte) (*mail.Message, string, string) {
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

// testCert is a throwaway self-signed certificate for 127.0.0.1 and
// localhost, and a pool that trusts it.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
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
