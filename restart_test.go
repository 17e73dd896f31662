package twofactor

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// TestKilledServerLosesNothing runs the real binary (cmd/caddy) as its own
// process, signs in, kills it with SIGKILL and starts it again: the session
// and the enrollment must both survive, as bbolt commits are durable.
func TestKilledServerLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/caddy; skipped with -short")
	}
	dir := t.TempDir()
	bin := buildCaddy(t)
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

	start := func() *exec.Cmd { return startCaddyProcess(t, bin, dir, caddyfile) }

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
