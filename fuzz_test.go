package twofactor

import (
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// FuzzCookieValue feeds arbitrary Cookie headers to the cookie reader the
// gate uses: it must never panic, and it returns a value only when the
// cookie appears exactly once with a bounded, non-empty value.
func FuzzCookieValue(f *testing.F) {
	for _, seed := range []string{
		"two_factor=abc",
		"two_factor=abc; two_factor=abc",
		"a=1; two_factor=; b=2",
		"two_factor",
		";;;=;two_factor==;",
		"two_factor=" + strings.Repeat("x", 300),
		"TWO_FACTOR=abc",
		" two_factor = abc ",
		"two_factor=a\x00b",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := &http.Request{Header: http.Header{"Cookie": {header}}}
		value, ok := cookieValue(r, sessionCookie)
		if !ok {
			return
		}
		if value == "" || len(value) > maxCookieValue {
			t.Fatalf("accepted value %q", value)
		}
		if n := strings.Count(header, sessionCookie+"="); n < 1 {
			t.Fatalf("value %q from a header without the cookie: %q", value, header)
		}
		if _, ok := store.ParseSessionToken(value); ok && len(value) != store.TokenLength {
			t.Fatalf("session key from a value of length %d", len(value))
		}
	})
}
