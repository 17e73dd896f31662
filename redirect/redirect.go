// Package redirect decides where a user may be sent after signing in. The
// target comes from the request (a "next" parameter), so it is attacker
// controlled: only a same-origin, absolute path is ever returned.
package redirect

import (
	"net/url"
	"path"
	"strings"
)

// Fallback is where users go when the requested target is not safe.
const Fallback = "/"

// MaxLength bounds a target; longer ones fall back.
const MaxLength = 2048

// Safe returns next if it is a same-origin path (with an optional query),
// and [Fallback] otherwise. Paths under any of the excluded prefixes also
// fall back, so that a sign-in never ends on a sign-in page. Prefixes are
// matched against the path as the browser will request it and the server
// route it: decoded, with dot segments resolved, without query or fragment.
func Safe(next string, excluded ...string) string {
	p, ok := safePath(next)
	if !ok {
		return Fallback
	}
	for _, prefix := range excluded {
		if prefix != "" && hasPathPrefixFold(p, prefix) {
			return Fallback
		}
	}
	return next
}

// safePath reports whether next is safe and returns its decoded, cleaned
// path.
func safePath(next string) (string, bool) {
	if !isSafe(next) {
		return "", false
	}
	u, err := url.Parse(next)
	if err != nil {
		return "", false
	}
	return path.Clean(u.Path), true
}

func isSafe(next string) bool {
	if next == "" || len(next) > MaxLength || next[0] != '/' {
		return false
	}
	// Browsers treat a backslash like a slash and drop tabs and newlines, so
	// "/\host" and "/\t/host" are scheme-relative to them: refuse every
	// backslash and control character outright.
	for i := 0; i < len(next); i++ {
		if c := next[i]; c == '\\' || c < 0x20 || c == 0x7f {
			return false
		}
	}
	if len(next) > 1 && next[1] == '/' {
		return false
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	// Reject encoded tricks that a later decoding step (an upstream, a
	// browser) could turn into "//host" or "/\host".
	decoded, err := url.PathUnescape(u.EscapedPath())
	if err != nil {
		return false
	}
	if strings.HasPrefix(decoded, "//") || strings.ContainsAny(decoded, "\\") {
		return false
	}
	for i := 0; i < len(decoded); i++ {
		if c := decoded[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

func hasPathPrefixFold(p, prefix string) bool {
	if len(p) < len(prefix) || !strings.EqualFold(p[:len(prefix)], prefix) {
		return false
	}
	return len(p) == len(prefix) || p[len(prefix)] == '/'
}
