package redirect_test

import (
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/caddy-two-factor/caddy-two-factor/redirect"
)

// checkSafe fails the test unless got, the result of Safe(in), is a target
// that every browser resolves to the same origin.
func checkSafe(t *testing.T, in, got string) {
	t.Helper()
	if got != redirect.Fallback && got != in {
		t.Fatalf("Safe(%q) = %q: neither the input nor the fallback", in, got)
	}
	if got == redirect.Fallback {
		return
	}
	if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") {
		t.Fatalf("Safe(%q) = %q: not a path-absolute reference", in, got)
	}
	if len(got) > redirect.MaxLength {
		t.Fatalf("Safe(%q) returned %d bytes", in, len(got))
	}
	for i := 0; i < len(got); i++ {
		if c := got[i]; c == '\\' || c < 0x20 || c == 0x7f {
			t.Fatalf("Safe(%q) = %q: contains %q", in, got, c)
		}
	}
	u, err := url.Parse(got)
	if err != nil {
		t.Fatalf("Safe(%q) = %q, which does not parse: %v", in, got, err)
	}
	if u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		t.Fatalf("Safe(%q) = %q: parses with scheme %q host %q user %v opaque %q", in, got, u.Scheme, u.Host, u.User, u.Opaque)
	}
	// One more round of percent-decoding, by an upstream or a browser, must
	// not make it scheme-relative either.
	for _, decode := range []func(string) (string, error){url.PathUnescape, url.QueryUnescape} {
		d, err := decode(got)
		if err != nil {
			continue
		}
		if strings.HasPrefix(d, "//") || strings.HasPrefix(d, "/\\") {
			t.Fatalf("Safe(%q) = %q, which decodes to %q", in, got, d)
		}
	}
	if d, err := url.PathUnescape(u.EscapedPath()); err != nil || strings.ContainsAny(d, "\\\t\r\n\x00") {
		t.Fatalf("Safe(%q) = %q, whose path decodes to %q (%v)", in, got, d, err)
	}
}

func TestSafe(t *testing.T) {
	long := "/" + strings.Repeat("a", redirect.MaxLength-1)
	tests := []struct {
		name string
		in   string
		kept bool // true: Safe returns the input; false: the fallback
	}{
		// Same-origin paths.
		{"root", "/", true},
		{"path and query", "/admin?x=1", true},
		{"nested path", "/a/b/c.html", true},
		{"fragment", "/page#section", true},
		{"query with a URL", "/?next=https://evil.com", true},
		{"query with slashes", "/?next=//evil.com", true},
		{"fragment with slashes", "/#//evil.com", true},
		{"at sign in the path", "/@evil.com", true},
		{"colon in the path", "/a:b", true},
		{"dot segments", "/../evil.com", true},
		{"dot then slashes", "/.//evil.com", true}, // resolves to //evil.com on this origin
		{"encoded single slash", "/a%2Fb", true},
		{"double-encoded slashes", "/%252F%252Fevil.com", true}, // decodes once to /%2F%2Fevil.com
		{"encoded space", "/a%20b", true},
		{"UTF-8", "/café", true},
		{"encoded UTF-8", "/caf%C3%A9", true},
		{"space", "/a b", true},
		{"query with backslash escaped", "/?q=%5C", true},
		{"exactly MaxLength", long, true},

		// Empty and relative.
		{"empty", "", false},
		{"relative", "admin", false},
		{"dot relative", "./admin", false},
		{"dot dot relative", "../admin", false},
		{"query only", "?x=1", false},
		{"fragment only", "#x", false},
		{"leading space", " /admin", false},

		// Scheme-relative, directly or after browser normalisation.
		{"scheme-relative", "//evil.com", false},
		{"scheme-relative with path", "//evil.com/a", false},
		{"triple slash", "///evil.com", false},
		{"slash backslash", "/\\evil.com", false},
		{"backslash slash", "\\/evil.com", false},
		{"double backslash", "\\\\evil.com", false},
		{"backslash later", "/a\\b", false},
		{"slash tab slash", "/\t/evil.com", false},
		{"slash newline slash", "/\n/evil.com", false},
		{"slash CR slash", "/\r/evil.com", false},
		{"slash NUL slash", "/\x00/evil.com", false},
		{"DEL", "/\x7f/evil.com", false},

		// Encoded tricks.
		{"encoded slashes", "/%2F%2Fevil.com", false},
		{"encoded slashes lower case", "/%2f%2fevil.com", false},
		{"one encoded slash", "/%2Fevil.com", false},
		{"encoded backslash", "/%5Cevil.com", false},
		{"encoded backslash lower case", "/%5cevil.com", false},
		{"encoded backslash later", "/a/%5C/evil.com", false},
		{"encoded tab", "/%09/evil.com", false},
		{"encoded newline", "/%0A/evil.com", false},
		{"encoded NUL", "/%00", false},
		{"encoded DEL", "/%7F", false},
		{"no leading slash, encoded", "%2F%2Fevil.com", false},
		{"invalid escape", "/%zz", false},
		{"truncated escape", "/%2", false},

		// Absolute URLs and other schemes.
		{"https", "https://evil.com", false},
		{"http", "http://evil.com/", false},
		{"scheme without slashes", "https:evil.com", false},
		{"scheme with one slash", "https:/evil.com", false},
		{"javascript", "javascript:alert(1)", false},
		{"javascript upper case", "JavaScript:alert(1)", false},
		{"javascript after newline", "\njavascript:alert(1)", false},
		{"data", "data:text/html,x", false},
		{"vbscript", "vbscript:msgbox", false},
		{"userinfo", "http://user@evil.com", false},
		{"userinfo scheme-relative", "//user@evil.com", false},

		// Header injection.
		{"CRLF", "/\r\nLocation: x", false},
		{"CRLF encoded", "/%0D%0ALocation:%20x", false},
		{"LF", "/a\nSet-Cookie: x=1", false},

		// Length.
		{"one over MaxLength", long + "a", false},
		{"10 KB", "/" + strings.Repeat("a", 10<<10), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redirect.Safe(tt.in)
			want := redirect.Fallback
			if tt.kept {
				want = tt.in
			}
			if got != want {
				t.Errorf("Safe(%q) = %q, want %q", tt.in, got, want)
			}
			checkSafe(t, tt.in, got)
		})
	}
}

