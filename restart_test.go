package twofactor

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKilledServerLosesNothing runs the real binary (cmd/caddy) as its own
// process, signs in, kills it with SIGKILL and starts it again: the session
// and the enrollment must both survive, as bbolt commits are durable.
func TestKilledServerLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/caddy; skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("building cmd/caddy: %v", err)
	}
	port := freePort()
	caddyfile := filepath.Join(dir, "Caddyfile")
	config := fmt.Sprintf(`{
	admin off
	persist_config off
	storage file_system %s
}
http://localhost:%d {
	two_factor {
		db %s
		user judy %s
	}
	respond "inside"
}
`, filepath.Join(dir, "storage"), port, filepath.Join(dir, "2fa.db"), testHash())
	if err := os.WriteFile(caddyfile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	start := func() *exec.Cmd {
		t.Helper()
		cmd := exec.Command(bin, "run", "--config", caddyfile, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		// Caddy logs "serving initial configuration" once it listens.
		ready := make(chan struct{})
		go func() {
			scanner := bufio.NewScanner(stderr)
			for scanner.Scan() {
				if strings.Contains(scanner.Text(), "serving initial configuration") {
					close(ready)
					break
				}
			}
			for scanner.Scan() { // keep the pipe drained
			}
		}()
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
			t.Fatal("caddy did not start")
		}
		return cmd
	}

	first := start()
	b := newBrowser(t)
	b.base = fmt.Sprintf("http://localhost:%d", port)
	secret, _ := b.enroll("judy")
	if r := b.get("/"); r.status != http.StatusOK || r.body != "inside" {
		t.Fatalf("before the kill: %d %q", r.status, r.body)
	}

	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	start()

	if r := b.get("/"); r.status != http.StatusOK {
		t.Fatalf("session lost by SIGKILL: %d", r.status)
	}
	other := newBrowser(t)
	other.base = b.base
	if r := other.signIn("judy", secret); r.status != http.StatusSeeOther {
		t.Fatalf("enrollment lost by SIGKILL: %d", r.status)
	}
}
