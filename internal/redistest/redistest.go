// Package redistest starts real Redis processes for tests: a
// redis-server on a free loopback port, with a password, saving nothing,
// in a temporary directory, and stopped when the test ends (StartWith
// for other options, such as an append-only file); the same
// listening with TLS only (StartTLS), or as a Redis Cluster node holding
// every slot (StartClusterNode); and a Sentinel watching a server
// (StartSentinel).
//
// Where redis-server is not installed the test is skipped, naming the
// Debian package, unless the environment variable CI is "true": CI
// installs it, so there its absence fails the test.
package redistest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is a running redis-server.
type Server struct {
	// Addr is its address, 127.0.0.1:port.
	Addr string
	// Password is what AUTH wants (the user is "default").
	Password string
	// TLS, for a server started by StartTLS, is a client configuration
	// that trusts the server's certificate (ServerName is ServerName);
	// nil for a plain one.
	TLS *tls.Config
	// CAFile, for a server started by StartTLS, is the PEM file of the
	// certificate authority that signed the server's certificate.
	CAFile string
	// Dir is the server's working directory, where it writes its log and
	// whatever it persists (dump.rdb, appendonlydir/).
	Dir string
}

// ServerName is the only name in a StartTLS server's certificate: the
// certificate does not name 127.0.0.1, so a client that checks the
// address it dialled refuses it.
const ServerName = "localhost"

// Sentinel is a running Redis Sentinel.
type Sentinel struct {
	// Addr is its address, 127.0.0.1:port.
	Addr string
	// Master is the name of the master set it watches.
	Master string
}

// startTimeout is how long a process has to start answering.
const startTimeout = 10 * time.Second

// Start starts a redis-server for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t)
}

// StartWith is Start with more options for redis-server, given as on its
// command line ("--appendonly", "yes"); they override the defaults above.
func StartWith(t testing.TB, options ...string) *Server {
	t.Helper()
	bin := binary(t)
	s, dir, port := newServer(t)
	run(t, dir, s.probe, bin, append(s.args(dir, port), options...)...)
	return s
}

// StartTLS starts a redis-server for t that listens with TLS only, with a
// certificate for ServerName from a certificate authority made for the
// test (s.CAFile), and stops it when t ends.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	bin := binary(t)
	s, dir, port := newServer(t)
	ca, err := writeCertificates(dir, ServerName)
	if err != nil {
		t.Fatalf("making certificates for redis-server: %v", err)
	}
	s.CAFile = filepath.Join(dir, "ca.pem")
	s.TLS = &tls.Config{RootCAs: ca, ServerName: ServerName, MinVersion: tls.VersionTLS12}
	args := append(s.args(dir, 0),
		"--tls-port", strconv.Itoa(port),
		"--tls-cert-file", filepath.Join(dir, "server.pem"),
		"--tls-key-file", filepath.Join(dir, "server-key.pem"),
		"--tls-ca-cert-file", s.CAFile,
		"--tls-auth-clients", "no",
	)
	run(t, dir, s.probe, bin, args...)
	return s
}

// StartClusterNode starts a redis-server for t with cluster mode on, as
// a cluster of one node that holds every hash slot, and stops it when t
// ends.
func StartClusterNode(t testing.TB) *Server {
	t.Helper()
	bin := binary(t)
	s, dir, port := newServer(t)
	args := append(s.args(dir, port),
		"--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
	)
	run(t, dir, s.probe, bin, args...)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	auth := "AUTH " + s.Password + "\r\n"
	if err := exchange(ctx, s.Addr, nil, auth+"CLUSTER ADDSLOTSRANGE 0 16383\r\n", "+OK\r\n+OK\r\n"); err != nil {
		t.Fatalf("giving the cluster node every slot: %v", err)
	}
	for {
		got, err := reply(ctx, s.Addr, nil, auth+"CLUSTER INFO\r\n", 3)
		if err == nil && strings.HasSuffix(got, "cluster_state:ok\r\n") {
			return s
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the cluster node did not come up within %s: %q, %v", startTimeout, got, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// StartSentinel starts a Sentinel for t that watches master as the set
// named name, and stops it when t ends. It has no password of its own.
func StartSentinel(t testing.TB, master *Server, name string) *Sentinel {
	t.Helper()
	bin := binary(t)
	port, err := freePort()
	if err != nil {
		t.Fatalf("finding a free port for the sentinel: %v", err)
	}
	host, mport, err := net.SplitHostPort(master.Addr)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Sentinel rewrites its configuration file, so it is one of its own.
	conf := filepath.Join(dir, "sentinel.conf")
	lines := []string{
		"bind 127.0.0.1",
		"port " + strconv.Itoa(port),
		"dir " + dir,
		"logfile " + filepath.Join(dir, "redis.log"),
		fmt.Sprintf("sentinel monitor %s %s %s 1", name, host, mport),
		fmt.Sprintf("sentinel auth-pass %s %s", name, master.Password),
	}
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Sentinel{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Master: name}
	probe := func(ctx context.Context) error {
		want := fmt.Sprintf("*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(host), host, len(mport), mport)
		return exchange(ctx, s.Addr, nil, "SENTINEL GET-MASTER-ADDR-BY-NAME "+name+"\r\n", want)
	}
	run(t, dir, probe, bin, conf, "--sentinel")
	return s
}

// binary returns the path of redis-server, or skips (fails in CI) t.
func binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		const msg = "redis-server is not installed (Debian package redis-server: apt-get install redis-server)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// newServer returns a Server on a free port with a new password, and a
// directory for it.
func newServer(t testing.TB) (s *Server, dir string, port int) {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("finding a free port for redis-server: %v", err)
	}
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	dir = t.TempDir()
	s = &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Password: hex.EncodeToString(raw), Dir: dir}
	return s, dir, port
}

// args are the options every server runs with, on plain port (0: none).
func (s *Server) args(dir string, port int) []string {
	return []string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--requirepass", s.Password,
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log"),
		"--daemonize", "no",
	}
}

// run starts bin with args, stops it when t ends, and waits until probe
// succeeds; it fails t with the log (dir/redis.log) if the process exits
// or does not answer in time.
func run(t testing.TB, dir string, probe func(context.Context) error, bin string, args ...string) {
	t.Helper()
	logFile := filepath.Join(dir, "redis.log")
	cmd := exec.Command(bin, args...)
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
		err := probe(ctx)
		if err == nil {
			return
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

// probe authenticates and pings once.
func (s *Server) probe(ctx context.Context) error {
	return exchange(ctx, s.Addr, s.TLS, "AUTH "+s.Password+"\r\nPING\r\n", "+OK\r\n+PONG\r\n")
}

// exchange sends req to addr (over TLS with config, if not nil) and
// fails unless the answer starts with want.
func exchange(ctx context.Context, addr string, config *tls.Config, req, want string) error {
	got, err := reply(ctx, addr, config, req, strings.Count(want, "\n"))
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("redis-server answered %q, want %q", got, want)
	}
	return nil
}

// reply sends req to addr (over TLS with config, if not nil) and returns
// the first lines of the answer.
func reply(ctx context.Context, addr string, config *tls.Config, req string, lines int) (string, error) {
	var conn net.Conn
	var err error
	if config != nil {
		d := tls.Dialer{Config: config}
		conn, err = d.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if _, err := fmt.Fprint(conn, req); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	var got strings.Builder
	for range lines {
		line, err := r.ReadString('\n')
		got.WriteString(line)
		if err != nil {
			return got.String(), err
		}
	}
	return got.String(), nil
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
