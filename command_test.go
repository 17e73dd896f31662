package twofactor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/caddy-two-factor/caddy-two-factor/signin"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// These tests run `caddy two-factor` in this process, through the cobra
// command Caddy registers, against the test Caddy's admin endpoint.

// cliRun is the outcome of one command.
type cliRun struct {
	failed         bool
	stdout, stderr string
}

// twoFactorCommand runs `caddy two-factor args...` with stdin as standard input.
func twoFactorCommand(t *testing.T, stdin string, args ...string) cliRun {
	t.Helper()
	def, ok := caddycmd.Commands()["two-factor"]
	if !ok {
		t.Fatal("the two-factor command is not registered")
	}
	cmd := &cobra.Command{Use: def.Name, Short: def.Short, SilenceUsage: true}
	def.CobraFunc(cmd)
	var stdout, stderr bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	err := cmd.Execute()
	return cliRun{failed: err != nil, stdout: stdout.String(), stderr: stderr.String()}
}

// cliFor runs commands against the test Caddy.
func cliFor(t *testing.T, extra ...string) func(stdin string, args ...string) cliRun {
	return func(stdin string, args ...string) cliRun {
		t.Helper()
		return twoFactorCommand(t, stdin, append(append(args, "--address", adminAddress()), extra...)...)
	}
}

func adminAddress() string { return fmt.Sprintf("localhost:%d", testPorts().admin) }

