package redistest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"
)

func TestStart(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.probe(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	wrong := &Server{Addr: s.Addr, Password: "wrong"}
	if err := wrong.probe(ctx); err == nil {
		t.Error("the server took a wrong password")
	}
}

// TestStartTLS: the server answers over TLS to a client that trusts its
// authority and checks ServerName, and to nothing else.
func TestStartTLS(t *testing.T) {
	s := StartTLS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.probe(ctx); err != nil {
		t.Fatalf("ping over TLS: %v", err)
	}
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", s.CAFile)
	}
	for name, c := range map[string]*tls.Config{
		"plain TCP":                 nil,
		"unknown CA":                {ServerName: ServerName, MinVersion: tls.VersionTLS12},
		"the address, not the name": {RootCAs: s.TLS.RootCAs, MinVersion: tls.VersionTLS12},
	} {
		wrong := &Server{Addr: s.Addr, Password: s.Password, TLS: c}
		if err := wrong.probe(ctx); err == nil {
			t.Errorf("%s: the server answered", name)
		}
	}
}

func TestStartClusterNode(t *testing.T) {
	s := StartClusterNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := exchange(ctx, s.Addr, nil, "AUTH "+s.Password+"\r\nINFO cluster\r\n", "+OK\r\n$30\r\n# Cluster\r\ncluster_enabled:1\r\n"); err != nil {
		t.Fatal(err)
	}
}

func TestStartSentinel(t *testing.T) {
	m := Start(t)
	s := StartSentinel(t, m, "mymaster")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := exchange(ctx, s.Addr, nil, "PING\r\n", "+PONG\r\n"); err != nil {
		t.Fatal(err)
	}
}

func TestStartSkipsWithoutRedisServer(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CI", "")
	skipped := false
	t.Run("start", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Start(t)
	})
	if !skipped {
		t.Error("Start did not skip without redis-server")
	}
}
