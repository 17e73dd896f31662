package twofactor

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Attacks on where the gate sits in a site: a rewrite ordered before it,
// and identity headers on the paths it does not guard. Each runs against
// a real Caddy.

// appRoutes answer behind the gate with the path as the app sees it and
// the user the gate set.
const appRoutes = `respond "app path={path} user=[{http.auth.user.id}]"`

// gatedUsers is the user lines of a two_factor block.
func gatedUsers() string {
	var users strings.Builder
	for _, u := range testUsers {
		fmt.Fprintf(&users, "\t\tuser %s %s\n", u, testHash())
	}
	return users.String()
}

// assertGuarded asserts that a request for path without a session is sent
// to the sign-in page, with next the path the client asked for.
func assertGuarded(t *testing.T, b *browser, path string, headers ...string) {
	t.Helper()
	r := b.get(path, headers...)
	want := "/_2fa/login?next=" + url.QueryEscape(path)
	if r.status != http.StatusFound || r.location() != want {
		t.Errorf("GET %s without a session: %d to %q %q; want 302 to %s", path, r.status, r.location(), r.body, want)
	}
}

// assertPublic asserts that path reaches the app, with no user.
func assertPublic(t *testing.T, b *browser, path string, headers ...string) {
	t.Helper()
	r := b.get(path, headers...)
	if r.status != http.StatusOK || !strings.HasPrefix(r.body, "app path=") || !strings.HasSuffix(r.body, "user=[]") {
		t.Errorf("GET %s: %d %q; want the app with user=[]", path, r.status, r.body)
	}
}

func TestAttackRewriteBeforeTheGateDoesNotBypassIt(t *testing.T) {
	basic := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("carol:"+testPassword))
	for _, tc := range []struct {
		name string
		// site is the two_factor line's matcher and the routes of a
		// test site, or caddyfile a whole Caddyfile.
		site      siteConfig
		caddyfile func(db string) string
		guarded   []string
		public    []string
		// user signs in and then reaches the guarded paths, when set.
		user    string
		headers []string
	}{
		{
			name:    "try_files",
			site:    siteConfig{matcher: "/admin/*", routes: "root * testdata/www\n\ttry_files {path} /index.php?{query}\n\t" + appRoutes},
			guarded: []string{"/admin/secret", "/admin/secret?x=1", "/ADMIN/secret"},
			public:  []string{"/public/page"},
			user:    "alice",
		},
		{
			name:    "rewrite out of the protected paths",
			site:    siteConfig{matcher: "/admin/*", routes: "rewrite /admin/report /report\n\t" + appRoutes},
			guarded: []string{"/admin/report", "/admin/other"},
			public:  []string{"/report"},
			user:    "bob",
		},
		{
			// This one passed before too; it keeps the gate from
			// matching only what the client sent.
			name:    "rewrite into the protected paths",
			site:    siteConfig{matcher: "/admin/*", routes: "rewrite /shortcut /admin/secret\n\t" + appRoutes},
			guarded: []string{"/shortcut", "/admin/secret"},
			public:  []string{"/other"},
			user:    "carol",
		},
		{
			name:    "uri strip_prefix",
			site:    siteConfig{matcher: "/app/admin/*", routes: "uri strip_prefix /app\n\t" + appRoutes},
			guarded: []string{"/app/admin/secret"},
			public:  []string{"/app/public"},
			user:    "dave",
		},
		{
			name:    "named matcher",
			site:    siteConfig{matcher: "@admin", routes: "@admin path /admin/*\n\troot * testdata/www\n\ttry_files {path} /index.html\n\t" + appRoutes},
			guarded: []string{"/admin/secret"},
			public:  []string{"/public/page"},
			user:    "erin",
		},
		{
			name: "handle_path",
			caddyfile: func(db string) string {
				return globalOptions() + fmt.Sprintf(`
http://localhost:%d {
	handle_path /app/* {
		two_factor /app/admin/* {
			db %s
%s		}
		%s
	}
	respond "outside"
}
`, testPorts().http, db, gatedUsers(), appRoutes)
			},
			guarded: []string{"/app/admin/secret"},
			public:  []string{"/app/public"},
		},
		{
			// basic_auth runs first and still asks for its password;
			// the gate runs second, also on the rewritten path, which
			// basic_auth's route no longer matches.
			name: "basic_auth then two_factor",
			site: siteConfig{matcher: "/admin/*", routes: fmt.Sprintf(`basic_auth /admin/* {
		carol %s
	}
	rewrite /admin/old /legacy
	%s`, testHash(), appRoutes)},
			guarded: []string{"/admin/x", "/admin/old"},
			public:  []string{"/legacy"},
			user:    "frank",
			headers: []string{basic},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.caddyfile != nil {
				loadCaddyfile(t, tc.caddyfile(filepath.Join(t.TempDir(), "two_factor.db")))
			} else {
				startSite(t, tc.site)
			}
			b := newBrowser(t)
			for _, path := range tc.guarded {
				assertGuarded(t, b, path, tc.headers...)
			}
			for _, path := range tc.public {
				assertPublic(t, b, path)
			}
			if tc.headers != nil {
				// Without its password, basic_auth answers first.
				if r := b.get("/admin/x"); r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
					t.Errorf("GET /admin/x without basic auth: %d %v; want basic_auth's 401", r.status, r.header)
				}
			}
			if tc.user == "" || t.Failed() {
				return
			}
			b.enroll(tc.user)
			for _, path := range tc.guarded {
				r := b.get(path, tc.headers...)
				if r.status != http.StatusOK || !strings.HasSuffix(r.body, "user=["+tc.user+"]") {
					t.Errorf("GET %s signed in: %d %q; want the app as %s", path, r.status, r.body, tc.user)
				}
			}
		})
	}
}

