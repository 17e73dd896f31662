package twofactor

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"

	"github.com/caddy-two-factor/caddy-two-factor/signin"
)

// These tests call the admin API of the test Caddy over HTTP.

// adminCall sends a request to the test Caddy's admin endpoint and
// returns the status and body.
func adminCall(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	resp, err := adminDo(adminAddress(), method, path, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(raw)
}

func TestAdminAPIListsUsers(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*"})
	newBrowser(t).enroll("alice")
	status, body := adminCall(t, http.MethodGet, "/two_factor/users", "")
	if status != http.StatusOK {
		t.Fatalf("GET users: %d %s", status, body)
	}
	var res adminResult
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	if res.DB != site.db || len(res.Users) != len(testUsers) {
		t.Fatalf("users: %s", body)
	}
	for _, u := range res.Users {
		want := userInfo{Name: u.Name, DefinedIn: signin.DefinedInConfig}
		if u.Name == "alice" {
			want.Enrolled, want.EnrolledAt, want.RecoveryCodesLeft, want.Sessions = true, u.EnrolledAt, 10, 1
			want.Factors = []string{signin.MethodTOTP}
			if u.EnrolledAt.IsZero() {
				t.Error("alice has no enrollment date")
			}
		}
		if !reflect.DeepEqual(u, want) {
			t.Errorf("got %+v, want %+v", u, want)
		}
	}
}

func TestAdminAPIRefusals(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*"})
	hash := testHash()
	argon2 := string(caddyauth.Argon2idHash{}.FakeHash())
	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/two_factor/users/nobody/reset", "", 404, codeUnknownUser},
		{"DELETE", "/two_factor/users/alice", "", 409, codeDefinedInConfig},
		{"POST", "/two_factor/users", `{"name":"alice","password_hash":"` + hash + `"}`, 409, codeDefinedInConfig},
		{"POST", "/two_factor/users", `{"name":"zoe","password_hash":"hunter2"}`, 400, codeBadRequest},
		{"POST", "/two_factor/users", `{"name":"zoe","password_hash":"` + argon2 + `"}`, 409, codeHashClass},
		{"POST", "/two_factor/users", `{"name":"","password_hash":"` + hash + `"}`, 400, codeBadRequest},
		{"PUT", "/two_factor/users/alice/password", `{"password_hash":"` + hash + `"}`, 409, codeDefinedInConfig},
		{"GET", "/two_factor/users?db=" + url.QueryEscape(site.db+".other"), "", 404, codeNotOpen},
		// Refused by Caddy's error handling, without a code.
		{"POST", "/two_factor/users", `{"name":"zoe","password":"hunter2"}`, 400, ""},
		{"GET", "/two_factor/users/alice/reset", "", 404, ""},
		{"DELETE", "/two_factor/users", "", 404, ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			status, body := adminCall(t, tc.method, tc.path, tc.body)
			var refused adminError
			_ = json.Unmarshal([]byte(body), &refused)
			if status != tc.status || refused.Code != tc.code || refused.Message == "" {
				t.Errorf("got %d %s, want %d with code %q", status, body, tc.status, tc.code)
			}
		})
	}
}

func TestAdminAPIRevokeEndsSessionsAtOnce(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	b.enroll("alice")
	if r := b.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("alice: %d", r.status)
	}
	status, body := adminCall(t, http.MethodPost, "/two_factor/users/alice/revoke", "")
	if status != http.StatusOK || !strings.Contains(body, `"sessions_ended":1`) {
		t.Fatalf("revoke: %d %s", status, body)
	}
	if r := b.get("/admin/"); r.status != http.StatusFound {
		t.Fatalf("alice still signed in after revoke: %d", r.status)
	}
}

func TestAdminAPIFollowsReloads(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*"})
	// The same database under a config that declares one user only.
	loadCaddyfile(t, globalOptions()+fmt.Sprintf(`
http://localhost:%d {
	two_factor {
		db %s
		user erin %s
	}
	respond "one user"
}
`, testPorts().http, site.db, testHash()))
	status, body := adminCall(t, http.MethodGet, "/two_factor/users", "")
	var res adminResult
	if err := json.Unmarshal([]byte(body), &res); err != nil || status != http.StatusOK {
		t.Fatalf("users: %d %s", status, body)
	}
	if len(res.Users) != 1 || res.Users[0].Name != "erin" {
		t.Fatalf("after the reload: %s", body)
	}

	stopSites(t)
	status, body = adminCall(t, http.MethodGet, "/two_factor/users", "")
	if status != http.StatusNotFound || !strings.Contains(body, codeNoDatabase) {
		t.Fatalf("without two_factor: %d %s", status, body)
	}
}