func TestSafeExcluded(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		excluded []string
		kept     bool
	}{
		{"prefix itself", "/_2fa", []string{"/_2fa"}, false},
		{"prefix with slash", "/_2fa/", []string{"/_2fa"}, false},
		{"login page", "/_2fa/login", []string{"/_2fa"}, false},
		{"login page with query", "/_2fa/login?next=/admin", []string{"/_2fa"}, false},
		{"prefix with query", "/_2fa?x=1", []string{"/_2fa"}, false},
		{"prefix with fragment", "/_2fa#top", []string{"/_2fa"}, false},
		{"other case", "/_2FA/Login", []string{"/_2fa"}, false},
		{"encoded slash", "/_2fa%2Flogin", []string{"/_2fa"}, false},
		{"encoded prefix", "/%5F2fa/login", []string{"/_2fa"}, false},
		{"dot segment", "/./_2fa/login", []string{"/_2fa"}, false},
		{"dot dot segment", "/x/../_2fa/login", []string{"/_2fa"}, false},
		{"encoded dot dot segment", "/x/%2E%2E/_2fa", []string{"/_2fa"}, false},
		{"doubled inner slash", "/_2fa//login", []string{"/_2fa"}, false},
		{"second prefix", "/logout", []string{"/_2fa", "/logout"}, false},

		{"longer name", "/_2faX", []string{"/_2fa"}, true},
		{"longer name with path", "/_2fa-admin/x", []string{"/_2fa"}, true},
		{"shorter name", "/_2f", []string{"/_2fa"}, true},
		{"prefix deeper in the path", "/x/_2fa/login", []string{"/_2fa"}, true},
		{"prefix in the query", "/?next=/_2fa/login", []string{"/_2fa"}, true},
		{"prefix in the fragment", "/#/_2fa", []string{"/_2fa"}, true},
		{"empty prefix is ignored", "/admin", []string{""}, true},
		{"no prefixes", "/_2fa/login", nil, true},
		{"unrelated prefixes", "/admin", []string{"/_2fa", "/logout"}, true},

		{"unsafe input with prefixes", "//evil.com/_2fa", []string{"/_2fa"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redirect.Safe(tt.in, tt.excluded...)
			want := redirect.Fallback
			if tt.kept {
				want = tt.in
			}
			if got != want {
				t.Errorf("Safe(%q, %q) = %q, want %q", tt.in, tt.excluded, got, want)
			}
			checkSafe(t, tt.in, got)
		})
	}
}

func FuzzSafe(f *testing.F) {
	for _, seed := range []string{
		"/admin?x=1", "", "/", "//evil.com", "/\\evil.com", "\\/evil.com", "/%2F%2Fevil.com",
		"%2F%2Fevil.com", "https:evil.com", "https://evil.com", "javascript:alert(1)",
		"data:text/html,x", "/\t/evil.com", "/\r\nLocation: x", "http://user@evil.com",
		"/@evil.com", "/%5Cevil.com", "/%252F%252Fevil.com", "/.//evil.com", "/_2fa/login",
		"/_2fa%2Flogin", "/x/../_2fa", "/_2faX", "/#//evil.com", "/?next=//evil.com",
		"/" + strings.Repeat("a", redirect.MaxLength),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := redirect.Safe(next, "/_2fa")
		checkSafe(t, next, got)
		if got == redirect.Fallback {
			return
		}
		// A kept target is never on the excluded pages, as the browser
		// will request them (decoded, dot segments resolved).
		u, _ := url.Parse(got)
		if p := strings.ToLower(path.Clean(u.Path)); p == "/_2fa" || strings.HasPrefix(p, "/_2fa/") {
			t.Fatalf("Safe(%q, /_2fa) = %q, which is under the excluded prefix", next, got)
		}
		// Without exclusions the result is the same or the fallback.
		if plain := redirect.Safe(next); plain != next {
			t.Fatalf("Safe(%q) = %q but Safe(%q, /_2fa) = %q", next, plain, next, got)
		}
	})
}
