package twofactor

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The public origin of a request is the scheme and host the browser used.
// Behind a load balancer that terminates TLS, Caddy sees plain HTTP and
// perhaps an inner host name; the browser still uses https and the public
// name, and says so in Origin. The cookies (Secure, the __Host- prefix),
// the origin check of every POST and the issuer taken from the host all
// follow the public origin, and all of them ask publicOrigin for it.

// publicOrigin returns the scheme ("http" or "https") and host the browser
// used. They are the connection's own (TLS or not, and Host), unless the
// request comes from a proxy the server trusts (Caddy's trusted_proxies,
// which Caddy evaluates for every request): then X-Forwarded-Proto and
// X-Forwarded-Host, when they hold a valid value, name them. From any
// other client these headers are never read. The host is without the
// scheme's default port, as in the Origin a browser sends.
func publicOrigin(r *http.Request) (scheme, host string) {
	scheme, host = "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if fromTrustedProxy(r) {
		scheme, host = forwardedOrigin(r.Header, scheme, host)
	}
	return scheme, withoutDefaultPort(scheme, host)
}

// withoutDefaultPort drops the scheme's default port from host, as
// browsers do in Origin: https://admin.example.com, never :443.
func withoutDefaultPort(scheme, host string) string {
	port := ":80"
	if scheme == "https" {
		port = ":443"
	}
	return strings.TrimSuffix(host, port)
}

// isHTTPS reports whether the browser uses HTTPS (see publicOrigin).
func isHTTPS(r *http.Request) bool {
	scheme, _ := publicOrigin(r)
	return scheme == "https"
}

// fromTrustedProxy reports whether Caddy found the request's peer among
// the server's trusted_proxies.
func fromTrustedProxy(r *http.Request) bool {
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	return trusted
}

// forwardedOrigin returns the scheme and host that the X-Forwarded-Proto
// and X-Forwarded-Host headers of h name, each in place of the given one
// when it holds a valid value. As Caddy's reverse_proxy reads them (and
// passes them on upstream), the last field line of a header counts, so the
// module and the application behind it agree; a proxy that adds its own
// line after a client's wins. That line must be exactly one value: http
// or https (in any case) for the scheme, a host name, IPv4 address or
// bracketed IPv6 address with an optional port for the host. A list, an
// empty value or anything else is ignored, as are look-alike names such as
// X_Forwarded_Proto (never read: header names are matched exactly).
func forwardedOrigin(h http.Header, scheme, host string) (string, string) {
	if v, ok := lastLine(h, "X-Forwarded-Proto"); ok {
		switch {
		case strings.EqualFold(v, "https"):
			scheme = "https"
		case strings.EqualFold(v, "http"):
			scheme = "http"
		}
	}
	if v, ok := lastLine(h, "X-Forwarded-Host"); ok && validHost(v) {
		host = v
	}
	return scheme, host
}

// lastLine returns the last field line of the canonical header name,
// without surrounding spaces and tabs.
func lastLine(h http.Header, name string) (string, bool) {
	lines := h[name]
	if len(lines) == 0 {
		return "", false
	}
	return strings.Trim(lines[len(lines)-1], " \t"), true
}

// Bounds of a host name (RFC 1035).
const (
	maxHostName  = 253
	maxHostLabel = 63
)

// validHost reports whether s is a host as a browser puts it in Origin: a
// DNS name of letters, digits, hyphens and dots, an IPv4 address, or an
// IPv6 address in brackets, each with an optional port from 1 to 65535.
func validHost(s string) bool {
	name, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		addr, err := netip.ParseAddr(s[1:end])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return false
		}
		rest := s[end+1:]
		if rest == "" {
			return true
		}
		if rest[0] != ':' {
			return false
		}
		return validPort(rest[1:])
	}
	if i := strings.IndexByte(s, ':'); i >= 0 {
		name, port = s[:i], s[i+1:]
		if !validPort(port) {
			return false
		}
	}
	return validHostName(name)
}

// validHostName reports whether s is a DNS name (an IPv4 address is one
// too, by its characters): dot-separated labels of 1 to 63 letters, digits
// and hyphens, no label starting or ending with a hyphen.
func validHostName(s string) bool {
	if s == "" || len(s) > maxHostName {
		return false
	}
	for {
		label, rest, more := strings.Cut(s, ".")
		if label == "" || len(label) > maxHostLabel || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
		if !more {
			return true
		}
		s = rest
	}
}

// validPort reports whether s is a port from 1 to 65535, in decimal
// without a sign or leading zeros.
func validPort(s string) bool {
	if s == "" || len(s) > 5 || s[0] == '0' {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n <= 65535
}
