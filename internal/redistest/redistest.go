// Package redistest starts a real redis-server for tests: on a free
// loopback port, with a password, saving nothing, in a temporary
// directory, and stopped when the test ends.
//
// Where redis-server is not installed the test is skipped, naming the
// Debian package, unless the environment variable CI is "true": CI
// installs it, so there its absence fails the test.
package redistest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Server is a running redis-server.
type Server struct {
	// Addr is its address, 127.0.0.1:port.
	Addr string
	// Password is what AUTH wants (the user is "default").
	Password string
}

// startTimeout is how long the server has to start answering.
const startTimeout = 10 * time.Second

// Start starts a redis-server for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		const msg = "redis-server is not installed (Debian package redis-server: apt-get install redis-server)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("finding a free port for redis-server: %v", err)
	}
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Password: hex.EncodeToString(raw)}
	dir := t.TempDir()
	logFile := filepath.Join(dir, "redis.log")
	cmd := exec.Command(bin,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--requirepass", s.Password,
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--logfile", logFile,
		"--daemonize", "no",
	)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		err := s.ping(ctx)
		if err == nil {
			return s
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(logFile)
			t.Fatalf("redis-server exited (%v):\n%s", werr, log)
		case <-ctx.Done():
			log, _ := os.ReadFile(logFile)
			t.Fatalf("redis-server did not answer within %s (%v):\n%s", startTimeout, err, log)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ping authenticates and pings once.
func (s *Server) ping(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if _, err := fmt.Fprintf(conn, "AUTH %s\r\nPING\r\n", s.Password); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	for _, want := range []string{"+OK\r\n", "+PONG\r\n"} {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if line != want {
			return fmt.Errorf("redis-server answered %q, want %q", line, want)
		}
	}
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
