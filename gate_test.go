package twofactor

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// These tests run the gate's matching without Caddy: which requests it
// guards, what a matcher error does, and the placeholders it leaves on
// requests it does not sign in.

// caddyRequest is a request as Caddy hands it to a handler after a
// rewrite: at path now, asked for as sent, with a fresh replacer.
func caddyRequest(t *testing.T, now, sent string) (*http.Request, *caddy.Replacer) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, now, nil)
	repl := caddy.NewReplacer()
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	if sent != "" {
		u, err := url.ParseRequestURI(sent)
		if err != nil {
			t.Fatal(err)
		}
		ctx = context.WithValue(ctx, caddyhttp.OriginalRequestCtxKey, http.Request{Method: http.MethodGet, URL: u, RequestURI: sent})
	}
	return r.WithContext(ctx), repl
}

func TestGateMatchesTheRequestAsSentAndAsRewritten(t *testing.T) {
	h := &TwoFactor{PathPrefix: DefaultPathPrefix, matchers: caddyhttp.MatcherSet{caddyhttp.MatchPath{"/admin/*"}}}
	for _, tc := range []struct {
		name, now, sent string
		want            bool
	}{
		{"no rewrite, protected", "/admin/x", "/admin/x", true},
		{"no rewrite, public", "/public", "/public", false},
		{"try_files moved it out", "/index.php", "/admin/secret", true},
		{"uri strip_prefix moved it out", "/secret", "/admin/secret", true},
		{"rewrite moved it in", "/admin/secret", "/shortcut", true},
		{"rewrite stayed out", "/index.html", "/public", false},
		{"no original kept", "/admin/x", "", true},
		{"no original kept, public", "/index.php", "", false},
		{"case as Caddy's path matcher", "/index.php", "/ADMIN/x", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := caddyRequest(t, tc.now, tc.sent)
			got, err := h.guards(r)
			if err != nil || got != tc.want {
				t.Fatalf("guards(now %s, sent %s) = %v, %v; want %v", tc.now, tc.sent, got, err, tc.want)
			}
		})
	}
}

// TestGateMatchesWithTheLiveContext: a matcher evaluated on the request as
// sent reads the placeholders of the live request (here one a map handler
// could have set).
func TestGateMatchesWithTheLiveContext(t *testing.T) {
	h := &TwoFactor{matchers: caddyhttp.MatcherSet{caddyhttp.MatchPath{"/{area}/*"}}}
	r, repl := caddyRequest(t, "/index.php", "/ops/x")
	repl.Set("area", "ops")
	if got, err := h.guards(r); !got || err != nil {
		t.Fatalf("guards = %v, %v; want the sent path /ops/x matched through {area}", got, err)
	}
}

// failingMatcher fails as a matcher that cannot evaluate does.
type failingMatcher struct{ err error }

func (m failingMatcher) MatchWithError(*http.Request) (bool, error) { return false, m.err }

func TestGateMatcherErrorNeverPasses(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"handler error keeps its status", caddyhttp.Error(http.StatusBadRequest, errors.New("bad input")), http.StatusBadRequest},
		{"plain error", errors.New("broken"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &TwoFactor{PathPrefix: DefaultPathPrefix, matchers: caddyhttp.MatcherSet{failingMatcher{tc.err}}}
			r, _ := caddyRequest(t, "/admin/x", "/admin/x")
			passed := false
			next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
				passed = true
				return nil
			})
			err := h.ServeHTTP(httptest.NewRecorder(), r, next)
			if passed || !errors.Is(err, tc.err) {
				t.Fatalf("passed=%v err=%v; want the matcher's error and no pass", passed, err)
			}
			var herr caddyhttp.HandlerError
			if tc.want != 0 && (!errors.As(err, &herr) || herr.StatusCode != tc.want) {
				t.Fatalf("status of %v: want %d", err, tc.want)
			}
		})
	}
}

func TestGateProvisionsItsMatchers(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &TwoFactor{MatchersRaw: caddy.ModuleMap{"path": json.RawMessage(`["/admin/*"]`)}}
	if err := h.provisionMatchers(ctx); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{"/admin/x": true, "/public": false} {
		r, _ := caddyRequest(t, path, path)
		if got, err := h.guards(r); got != want || err != nil {
			t.Errorf("%s: guards = %v, %v; want %v", path, got, err, want)
		}
	}

	bad := &TwoFactor{MatchersRaw: caddy.ModuleMap{"no_such_matcher": json.RawMessage(`{}`)}}
	if err := bad.provisionMatchers(ctx); err == nil {
		t.Fatal("an unknown matcher was accepted")
	}
}

// TestGateSetsEmptyIdentityWhereItSignsNoOneIn: on every request the gate
// does not sign in, {http.auth.user.id} is known and empty, so a header_up
// sends an empty value, never the placeholder's text; a user an earlier
// handler set stays.
func TestGateSetsEmptyIdentityWhereItSignsNoOneIn(t *testing.T) {
	h := &TwoFactor{DB: t.TempDir() + "/two_factor.db", matchers: caddyhttp.MatcherSet{caddyhttp.MatchPath{"/admin/*"}}}
	if err := h.provision(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })

	for _, tc := range []struct {
		name, path, before, want string
	}{
		{"unguarded path", "/public", "", ""},
		{"guarded path, no session", "/admin/x", "", ""},
		{"sign-in page", "/_2fa/login", "", ""},
		{"unguarded path after basic_auth", "/public", "carol", "carol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, repl := caddyRequest(t, tc.path, tc.path)
			r.Header.Set("Remote-User", "mallory")
			if tc.before != "" {
				repl.Set("http.auth.user.id", tc.before)
			}
			_ = h.ServeHTTP(httptest.NewRecorder(), r, next)
			for _, key := range identityPlaceholders {
				want := ""
				if key == "http.auth.user.id" {
					want = tc.want
				}
				if got, known := repl.GetString(key); !known || got != want {
					t.Errorf("{%s} = %q (known %v), want %q", key, got, known, want)
				}
			}
			if got := repl.ReplaceKnown("{http.auth.user.id}", ""); got != tc.want {
				t.Errorf("header_up would send %q, want %q", got, tc.want)
			}
		})
	}
}