// mustSucceed fails the test unless run succeeded.
func (r cliRun) mustSucceed(t *testing.T) cliRun {
	t.Helper()
	if r.failed {
		t.Fatalf("command failed:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
	return r
}

// decode reads the JSON of a --json run into v.
func (r cliRun) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
}

// refusal returns the error code of a failed --json run.
func (r cliRun) refusal(t *testing.T) string {
	t.Helper()
	if !r.failed {
		t.Fatalf("command succeeded, want a failure:\n%s", r.stdout)
	}
	var e adminError
	r.decode(t, &e)
	if e.Message == "" {
		t.Errorf("refusal without a message: %s", r.stdout)
	}
	return e.Code
}

func usersOf(t *testing.T, run func(string, ...string) cliRun) map[string]userInfo {
	t.Helper()
	var res adminResult
	run("", "users", "--json").mustSucceed(t).decode(t, &res)
	users := make(map[string]userInfo, len(res.Users))
	for _, u := range res.Users {
		users[u.Name] = u
	}
	return users
}

// passwordFile writes password to a file for --password-file.
func passwordFile(t *testing.T, password string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(path, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCommandLifecycle is the operator's lifecycle of docs/operations.md:
// add, enroll, lose the phone, reset, enroll again, revoke, remove.
func TestCommandLifecycle(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*"})
	run := cliFor(t)

	out := run("", "add-user", "zoe", "--password-file", passwordFile(t, testPassword)).mustSucceed(t)
	if !strings.Contains(out.stdout, "Added zoe to "+site.db) {
		t.Errorf("add-user said %q", out.stdout)
	}
	zoe := usersOf(t, run)["zoe"]
	if zoe.DefinedIn != signin.DefinedInDatabase || zoe.Enrolled {
		t.Fatalf("after add-user: %+v", zoe)
	}

	b := newBrowser(t)
	oldSecret, _ := b.enroll("zoe")
	if r := b.get("/admin/"); r.status != http.StatusOK || !strings.Contains(r.body, "user=zoe") {
		t.Fatalf("zoe after enrolling: %d %q", r.status, r.body)
	}
	zoe = usersOf(t, run)["zoe"]
	if !zoe.Enrolled || zoe.RecoveryCodesLeft != 10 || zoe.Sessions != 1 {
		t.Fatalf("after enrolling: %+v", zoe)
	}

	// Zoe loses her phone: the operator resets her, which also signs her out.
	out = run("", "reset", "zoe").mustSucceed(t)
	if !strings.Contains(out.stdout, "1 session ended") {
		t.Errorf("reset said %q", out.stdout)
	}
	if r := b.get("/admin/"); r.status != http.StatusFound {
		t.Fatalf("zoe's session survived the reset: %d", r.status)
	}
	if zoe = usersOf(t, run)["zoe"]; zoe.Enrolled || zoe.Sessions != 0 {
		t.Fatalf("after reset: %+v", zoe)
	}
	phone := newBrowser(t)
	newSecret, _ := phone.enroll("zoe")
	if bytes.Equal(newSecret, oldSecret) {
		t.Fatal("re-enrollment reused the old secret")
	}

	out = run("", "revoke", "zoe").mustSucceed(t)
	if !strings.Contains(out.stdout, "1 session ended") {
		t.Errorf("revoke said %q", out.stdout)
	}
	if r := phone.get("/admin/"); r.status != http.StatusFound {
		t.Fatalf("zoe's session survived revoke: %d", r.status)
	}
	// She can sign in again with the new authenticator only.
	if r := phone.signIn("zoe", newSecret); r.status != http.StatusSeeOther {
		t.Fatalf("sign-in after revoke: %d", r.status)
	}

	out = run("", "remove-user", "zoe").mustSucceed(t)
	if !strings.Contains(out.stdout, "Removed zoe; 1 session ended") {
		t.Errorf("remove-user said %q", out.stdout)
	}
	if r := phone.get("/admin/"); r.status != http.StatusFound {
		t.Fatalf("zoe's session survived her removal: %d", r.status)
	}
	if r := newBrowser(t).login("zoe", testPassword, "/admin/"); r.status != http.StatusUnauthorized {
		t.Fatalf("removed user signed in: %d", r.status)
	}
	if _, ok := usersOf(t, run)["zoe"]; ok {
		t.Fatal("removed user still listed")
	}
}

func TestCommandUsersListsConfigAndDatabaseUsers(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*"})
	run := cliFor(t)
	newBrowser(t).enroll("alice")
	run("", "add-user", "zoe", "--password-file", passwordFile(t, testPassword)).mustSucceed(t)

	out := run("", "users").mustSucceed(t)
	lines := strings.Split(strings.TrimSpace(out.stdout), "\n")
	if lines[0] != "2FA database "+site.db || !strings.HasPrefix(lines[1], "USER") {
		t.Fatalf("users output:\n%s", out.stdout)
	}
	if want := len(testUsers) + 1; len(lines) != 2+want {
		t.Errorf("users listed %d lines, want %d users:\n%s", len(lines)-2, want, out.stdout)
	}
	fields := map[string][]string{}
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		fields[f[0]] = f
	}
	if f := fields["alice"]; f[1] != "config" || f[2] == "no" || f[len(f)-3] != "10" || f[len(f)-2] != "1" {
		t.Errorf("alice: %q", f)
	}
	if f := fields["zoe"]; f[1] != "database" || f[2] != "no" {
		t.Errorf("zoe: %q", f)
	}

	var res adminResult
	run("", "users", "--json").mustSucceed(t).decode(t, &res)
	if res.DB != site.db || res.Action != actionUsers || len(res.Users) != len(testUsers)+1 {
		t.Fatalf("users --json: %+v", res)
	}
}

func TestCommandJSON(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*"})
	run := cliFor(t)

	out := run("", "add-user", "zoe", "--json", "--password-file", passwordFile(t, testPassword)).mustSucceed(t)
	var res adminResult
	out.decode(t, &res)
	if res.DB != site.db || res.Action != actionAddUser || res.Name != "zoe" || res.User == nil ||
		res.User.DefinedIn != signin.DefinedInDatabase || res.SessionsEnded == nil || *res.SessionsEnded != 0 {
		t.Fatalf("add-user --json: %s", out.stdout)
	}
	if strings.Contains(out.stdout, "argon2") || strings.Contains(out.stdout, testPassword) {
		t.Fatalf("the output shows the password or its hash: %s", out.stdout)
	}

	for _, tc := range []struct {
		args []string
		code string
	}{
		{[]string{"reset", "nobody"}, codeUnknownUser},
		{[]string{"revoke", "nobody"}, codeUnknownUser},
		{[]string{"unlock", "nobody"}, codeUnknownUser},
		{[]string{"remove-user", "nobody"}, codeUnknownUser},
		{[]string{"remove-user", "alice"}, codeDefinedInConfig},
		{[]string{"add-user", "zoe", "--password-file", passwordFile(t, "x")}, codeUserExists},
		{[]string{"add-user", "alice", "--password-file", passwordFile(t, "x")}, codeDefinedInConfig},
		{[]string{"passwd", "alice", "--password-file", passwordFile(t, "x")}, codeDefinedInConfig},
		{[]string{"passwd", "nobody", "--password-file", passwordFile(t, "x")}, codeUnknownUser},
		{[]string{"users", "--db", "/nowhere/two_factor.db"}, codeNotOpen},
		{[]string{"add-user", "x", "--algorithm", "md5", "--password-file", passwordFile(t, "x")}, codeBadRequest},
	} {
		t.Run(strings.Join(tc.args[:2], " "), func(t *testing.T) {
			if got := run("", append(tc.args, "--json")...).refusal(t); got != tc.code {
				t.Errorf("code %q, want %q", got, tc.code)
			}
		})
	}
}

func TestCommandAgainstAServerThatIsNotRunning(t *testing.T) {
	nowhere := fmt.Sprintf("localhost:%d", freePort())
	for _, args := range [][]string{
		{"users"},
		{"reset", "alice"},
		{"add-user", "zoe", "--password-file", passwordFile(t, testPassword)},
	} {
		out := twoFactorCommand(t, "", append(args, "--address", nowhere, "--json")...)
		if code := out.refusal(t); code != codeNotRunning {
			t.Errorf("%s: code %q, want %q", args[0], code, codeNotRunning)
		}
		if !strings.Contains(out.stdout, "no Caddy is answering at "+nowhere) {
			t.Errorf("%s: message %s", args[0], out.stdout)
		}
	}
}

func TestCommandOnADatabaseHeldByAnotherProcess(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*"})
	// The test Caddy holds the file; a command aimed at another admin
	// endpoint finds nobody there and cannot open the file either.
	out := twoFactorCommand(t, "", "users", "--address", fmt.Sprintf("localhost:%d", freePort()), "--db", site.db, "--json")
	if code := out.refusal(t); code != codeLocked {
		t.Fatalf("code %q, want %q: %s", code, codeLocked, out.stdout)
	}
	if !strings.Contains(out.stdout, "held by another process") {
		t.Errorf("message: %s", out.stdout)
	}
}

func TestCommandChangesTheFileWhenCaddyIsStopped(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*"})
	stopSites(t)
	run := cliFor(t, "--db", site.db)

	out := run("", "add-user", "zoe", "--password-file", passwordFile(t, testPassword)).mustSucceed(t)
	if !strings.Contains(out.stderr, "Changing "+site.db+" directly") {
		t.Errorf("no word of changing the file directly: %q", out.stderr)
	}
	// Caddy is stopped, but the config that last had the file open left
	// its users' hash class there.
	if !strings.Contains(out.stderr, "Hashing with bcrypt cost 4: like the first user of the config that last opened this database") {
		t.Errorf("no word of the hash class: %q", out.stderr)
	}
	missing := filepath.Join(t.TempDir(), "none.db")
	if code := twoFactorCommand(t, "", "users", "--address", adminAddress(), "--db", missing, "--json").refusal(t); code != codeNotOpen {
		t.Errorf("a missing file: code %q", code)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("the command created %s", missing)
	}

	startSite(t, siteConfig{matcher: "/admin/*", db: site.db})
	if zoe := usersOf(t, cliFor(t))["zoe"]; zoe.DefinedIn != signin.DefinedInDatabase {
		t.Fatalf("zoe after restart: %+v", zoe)
	}
	if stored, fakes := storedHashClass(t, site.db, "zoe"); len(fakes) != 1 || stored != fakes[0] {
		t.Errorf("zoe's hash is %v, unknown names are checked against %v", stored, fakes)
	}
	newBrowser(t).enroll("zoe")
}

func TestCommandPasswd(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	run := cliFor(t)
	run("", "add-user", "zoe", "--password-file", passwordFile(t, "first password")).mustSucceed(t)
	b := newBrowser(t)
	if r := b.login("zoe", "first password", "/admin/"); r.status != http.StatusSeeOther {
		t.Fatalf("login with the first password: %d", r.status)
	}

	// From standard input, as a script would.
	out := run(testPassword+"\n", "passwd", "zoe", "--password-file", "-").mustSucceed(t)
	if !strings.Contains(out.stdout, "Changed the password of zoe") {
		t.Errorf("passwd said %q", out.stdout)
	}
	if r := newBrowser(t).login("zoe", "first password", "/admin/"); r.status != http.StatusUnauthorized {
		t.Fatalf("old password still works: %d", r.status)
	}
	newBrowser(t).enroll("zoe")
	// The half-done sign-in of the old password was ended.
	if r := b.get("/_2fa/setup"); r.status != http.StatusSeeOther || r.location() != "/_2fa/login" {
		t.Fatalf("pending session survived passwd: %d %q", r.status, r.location())
	}
}

func TestCommandNeverReadsThePasswordFromAPipeUnasked(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	run := cliFor(t)
	out := run(testPassword+"\n", "add-user", "zoe", "--json")
	if !out.failed || !strings.Contains(out.stdout, "no terminal to read the password from") {
		t.Fatalf("add-user read a password from a pipe: %+v", out)
	}
	if code := run("\n", "add-user", "zoe", "--password-file", "-", "--json").refusal(t); code != codeBadRequest {
		t.Errorf("empty password: code %q", code)
	}
	if _, ok := usersOf(t, run)["zoe"]; ok {
		t.Fatal("zoe was added")
	}
}

func TestCommandUnlock(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	run := cliFor(t)
	b := newBrowser(t)
	for range DefaultMaxAttempts {
		b.login("bob", "wrong", "/admin/")
	}
	if r := b.login("bob", testPassword, "/admin/"); r.status != http.StatusTooManyRequests || !strings.Contains(r.body, msgLocked) {
		t.Fatalf("bob is not locked: %d\n%s", r.status, r.body)
	}
	if bob := usersOf(t, run)["bob"]; bob.LockedUntil.IsZero() {
		t.Fatalf("users does not show the lock: %+v", bob)
	}
	out := run("", "unlock", "bob").mustSucceed(t)
	if out.stdout != "Unlocked bob.\n" {
		t.Errorf("unlock said %q", out.stdout)
	}
	if r := b.login("bob", testPassword, "/admin/"); r.status != http.StatusSeeOther {
		t.Fatalf("bob still locked after unlock: %d", r.status)
	}
}

func TestCommandChoosesTheDatabase(t *testing.T) {
	dir := t.TempDir()
	first, second := filepath.Join(dir, "first.db"), filepath.Join(dir, "second.db")
	loadCaddyfile(t, twoSites(first, second))
	run := cliFor(t)
	if code := run("", "users", "--json").refusal(t); code != codeChooseDatabase {
		t.Fatalf("code %q, want %q", code, codeChooseDatabase)
	}
	run("", "add-user", "zoe", "--db", second, "--password-file", passwordFile(t, testPassword)).mustSucceed(t)
	var res adminResult
	run("", "users", "--json", "--db", second).mustSucceed(t).decode(t, &res)
	if res.DB != second || len(res.Users) != 1 || res.Users[0].Name != "zoe" {
		t.Fatalf("second database: %+v", res)
	}
	run("", "users", "--json", "--db", first).mustSucceed(t).decode(t, &res)
	if res.DB != first || len(res.Users) != 1 || res.Users[0].Name != "alice" {
		t.Fatalf("first database: %+v", res)
	}
}

// twoSites is a config with two two_factor sites on two databases: alice
// is declared on the first, nobody on the second.
func twoSites(first, second string) string {
	p := testPorts().http
	return globalOptions() + fmt.Sprintf(`
http://localhost:%d {
	two_factor {
		db %s
		user alice %s
	}
	respond "first"
}
http://127.0.0.1:%d {
	two_factor {
		db %s
	}
	respond "second"
}
`, p, first, testHash(), p, second)
}

func TestCommandFindsTheAdminEndpointInTheConfig(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	config := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(config, []byte(globalOptions()), 0o600); err != nil {
		t.Fatal(err)
	}
	out := twoFactorCommand(t, "", "users", "--config", config, "--adapter", "caddyfile", "--json").mustSucceed(t)
	var res adminResult
	out.decode(t, &res)
	if len(res.Users) != len(testUsers) {
		t.Fatalf("users: %+v", res)
	}
}

func TestCommandAuditsWithoutSecrets(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*"})
	stopSites(t)
	core, logs := observer.New(zap.InfoLevel)
	c := &cli{
		action: actionAddUser, name: "zoe", address: fmt.Sprintf("localhost:%d", freePort()), db: site.db,
		passwordFile: passwordFile(t, testPassword),
		stdout:       new(bytes.Buffer), stderr: new(bytes.Buffer), logger: zap.New(core), now: time.Now,
	}
	if code, err := c.run(); code != 0 || err != nil {
		t.Fatalf("add-user: %d %v", code, err)
	}
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d log lines, want 1: %v", len(entries), entries)
	}
	fields := entries[0].ContextMap()
	if fields["event"] != "admin_add_user" || fields["user"] != "zoe" || fields["db"] != site.db || fields["source"] != "command_line" {
		t.Errorf("audit line: %v", fields)
	}
	if line := fmt.Sprint(fields); strings.Contains(line, "argon2") || strings.Contains(line, testPassword) {
		t.Errorf("audit line shows the password or its hash: %s", line)
	}
}

func TestAdminPathEscapesNames(t *testing.T) {
	for name, want := range map[string]string{
		"alice":  "/two_factor/users/alice/reset",
		"a/b":    "/two_factor/users/a%2Fb/reset",
		"..":     "/two_factor/users/%2E%2E/reset",
		"jo ann": "/two_factor/users/jo%20ann/reset",
	} {
		method, path := adminPath(adminRequest{Action: actionReset, Name: name})
		if method != http.MethodPost || path != want {
			t.Errorf("%q: %s %s, want POST %s", name, method, path, want)
		}
		u, _ := url.Parse("http://x" + path)
		req, err := parseAdminRequest(&http.Request{Method: method, URL: u})
		if err != nil || req.Name != name || req.Action != actionReset {
			t.Errorf("%q: parsed back as %+v, %v", name, req, err)
		}
	}
}

// storedHashClass returns the class of name's password hash in the
// database at path, which the test Caddy has open, and the classes the
// configs on it check unknown names against.
func storedHashClass(t *testing.T, path, name string) (stored signin.HashClass, fakes []signin.HashClass) {
	t.Helper()
	db, err := findDatabase(path)
	if err != nil {
		t.Fatal(err)
	}
	err = db.store.View(func(tx store.Tx) error {
		u, err := tx.User(name)
		if err == nil {
			stored, err = signin.ClassOf(u.PasswordHash)
		}
		return err
	})
	if err != nil {
		t.Fatalf("%s's hash: %v", name, err)
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	for h := range db.configs {
		fakes = append(fakes, h.fakeAccount.Class)
	}
	return stored, fakes
}

// TestCommandHashesLikeTheConfigUsers: a database user's hash is of the
// class unknown names are checked against (the config's users' algorithm
// and cost), so the time a sign-in takes tells nothing; an algorithm the
// operator names is used as named, with a warning.
func TestCommandHashesLikeTheConfigUsers(t *testing.T) {
	bcrypt4 := signin.HashClass{Algorithm: signin.Bcrypt, Cost: bcrypt.MinCost}
	argon2Default, _ := signin.DefaultHashClass(signin.Argon2id)
	dir := t.TempDir()
	first, second := filepath.Join(dir, "first.db"), filepath.Join(dir, "second.db")
	loadCaddyfile(t, twoSites(first, second)) // bcrypt users on first, none on second
	run := cliFor(t)
	for _, tc := range []struct {
		name string
		args []string
		want signin.HashClass
		warn bool
	}{
		{"config of bcrypt users", []string{"add-user", "zoe", "--db", first}, bcrypt4, false},
		{"passwd keeps the class", []string{"passwd", "zoe", "--db", first}, bcrypt4, false},
		{"the config's algorithm named", []string{"passwd", "zoe", "--db", first, "--algorithm", "bcrypt"}, bcrypt4, false},
		{"another algorithm named", []string{"add-user", "yves", "--db", first, "--algorithm", "argon2id"}, argon2Default, true},
		{"config without users", []string{"add-user", "xavier", "--db", second}, argon2Default, false},
		{"its algorithm named", []string{"add-user", "wanda", "--db", second, "--algorithm", "argon2id"}, argon2Default, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := run(testPassword+"\n", append(tc.args, "--password-file", "-")...).mustSucceed(t)
			db, name := tc.args[3], tc.args[1]
			stored, fakes := storedHashClass(t, db, name)
			if stored != tc.want {
				t.Errorf("%s's hash is %v, want %v", name, stored, tc.want)
			}
			parity := len(fakes) == 1 && fakes[0] == stored
			if parity == tc.warn {
				t.Errorf("unknown names are checked against %v, %s's hash is %v", fakes, name, stored)
			}
			if warned := strings.Contains(out.stderr, "will tell this user from them"); warned != tc.warn {
				t.Errorf("warned: %v, want %v; stderr %q", warned, tc.warn, out.stderr)
			}
		})
	}
	if r := newBrowser(t).login("zoe", testPassword, "/"); r.status != http.StatusSeeOther {
		t.Fatalf("zoe's bcrypt hash does not sign her in: %d", r.status)
	}

	// The next config that opens the database names the user whose hash
	// timing tells apart.
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	startSite(t, siteConfig{db: first, logFile: logFile})
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var warned bool
	for line := range strings.Lines(string(logs)) {
		if strings.Contains(line, "2FA database users have password hashes of another algorithm or cost") {
			warned = true
			if !strings.Contains(line, `"users":["yves"]`) {
				t.Errorf("warning names other users: %s", line)
			}
		}
	}
	if !warned {
		t.Errorf("no warning about yves's hash in\n%s", logs)
	}
}

// TestCommandOverAUnixSocket runs Caddy (cmd/caddy, in its own process)
// with its admin endpoint on a unix socket that only its user may open, as
// docs/operations.md advises, and manages users through that socket.
func TestCommandOverAUnixSocket(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/caddy; skipped with -short")
	}
	dir := t.TempDir()
	socket := filepath.Join(dir, "admin.sock")
	port := freePort()
	config := filepath.Join(dir, "Caddyfile")
	caddyfile := fmt.Sprintf(`{
	admin unix/%s|0600
	persist_config off
	storage file_system %s
}
http://localhost:%d {
	two_factor {
		db %s
		user alice %s
	}
	respond "inside"
}
`, socket, filepath.Join(dir, "storage"), port, filepath.Join(dir, "2fa.db"), testHash())
	if err := os.WriteFile(config, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	startCaddyProcess(t, buildCaddy(t), dir, config)

	info, err := os.Stat(socket)
	if err != nil || info.Mode()&os.ModeSocket == 0 || info.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket %s: %v, %v; want a socket of mode 0600", socket, info.Mode(), err)
	}
	for name, address := range map[string]string{"path": "unix/" + socket, "path and mode": "unix/" + socket + "|0600"} {
		t.Run(name, func(t *testing.T) {
			run := func(stdin string, args ...string) cliRun {
				t.Helper()
				return twoFactorCommand(t, stdin, append(args, "--address", address)...)
			}
			run(testPassword+"\n", "add-user", "zoe", "--password-file", "-").mustSucceed(t)
			users := usersOf(t, run)
			if users["alice"].DefinedIn != signin.DefinedInConfig || users["zoe"].DefinedIn != signin.DefinedInDatabase {
				t.Fatalf("users over the socket: %+v", users)
			}
			b := newBrowser(t)
			b.base = fmt.Sprintf("http://localhost:%d", port)
			if r := b.login("zoe", testPassword, "/"); r.status != http.StatusSeeOther {
				t.Fatalf("zoe signs in: %d", r.status)
			}
			run("", "remove-user", "zoe").mustSucceed(t)
		})
	}

	// The address in the Caddyfile, as `caddy reload --config` finds it.
	out := twoFactorCommand(t, "", "users", "--config", config, "--json").mustSucceed(t)
	if !strings.Contains(out.stdout, `"name": "alice"`) {
		t.Errorf("users through --config: %s", out.stdout)
	}
	// A socket nobody listens on is a Caddy that is not running.
	nowhere := "unix/" + filepath.Join(dir, "none.sock")
	if code := twoFactorCommand(t, "", "users", "--address", nowhere, "--json").refusal(t); code != codeNotRunning {
		t.Errorf("no socket: code %q, want %q", code, codeNotRunning)
	}
}

// buildCaddy builds cmd/caddy into a temporary directory.
func buildCaddy(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "caddy")
	build := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("building cmd/caddy: %v", err)
	}
	return bin
}

// startCaddyProcess runs `caddy run` on config with its home in dir, and
// returns once Caddy serves it; the process is killed when the test ends.
func startCaddyProcess(t *testing.T, bin, dir, config string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "run", "--config", config, "--adapter", "caddyfile")
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
