package twofactor

import (
	"net/http"
	"path"
	"runtime"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// pathPatterns matches request paths as caddyhttp.MatchPath matches them,
// for the step-up rules, which the gate asks about on every request:
// MatchPath cleans the path again for each pattern, which costs a third of
// a signed-in request with a few rules. Here the path is lowered and
// cleaned once per request (see matchablePath) and each pattern is one
// comparison of the kind MatchPath would make. Patterns whose handling
// depends on more than the cleaned path (a placeholder, an escape
// sequence, a double slash) and every pattern on Windows, where Caddy also
// rewrites the path's separators, are left to MatchPath itself.
type pathPatterns struct {
	fast []pathPattern
	slow caddyhttp.MatchPath
}

type patternKind uint8

const (
	patternAny patternKind = iota
	patternContains
	patternSuffix
	patternPrefix
	patternGlob
)

type pathPattern struct {
	kind patternKind
	text string
}

// newPathPatterns compiles patterns (which it does not change).
func newPathPatterns(patterns []string) (pathPatterns, error) {
	var pp pathPatterns
	for _, p := range patterns {
		if runtime.GOOS == "windows" || strings.ContainsAny(p, "{%") || strings.Contains(p, "//") {
			pp.slow = append(pp.slow, p)
			continue
		}
		p = strings.ToLower(p)
		stars := strings.Count(p, "*")
		switch {
		case p == "*":
			pp.fast = append(pp.fast, pathPattern{kind: patternAny})
		case stars == 2 && strings.HasPrefix(p, "*") && strings.HasSuffix(p, "*"):
			pp.fast = append(pp.fast, pathPattern{patternContains, p[1 : len(p)-1]})
		case stars == 1 && strings.HasPrefix(p, "*"):
			pp.fast = append(pp.fast, pathPattern{patternSuffix, p[1:]})
		case stars == 1 && strings.HasSuffix(p, "*"):
			pp.fast = append(pp.fast, pathPattern{patternPrefix, p[:len(p)-1]})
		default:
			pp.fast = append(pp.fast, pathPattern{patternGlob, p})
		}
	}
	if pp.slow != nil {
		pp.slow = slices.Clone(pp.slow) // Provision lowers them in place
		if err := pp.slow.Provision(caddy.Context{}); err != nil {
			return pathPatterns{}, err
		}
	}
	return pp, nil
}

// matchablePath is a request path as MatchPath compares it with a pattern
// without a double slash: lowered, cleaned, with its trailing slash kept.
// It allocates only for a path that is not already so.
func matchablePath(p string) string {
	if plainPath(p) {
		return p
	}
	p = strings.ToLower(p)
	cleaned := path.Clean(p)
	if cleaned == "/" || !strings.HasSuffix(p, "/") {
		return cleaned
	}
	if len(p) == len(cleaned)+1 && p[:len(cleaned)] == cleaned {
		return p
	}
	return cleaned + "/"
}

// match reports whether a pattern matches: p is matchablePath of r's path.
func (pp *pathPatterns) match(p string, r *http.Request) bool {
	for _, pat := range pp.fast {
		var ok bool
		switch pat.kind {
		case patternAny:
			ok = true
		case patternContains:
			ok = strings.Contains(p, pat.text)
		case patternSuffix:
			ok = strings.HasSuffix(p, pat.text)
		case patternPrefix:
			ok = strings.HasPrefix(p, pat.text)
		default:
			ok, _ = path.Match(pat.text, p)
		}
		if ok {
			return true
		}
	}
	return pp.slow != nil && pp.slow.Match(r)
}

// plainPath reports whether p is its own matchablePath: it starts with /,
// has no upper-case or non-ASCII letter, and no empty, . or .. segment
// (a trailing slash is kept as it is).
func plainPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 1; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 0x80 || 'A' <= c && c <= 'Z':
			return false
		case c == '/' && p[i-1] == '/':
			return false
		case c == '.' && p[i-1] == '/' && (i+1 == len(p) || p[i+1] == '/' || p[i+1] == '.' && (i+2 == len(p) || p[i+2] == '/')):
			return false
		}
	}
	return true
}
