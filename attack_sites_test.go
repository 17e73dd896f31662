package twofactor

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

// Regression tests for site isolation: two sites on one Caddy, each with
// its own "alice", must not honour each other's sign-ins.

const otherPassword = "a different password"

// twoSites loads two sites, A on the test HTTP port and B on another,
// each declaring alice with its own password; dbA and dbB are their db
// lines ("" for none). It returns B's base URL.
func twoAliceSites(t *testing.T, dbA, dbB string) string {
	t.Helper()
	other, err := bcrypt.GenerateFromPassword([]byte(otherPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	portB := freePort()
	// bob has the same hash on both sites (a copy-pasted user line).
	site := func(port int, db, hash string) string {
		if db != "" {
			db = "db " + db
		}
		return fmt.Sprintf(`
http://localhost:%d {
	two_factor /admin/* {
		%s
		user alice %s
		user bob %s
	}
	respond "admin area of %d: user={http.auth.user.id}"
}
`, port, db, hash, testHash(), port)
	}
	loadCaddyfile(t, globalOptions()+site(testPorts().http, dbA, testHash())+site(portB, dbB, string(other)))
	return fmt.Sprintf("http://localhost:%d", portB)
}

func TestAttackSitesWithoutDBDoNotShareSignIns(t *testing.T) {
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data) // Caddy's data directory
	baseB := twoAliceSites(t, "", "")

	alice := newBrowser(t)
	secret, _ := alice.enroll("alice")
	if r := alice.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("alice not signed in on A: %d", r.status)
	}
	// Her cookie (browsers send localhost cookies to every port) on B.
	alice.base = baseB
	if r := alice.get("/admin/"); r.status == http.StatusOK {
		t.Fatalf("A's session opened B: %q", r.body)
	}
	// B's alice is a user of her own: she sets up her own authenticator.
	if r := newBrowserAt(t, baseB).login("alice", otherPassword, "/admin/"); r.location() != "/_2fa/setup" {
		t.Fatalf("B's alice was sent to %q, not to her own setup", r.location())
	}
	// Failures on B do not lock A's alice.
	for range DefaultMaxAttempts + 1 {
		newBrowserAt(t, baseB).login("alice", "wrong", "/")
	}
	if r := newBrowser(t).signIn("alice", secret); r.status != http.StatusSeeOther {
		t.Fatalf("failures on B locked alice on A: %d", r.status)
	}
	files, _ := filepath.Glob(filepath.Join(data, "caddy", "two_factor", "*.db"))
	if len(files) != 2 {
		t.Fatalf("want one database file per site, got %v", files)
	}
}

func newBrowserAt(t *testing.T, base string) *browser {
	b := newBrowser(t)
	b.base = base
	return b
}

func TestAttackSharedDBHonoursOnlyTheSamePassword(t *testing.T) {
	db := filepath.Join(t.TempDir(), "shared.db")
	baseB := twoAliceSites(t, db, db)
	alice := newBrowser(t)
	alice.enroll("alice")
	alice.base = baseB
	if r := alice.get("/admin/"); r.status == http.StatusOK {
		t.Fatalf("a session opened with A's password for alice opened B, which declares another: %q", r.body)
	}
	// bob has the same hash on both (copy-pasted), so sharing works for him.
	bob := newBrowser(t)
	bob.enroll("bob")
	bob.base = baseB
	if r := bob.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("a shared db with the same user line did not share bob's sign-in: %d", r.status)
	}
}

func TestAttackChangedPasswordEndsSessions(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*"})
	judy := newBrowser(t)
	judy.enroll("judy")
	if r := judy.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("judy not signed in: %d", r.status)
	}
	other, err := bcrypt.GenerateFromPassword([]byte(otherPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	loadCaddyfile(t, globalOptions()+fmt.Sprintf(`
http://localhost:%d {
	two_factor /admin/* {
		db %s
		user judy %s
	}
	respond "admin area"
}
`, testPorts().http, site.db, other))
	if r := judy.get("/admin/"); r.status == http.StatusOK {
		t.Fatal("a session outlived the change of its user's password in the config")
	}
}

func TestJSONWithoutDBOrSiteIsAConfigError(t *testing.T) {
	h := &TwoFactor{Users: []Account{{Username: "alice", Password: testHash()}}}
	if err := h.provision(zap.NewNop()); err == nil {
		h.Cleanup()
		t.Fatal("a handler with neither db nor site provisioned (it would share a default file with every other site)")
	}
}

func TestSiteFileNamesAreDistinctAndSafe(t *testing.T) {
	seen := map[string]string{}
	for _, site := range []string{"example.com", "http://example.com", "example.com:8080", ":8080", "_8080", "a b", "a/b", "../../etc/passwd", "http://localhost:8080, https://localhost:8443"} {
		name := siteFileName(site)
		if other, dup := seen[name]; dup {
			t.Errorf("%q and %q share the file %s", site, other, name)
		}
		seen[name] = site
		if filepath.Base(name) != name || name[0] == '.' || filepath.Ext(name) != ".db" {
			t.Errorf("site %q: unsafe file name %q", site, name)
		}
	}
}
