package twofactor

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// user_from after basic_auth, on a real Caddy.

// startVouchedSite runs a site where basic_auth guards /admin/* for
// alice, bob and carol, and two_factor, with user_from, guards /admin/*
// and /other/* (which basic_auth does not: the placeholder is empty
// there). users are the two_factor block's user lines (none when empty).
// It returns the log file.
func startVouchedSite(t *testing.T, users ...string) string {
	t.Helper()
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	var lines strings.Builder
	for _, u := range users {
		fmt.Fprintf(&lines, "\t\tuser %s %s\n", u, testHash())
	}
	loadCaddyfile(t, globalOptions(fmt.Sprintf("log {\n\t\toutput file %s\n\t\tformat json\n\t}", logFile))+fmt.Sprintf(`
http://localhost:%d {
	basic_auth /admin/* {
		alice %[2]s
		bob %[2]s
		carol %[2]s
	}
	@guarded path /admin/* /other/*
	two_factor @guarded {
		db %[3]s
		user_from {http.auth.user.id}
%[4]s	}
	respond /admin/* "admin area: user={http.auth.user.id} method={http.two_factor.method}"
	respond /other/* "other area: user={http.auth.user.id}"
	respond "public"
}
`, testPorts().http, testHash(), filepath.Join(dir, "two_factor.db"), lines.String()))
	return logFile
}

func basicAuth(user string) string {
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+testPassword))
}

// enrollVouched takes user, whom basic_auth lets in, through the setup
// page, and returns the secret.
func (b *browser) enrollVouched(user string) []byte {
	b.t.Helper()
	wantGoesTo(b.t, "first visit of "+user, b.get("/admin/x", basicAuth(user)), http.StatusFound, "/_2fa/setup")
	page := b.get("/_2fa/setup")
	if strings.Contains(page.body, `name="password"`) {
		b.t.Fatal("the setup page asks for a password")
	}
	m := secretPattern.FindStringSubmatch(page.body)
	if m == nil {
		b.t.Fatalf("no secret on the setup page (%d):\n%s", page.status, page.body)
	}
	secret, err := totpDecode(m[1])
	if err != nil {
		b.t.Fatal(err)
	}
	wantStatus(b.t, "setup of "+user, b.post("/_2fa/setup", url.Values{"csrf": {b.csrfFrom(page)}, "code": {b.code(user, secret)}}), http.StatusOK)
	return secret
}

// TestUserFromAfterBasicAuth: the module asks only for the second factor
// of the user basic_auth let in; a session counts only for that user, so
// another user on the same browser signs in on their own; an empty
// placeholder is refused and logged, never let through.
func TestUserFromAfterBasicAuth(t *testing.T) {
	logFile := startVouchedSite(t)
	b := newBrowser(t)
	wantStatus(t, "no basic auth", b.get("/admin/x"), http.StatusUnauthorized)

	secret := b.enrollVouched("alice")
	r := b.get("/admin/x", basicAuth("alice"))
	wantStatus(t, "alice signed in", r, http.StatusOK)
	if !strings.Contains(r.body, "user=alice method=setup") {
		t.Fatalf("placeholders: %s", r.body)
	}

	// Another user on the same browser: alice's session does not count.
	r = b.get("/admin/x", basicAuth("bob"))
	wantGoesTo(t, "bob with alice's session", r, http.StatusFound, "/_2fa/setup")
	wantStatus(t, "bob with alice's session, no browser", b.get("/admin/x", basicAuth("bob"), "Accept: */*"), http.StatusUnauthorized)
	// The browser's session became bob's sign-in: alice confirms again,
	// with her code only.
	wantGoesTo(t, "alice again", b.get("/admin/x", basicAuth("alice")), http.StatusFound, "/_2fa/confirm")
	wantGoesTo(t, "alice's code", b.confirm(b.code("alice", secret)), http.StatusSeeOther, "/admin/x")
	wantStatus(t, "alice after her code", b.get("/admin/x", basicAuth("alice")), http.StatusOK)

	// Where basic_auth did not run, the placeholder is empty: refused
	// even with a live session, and logged.
	r = b.get("/other/y", basicAuth("alice"))
	wantStatus(t, "empty placeholder", r, http.StatusUnauthorized)
	if strings.Contains(r.body, "other area") {
		t.Fatal("an empty placeholder let the request through")
	}
	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logged), "user_from names no user") || !strings.Contains(string(logged), `"level":"error"`) {
		t.Errorf("no error logged for the empty placeholder:\n%s", logged)
	}

	// The login page shows no password form; posting one does nothing.
	page := newBrowser(t).get("/_2fa/login?next=/admin/x")
	wantStatus(t, "login page without the earlier login", page, http.StatusUnauthorized)
	if strings.Contains(page.body, `name="password"`) {
		t.Fatal("the login page asks for a password under user_from")
	}
	wantStatus(t, "a password posted", newBrowser(t).post("/_2fa/login", url.Values{"username": {"carol"}, "password": {testPassword}}), http.StatusUnauthorized)
}

// TestUserFromOnlyDeclaredUsers: with user lines, only those users pass,
// whoever the earlier login lets in.
func TestUserFromOnlyDeclaredUsers(t *testing.T) {
	startVouchedSite(t, "alice")
	b := newBrowser(t)
	b.enrollVouched("alice")
	wantStatus(t, "alice", b.get("/admin/x", basicAuth("alice")), http.StatusOK)
	wantStatus(t, "bob, not declared", newBrowser(t).get("/admin/x", basicAuth("bob")), http.StatusForbidden)
}