// echoUpstream is an app behind Caddy that answers with the Remote-User
// and X-Forwarded-User values it received, as Go quotes them, so an empty
// value ([""]) and no header ([]) differ.
func echoUpstream(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream remote-user=%q forwarded-user=%q", r.Header.Values("Remote-User"), r.Header.Values("X-Forwarded-User"))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// exampleCaddyfile is example.Caddyfile with the test's ports, database,
// users and upstream; it fails if the example no longer has the shape
// the test swaps.
func exampleCaddyfile(t *testing.T, upstream string) string {
	t.Helper()
	raw, err := os.ReadFile("example.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	example, _, ok := strings.Cut(string(raw), "\n# The app behind the gate")
	if !ok {
		t.Fatal("example.Caddyfile: no app block to replace with the test's upstream")
	}
	for _, swap := range []struct{ old, new string }{
		{"{\n\tadmin localhost:2019\n}\n", globalOptions()},
		{"http://localhost:8080 {", testBase() + " {"},
		{"db ./demo-data/two_factor.db", "db " + filepath.Join(t.TempDir(), "two_factor.db")},
		{"user demo $2a$14$qkyBMxpv98eWWleQf2s3GeFo8jSX2XxrUykzDUI0brjNfPgfUQzSW\n", strings.TrimLeft(gatedUsers(), "\t")},
		{"reverse_proxy localhost:8081 {", "reverse_proxy " + upstream + " {"},
	} {
		if strings.Count(example, swap.old) != 1 {
			t.Fatalf("example.Caddyfile does not have %q once", swap.old)
		}
		example = strings.Replace(example, swap.old, swap.new, 1)
	}
	return example
}

// TestAttackExampleNeverForwardsAnUnauthenticatedUser runs example.Caddyfile:
// on every path, signed in or not, with identity headers forged by the
// client, the upstream sees the signed-in user or an empty Remote-User,
// never a name nobody signed in with, nor the placeholder's text.
func TestAttackExampleNeverForwardsAnUnauthenticatedUser(t *testing.T) {
	loadCaddyfile(t, exampleCaddyfile(t, echoUpstream(t)))
	const nobody = `upstream remote-user=[""] forwarded-user=[]`
	forged := []string{"Remote-User: mallory", "X-Forwarded-User: mallory"}
	b := newBrowser(t)
	check := func(when, path, want string, headers ...string) {
		t.Helper()
		r := b.get(path, headers...)
		if r.status != http.StatusOK || r.body != want {
			t.Errorf("%s, GET %s: %d %q; want 200 %q", when, path, r.status, r.body, want)
		}
	}

	for _, headers := range [][]string{nil, forged} {
		// /admin itself and dot segments that an upstream may resolve to
		// it are guarded too (the example matches /admin*).
		for _, path := range []string{"/admin/", "/admin", "/admin/x/..", "/admin/x/%2e%2e"} {
			r := b.get(path, headers...)
			if r.status != http.StatusFound || strings.Contains(r.body, "upstream") {
				t.Errorf("guarded path %s, not signed in, headers %q: %d %q; want the sign-in page", path, headers, r.status, r.body)
			}
		}
		check("not signed in", "/", nobody, headers...)
		check("not signed in", "/about", nobody, headers...)
	}

	b.enroll("alice")
	check("signed in", "/admin/", `upstream remote-user=["alice"] forwarded-user=[]`, forged...)
	// The gate does not look at sessions on paths it does not guard.
	check("signed in", "/", nobody, forged...)
}

// TestAttackProxiesOutsideTheGateDoNotForwardForgedUsers: a reverse_proxy
// that requests reach without passing the gate (here two_factor guards
// only inside one handle) follows the README: vars makes the placeholder
// empty for the whole site, or header_up removes the header.
func TestAttackProxiesOutsideTheGateDoNotForwardForgedUsers(t *testing.T) {
	upstream := echoUpstream(t)
	for _, tc := range []struct {
		name, top, outside, want string
	}{
		{"vars at the top of the site", `vars http.auth.user.id ""`, "header_up Remote-User {http.auth.user.id}", `upstream remote-user=[""] forwarded-user=[]`},
		{"header removed", "", "header_up -Remote-User", `upstream remote-user=[] forwarded-user=[]`},
		// What the README warns about: Caddy leaves a placeholder it
		// does not know as text.
		{"neither", "", "header_up Remote-User {http.auth.user.id}", `upstream remote-user=["{http.auth.user.id}"] forwarded-user=[]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loadCaddyfile(t, globalOptions()+fmt.Sprintf(`
%s {
	%s
	handle /admin/* {
		two_factor {
			db %s
%s		}
		reverse_proxy %s {
			header_up Remote-User {http.auth.user.id}
		}
	}
	handle {
		reverse_proxy %s {
			%s
		}
	}
}
`, testBase(), tc.top, filepath.Join(t.TempDir(), "two_factor.db"), gatedUsers(), upstream, upstream, tc.outside))
			r := newBrowser(t).get("/outside", "Remote-User: mallory")
			if r.status != http.StatusOK || r.body != tc.want {
				t.Fatalf("GET /outside with a forged Remote-User: %d %q; want %q", r.status, r.body, tc.want)
			}
		})
	}
}

// TestJSONGateMatchSeesTheRequestAsSent: in JSON, the handler's own match
// is the one that also sees the request before a rewrite; its route needs
// no matcher, and the pages are reachable.
func TestJSONGateMatchSeesTheRequestAsSent(t *testing.T) {
	loadJSON(t, fmt.Sprintf(`[
			{"match": [{"path": ["/admin/report"]}], "handle": [{"handler": "rewrite", "uri": "/report"}]},
			{"handle": [{
				"handler": "two_factor",
				"match": {"path": ["/admin/*"]},
				"db": %q,
				"users": [{"username": "judy", "password": %q}]
			}]},
			{"handle": [{"handler": "static_response", "body": "app path={http.request.uri.path} user=[{http.auth.user.id}]"}]}
		]`, filepath.Join(t.TempDir(), "2fa.db"), testHash()))
	b := newBrowser(t)
	assertGuarded(t, b, "/admin/report")
	assertPublic(t, b, "/report")
	b.enroll("judy")
	if r := b.get("/admin/report"); r.status != http.StatusOK || r.body != "app path=/report user=[judy]" {
		t.Fatalf("signed in: %d %q", r.status, r.body)
	}
}

// loadJSON loads a JSON config whose one server, on the test's HTTP port,
// has these routes.
func loadJSON(t *testing.T, routes string) {
	t.Helper()
	newTester(t).InitServer(fmt.Sprintf(`{
	"admin": {"listen": "localhost:%d"},
	"apps": {"http": {"http_port": %d, "grace_period": 1, "servers": {"srv0": {
		"listen": [":%d"],
		"automatic_https": {"disable": true},
		"routes": %s
	}}}}
}`, testPorts().admin, testPorts().http, testPorts().http, routes), "json")
	if t.Failed() {
		t.FailNow()
	}
}
