package twofactor

import (
	"net/http"
	"strings"
	"testing"
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
		// What the header says, read part by part: the cookie counts only
		// when it is there exactly once, with a non-empty bounded value.
		var values []string
		for _, part := range strings.Split(header, ";") {
			if k, v, found := strings.Cut(strings.TrimSpace(part), "="); found && k == sessionCookie {
				values = append(values, v)
			}
		}
		wantOK := len(values) == 1 && values[0] != "" && len(values[0]) <= maxCookieValue
		if ok != wantOK || (ok && value != values[0]) {
			t.Fatalf("cookieValue(%q) = %q, %v; the header holds %q", header, value, ok, values)
		}
	})
}