func TestAdminAPIChoosesTheDatabase(t *testing.T) {
	dir := t.TempDir()
	first, second := filepath.Join(dir, "first.db"), filepath.Join(dir, "second.db")
	loadCaddyfile(t, twoSites(first, second))
	status, body := adminCall(t, http.MethodGet, "/two_factor/users", "")
	if status != http.StatusConflict || !strings.Contains(body, first) || !strings.Contains(body, second) {
		t.Fatalf("without db: %d %s", status, body)
	}
	status, body = adminCall(t, http.MethodGet, "/two_factor/users?db="+url.QueryEscape(first), "")
	if status != http.StatusOK || !strings.Contains(body, `"name":"alice"`) {
		t.Fatalf("first: %d %s", status, body)
	}
}

// A name managed in the database cannot also be declared in the config:
// such a config does not load, and the running one stays.
func TestConfigUserAlsoInDatabaseIsAConfigError(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*"})
	status, body := adminCall(t, http.MethodPost, "/two_factor/users", `{"name":"zoe","password_hash":"`+testHash()+`"}`)
	if status != http.StatusCreated {
		t.Fatalf("add zoe: %d %s", status, body)
	}
	clash := globalOptions() + fmt.Sprintf(`
http://localhost:%d {
	two_factor {
		db %s
		user zoe %s
	}
	respond "clash"
}
`, testPorts().http, site.db, testHash())
	req, err := http.NewRequest(http.MethodPost, "http://"+adminAddress()+"/load", strings.NewReader(clash))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	req.Header.Set("Origin", "http://"+adminAddress())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(raw), `user \"zoe\" is declared in the config and also managed in the 2FA database`) {
		t.Fatalf("clashing config: %d %s", resp.StatusCode, raw)
	}
	// The running config still serves, with zoe from the database.
	if r := newBrowser(t).login("zoe", testPassword, "/admin/"); r.status != http.StatusSeeOther {
		t.Fatalf("zoe after the refused reload: %d", r.status)
	}
}

// TestAdminAPIHashClass: the API says which hash class new passwords need
// (the config's users'), refuses another with a clear message, and takes
// one only when the caller insists, with a warning in the answer.
func TestAdminAPIHashClass(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	status, body := adminCall(t, http.MethodGet, "/two_factor/hash_class", "")
	if want := `{"db":`; status != http.StatusOK || !strings.HasPrefix(body, want) ||
		!strings.Contains(body, `"hash_class":{"algorithm":"bcrypt","cost":4},"hash_class_from":"config"`) {
		t.Fatalf("GET hash_class: %d %s", status, body)
	}

	argon2 := string(caddyauth.Argon2idHash{}.FakeHash())
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		say                      string
	}{
		{"bcrypt of the config's cost", "POST", "/two_factor/users", `{"name":"zoe","password_hash":"` + testHash() + `"}`, 201, ""},
		{"argon2id", "PUT", "/two_factor/users/zoe/password", `{"password_hash":"` + argon2 + `"}`, 409,
			"the password hash is argon2id m=47104,t=1,p=1 with a 32-byte key, but unknown user names are checked against bcrypt cost 4 (like the config's first user)"},
		{"argon2id, insisting", "PUT", "/two_factor/users/zoe/password", `{"password_hash":"` + argon2 + `","other_hash_class":true}`, 200,
			`"warning":"the password hash is argon2id`},
		{"bcrypt of another cost, insisting", "POST", "/two_factor/users", `{"name":"yves","password_hash":"` + string(caddyauth.BcryptHash{}.FakeHash()) + `","other_hash_class":true}`, 201,
			"the password hash is bcrypt cost 14"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := adminCall(t, tc.method, tc.path, tc.body)
			if status != tc.status || !strings.Contains(body, tc.say) {
				t.Errorf("got %d %s, want %d saying %q", status, body, tc.status, tc.say)
			}
		})
	}
}
