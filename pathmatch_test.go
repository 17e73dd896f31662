package twofactor

import (
	"context"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-two-factor/caddy-two-factor/policy"
)

// TestPathPatternsMatchAsCaddyDoes: the step-up rules' matcher agrees with
// Caddy's path matcher on every pattern form and on paths that try to
// slip past it (case, dot segments, doubled and trailing slashes,
// escapes).
func TestPathPatternsMatchAsCaddyDoes(t *testing.T) {
	patterns := []string{
		"*", "/admin/settings", "/admin/*", "/Admin/Users/*", "*.zip", "*/edit/*", "/users/*/keys",
		"/a/[bc]/d", "/api", "/api/", "/x*y", "/dav//*", "/files/%40home/*", "*/.git/*",
	}
	paths := []string{
		"/", "/admin", "/admin/", "/admin/settings", "/ADMIN/Settings", "/admin/settings/", "/admin/settings/x",
		"/admin//settings", "/admin/./settings", "/x/../admin/settings", "/admin/users/1", "/admin/USERS/1",
		"/f/a.zip", "/f/a.ZIP", "/f/a.zip/", "/p/edit/q", "/p/EDIT/", "/users/bob/keys", "/users/bob/x/keys",
		"/a/b/d", "/a/c/d", "/a/e/d", "/api", "/api/", "/api//", "/xay", "/x/y", "/dav//a", "/dav/a",
		"/files/@home/a", "/files/%40home/a", "/r/.git/config", "//admin/settings", "/admin/settings/..",
	}
	for _, pat := range patterns {
		for _, raw := range paths {
			pp, err := newPathPatterns([]string{pat})
			if err != nil {
				t.Fatal(err)
			}
			r := matchRequest(t, raw)
			caddyM := caddyhttp.MatchPath{pat}
			if err := caddyM.Provision(caddy.Context{}); err != nil {
				t.Fatal(err)
			}
			want := caddyM.Match(r)
			if got := pp.match(matchablePath(r.URL.Path), r); got != want {
				t.Errorf("pattern %q, path %q: got %v, Caddy says %v", pat, raw, got, want)
			}
		}
	}
}

func TestPathPatternsLeaveTheConfigAsItIs(t *testing.T) {
	patterns := []string{"/Admin/*", "/Dav//*"}
	if _, err := newPathPatterns(patterns); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(patterns, []string{"/Admin/*", "/Dav//*"}) {
		t.Fatalf("patterns changed to %q", patterns)
	}
}

// matchRequest is a request for the raw path (which may hold escapes),
// as Caddy hands it to a matcher.
func matchRequest(t *testing.T, raw string) *http.Request {
	t.Helper()
	u, err := url.Parse("http://example.com" + raw)
	if err != nil {
		t.Fatal(err)
	}
	r := &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}
	return r.WithContext(context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
}

// FuzzPathPatterns: whatever the pattern (one ValidatePattern accepts)
// and the path, the step-up matcher says what Caddy's path matcher says.
func FuzzPathPatterns(f *testing.F) {
	for _, seed := range [][2]string{{"/admin/*", "/ADMIN/x"}, {"*.zip", "/a.zip/"}, {"/a/[b]/c", "/a/b/c"}, {"*/e/*", "//e//"}, {"/x", "/x/."}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, pat, raw string) {
		if policy.ValidatePattern(pat) != nil || len(raw) == 0 || raw[0] != '/' {
			t.Skip()
		}
		u, err := url.Parse("http://example.com" + raw)
		if err != nil || u.Path == "" {
			t.Skip()
		}
		r := (&http.Request{URL: u, Header: http.Header{}}).WithContext(context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		pp, err := newPathPatterns([]string{pat})
		if err != nil {
			t.Fatal(err)
		}
		caddyM := caddyhttp.MatchPath{pat}
		if err := caddyM.Provision(caddy.Context{}); err != nil {
			t.Fatal(err)
		}
		if got, want := pp.match(matchablePath(r.URL.Path), r), caddyM.Match(r); got != want {
			t.Errorf("pattern %q, path %q: got %v, Caddy says %v", pat, u.Path, got, want)
		}
	})
}

// FuzzMatchablePath: the fast check for a path that needs no cleaning
// never disagrees with cleaning it.
func FuzzMatchablePath(f *testing.F) {
	for _, p := range []string{"/", "/a/b", "/a/b/", "/A", "/a//b", "/a/./b", "/a/../b", "/a/.b", "/a/..b", "/.", "/..", "/a/.", "/é"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if plainPath(p) {
			lowered := strings.ToLower(p)
			cleaned := path.Clean(lowered)
			if cleaned != "/" && strings.HasSuffix(lowered, "/") {
				cleaned += "/"
			}
			if cleaned != p {
				t.Errorf("%q taken as plain, but it cleans to %q", p, cleaned)
			}
		}
	})
}
