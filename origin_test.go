package twofactor

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// requestFrom is a request to host as Caddy hands it to the handler, from
// a peer that Caddy found among trusted_proxies or not, with the header
// lines given as "Name: value" (a name is kept as written, so look-alike
// names reach the handler as a client sent them).
func requestFrom(trusted bool, host string, lines ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/_2fa/login", nil)
	r.Host = host
	for _, l := range lines {
		name, value, _ := strings.Cut(l, ":")
		r.Header[name] = append(r.Header[name], strings.TrimPrefix(value, " "))
	}
	ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.TrustedProxyVarKey: trusted})
	return r.WithContext(ctx)
}

func TestPublicOrigin(t *testing.T) {
	const xfp, xfh = "X-Forwarded-Proto: ", "X-Forwarded-Host: "
	for name, tc := range map[string]struct {
		untrusted  bool
		tls        bool
		host       string // the connection's; default inner:8080
		lines      []string
		wantScheme string
		wantHost   string
	}{
		"no headers":                  {wantScheme: "http", wantHost: "inner:8080"},
		"no headers, TLS":             {tls: true, wantScheme: "https", wantHost: "inner:8080"},
		"both":                        {lines: []string{xfp + "https", xfh + "admin.example.com"}, wantScheme: "https", wantHost: "admin.example.com"},
		"proto only":                  {lines: []string{xfp + "https"}, wantScheme: "https", wantHost: "inner:8080"},
		"host only":                   {lines: []string{xfh + "admin.example.com"}, wantScheme: "http", wantHost: "admin.example.com"},
		"proto in capitals":           {lines: []string{xfp + "HTTPS"}, wantScheme: "https", wantHost: "inner:8080"},
		"proto with spaces":           {lines: []string{xfp + " \thttps "}, wantScheme: "https", wantHost: "inner:8080"},
		"proto http over TLS":         {tls: true, lines: []string{xfp + "http"}, wantScheme: "http", wantHost: "inner:8080"},
		"host with port":              {lines: []string{xfh + "admin.example.com:8443"}, wantScheme: "http", wantHost: "admin.example.com:8443"},
		"host IPv4":                   {lines: []string{xfh + "192.0.2.7:443"}, wantScheme: "http", wantHost: "192.0.2.7:443"},
		"host IPv6":                   {lines: []string{xfh + "[2001:db8::1]:8443"}, wantScheme: "http", wantHost: "[2001:db8::1]:8443"},
		"host IPv6 without port":      {lines: []string{xfh + "[2001:db8::1]"}, wantScheme: "http", wantHost: "[2001:db8::1]"},
		"default port":                {lines: []string{xfp + "https", xfh + "admin.example.com:443"}, wantScheme: "https", wantHost: "admin.example.com"},
		"default port of the other":   {lines: []string{xfp + "https", xfh + "admin.example.com:80"}, wantScheme: "https", wantHost: "admin.example.com:80"},
		"connection's default port":   {untrusted: true, host: "inner:80", wantScheme: "http", wantHost: "inner"},
		"host punycode":               {lines: []string{xfh + "xn--bcher-kva.example"}, wantScheme: "http", wantHost: "xn--bcher-kva.example"},
		"last line wins, as in Caddy": {lines: []string{xfp + "http", xfp + "https", xfh + "evil.example", xfh + "admin.example.com"}, wantScheme: "https", wantHost: "admin.example.com"},
		"last line invalid":           {lines: []string{xfp + "https", xfp + "ftp", xfh + "admin.example.com", xfh + "a b"}, wantScheme: "http", wantHost: "inner:8080"},

		// From a client Caddy does not trust, nothing is read.
		"untrusted":     {untrusted: true, lines: []string{xfp + "https", xfh + "admin.example.com"}, wantScheme: "http", wantHost: "inner:8080"},
		"untrusted TLS": {untrusted: true, tls: true, lines: []string{xfp + "http", xfh + "evil.example"}, wantScheme: "https", wantHost: "inner:8080"},

		// Look-alike names are other headers.
		"underscores":     {lines: []string{"X_Forwarded_Proto: https", "X_Forwarded_Host: evil.example"}, wantScheme: "http", wantHost: "inner:8080"},
		"underscores, Go": {lines: []string{"X_forwarded_proto: https", "X_forwarded_host: evil.example"}, wantScheme: "http", wantHost: "inner:8080"},
		"Forwarded":       {lines: []string{"Forwarded: proto=https;host=evil.example"}, wantScheme: "http", wantHost: "inner:8080"},
		"X-Forwarded-Ssl": {lines: []string{"X-Forwarded-Ssl: on", "X-Forwarded-Scheme: https"}, wantScheme: "http", wantHost: "inner:8080"},

		// Anything but one valid value falls back to the connection's.
		"proto list":          {lines: []string{xfp + "https, http"}, wantScheme: "http", wantHost: "inner:8080"},
		"proto list, TLS":     {tls: true, lines: []string{xfp + "http,https"}, wantScheme: "https", wantHost: "inner:8080"},
		"proto empty":         {tls: true, lines: []string{xfp}, wantScheme: "https", wantHost: "inner:8080"},
		"proto other":         {lines: []string{xfp + "wss"}, wantScheme: "http", wantHost: "inner:8080"},
		"proto with suffix":   {lines: []string{xfp + "https:"}, wantScheme: "http", wantHost: "inner:8080"},
		"proto with NUL":      {lines: []string{xfp + "https\x00"}, wantScheme: "http", wantHost: "inner:8080"},
		"host list":           {lines: []string{xfh + "admin.example.com, evil.example"}, wantScheme: "http", wantHost: "inner:8080"},
		"host empty":          {lines: []string{xfh}, wantScheme: "http", wantHost: "inner:8080"},
		"host with path":      {lines: []string{xfh + "evil.example/x"}, wantScheme: "http", wantHost: "inner:8080"},
		"host with user":      {lines: []string{xfh + "admin.example.com@evil.example"}, wantScheme: "http", wantHost: "inner:8080"},
		"host with scheme":    {lines: []string{xfh + "https://evil.example"}, wantScheme: "http", wantHost: "inner:8080"},
		"host with space":     {lines: []string{xfh + "evil example"}, wantScheme: "http", wantHost: "inner:8080"},
		"host with CRLF":      {lines: []string{xfh + "evil.example\r\nX: y"}, wantScheme: "http", wantHost: "inner:8080"},
		"host trailing dot":   {lines: []string{xfh + "admin.example.com."}, wantScheme: "http", wantHost: "inner:8080"},
		"host empty label":    {lines: []string{xfh + "admin..example"}, wantScheme: "http", wantHost: "inner:8080"},
		"host hyphen label":   {lines: []string{xfh + "-admin.example"}, wantScheme: "http", wantHost: "inner:8080"},
		"host underscore":     {lines: []string{xfh + "ad_min.example"}, wantScheme: "http", wantHost: "inner:8080"},
		"host non-ASCII":      {lines: []string{xfh + "bücher.example"}, wantScheme: "http", wantHost: "inner:8080"},
		"host label too long": {lines: []string{xfh + strings.Repeat("a", 64) + ".example"}, wantScheme: "http", wantHost: "inner:8080"},
		"host too long":       {lines: []string{xfh + strings.Repeat("a.", 127) + "ab"}, wantScheme: "http", wantHost: "inner:8080"},
		"port empty":          {lines: []string{xfh + "admin.example.com:"}, wantScheme: "http", wantHost: "inner:8080"},
		"port zero":           {lines: []string{xfh + "admin.example.com:0"}, wantScheme: "http", wantHost: "inner:8080"},
		"port too big":        {lines: []string{xfh + "admin.example.com:65536"}, wantScheme: "http", wantHost: "inner:8080"},
		"port leading zero":   {lines: []string{xfh + "admin.example.com:0443"}, wantScheme: "http", wantHost: "inner:8080"},
		"port signed":         {lines: []string{xfh + "admin.example.com:+443"}, wantScheme: "http", wantHost: "inner:8080"},
		"two ports":           {lines: []string{xfh + "admin.example.com:443:443"}, wantScheme: "http", wantHost: "inner:8080"},
		"IPv6 bare":           {lines: []string{xfh + "2001:db8::1"}, wantScheme: "http", wantHost: "inner:8080"},
		"IPv6 zone":           {lines: []string{xfh + "[fe80::1%25eth0]"}, wantScheme: "http", wantHost: "inner:8080"},
		"IPv6 unclosed":       {lines: []string{xfh + "[2001:db8::1"}, wantScheme: "http", wantHost: "inner:8080"},
		"IPv6 trailing junk":  {lines: []string{xfh + "[2001:db8::1]x"}, wantScheme: "http", wantHost: "inner:8080"},
		"IPv4 in brackets":    {lines: []string{xfh + "[192.0.2.7]"}, wantScheme: "http", wantHost: "inner:8080"},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.host == "" {
				tc.host = "inner:8080"
			}
			r := requestFrom(!tc.untrusted, tc.host, tc.lines...)
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			scheme, host := publicOrigin(r)
			if scheme != tc.wantScheme || host != tc.wantHost {
				t.Fatalf("publicOrigin = %s://%s, want %s://%s", scheme, host, tc.wantScheme, tc.wantHost)
			}
		})
	}
}

// TestPublicOriginOutsideCaddy: a request without Caddy's variables (no
// server evaluated trusted_proxies) is not from a trusted proxy.
func TestPublicOriginOutsideCaddy(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Host = "inner"
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("X-Forwarded-Host", "evil.example")
	if scheme, host := publicOrigin(r); scheme != "http" || host != "inner" {
		t.Fatalf("publicOrigin = %s://%s, want the connection's http://inner", scheme, host)
	}
}

// FuzzForwardedOrigin feeds arbitrary X-Forwarded-Proto and
// X-Forwarded-Host lines to the parser: it must never panic, the scheme is
// always http or https, and a host is either the connection's or the last
// line of X-Forwarded-Host, one that makes an origin URL with exactly that
// host and nothing else (so it compares with a browser's Origin).
func FuzzForwardedOrigin(f *testing.F) {
	for _, seed := range [][3]string{
		{"https", "", "admin.example.com"},
		{"HTTPS", "http", "admin.example.com:8443"},
		{"https, http", "", "a.example, b.example"},
		{"", "", "[2001:db8::1]:443"},
		{"http", "ftp", "[fe80::1%25eth0]"},
		{"https", "", "evil.example/x?y#z"},
		{"https", "", "user@evil.example"},
		{"https", "", "admin.example.com.:0"},
		{"\thttps ", "", " admin.example.com "},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, proto, proto2, host string) {
		h := http.Header{"X-Forwarded-Proto": {proto}, "X-Forwarded-Host": {host}}
		if proto2 != "" {
			h["X-Forwarded-Proto"] = append(h["X-Forwarded-Proto"], proto2)
		}
		const connHost = "inner.test:8080"
		scheme, got := forwardedOrigin(h, "http", connHost)
		if scheme != "http" && scheme != "https" {
			t.Fatalf("scheme %q from %q", scheme, h["X-Forwarded-Proto"])
		}
		last := strings.Trim(h["X-Forwarded-Proto"][len(h["X-Forwarded-Proto"])-1], " \t")
		if scheme == "https" && !strings.EqualFold(last, "https") {
			t.Fatalf("https from %q", h["X-Forwarded-Proto"])
		}
		if got == connHost {
			return
		}
		if got != strings.Trim(host, " \t") {
			t.Fatalf("host %q from X-Forwarded-Host %q", got, host)
		}
		u, err := url.Parse(scheme + "://" + got)
		if err != nil || u.Host != got || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			t.Fatalf("host %q does not make an origin: %#v, %v", got, u, err)
		}
		if strings.ContainsAny(got, ", \t\r\n\x00@/\\?#%_") {
			t.Fatalf("host %q holds a character no host has", got)
		}
	})
}

// TestPublicOriginAllocatesNothing: the gate asks for the cookie name, so
// publicOrigin runs on every request and must stay free of allocations.
func TestPublicOriginAllocatesNothing(t *testing.T) {
	r := requestFrom(true, "inner:8080", "X-Forwarded-Proto: https", "X-Forwarded-Host: admin.example.com:8443")
	if n := testing.AllocsPerRun(100, func() { publicOrigin(r) }); n != 0 {
		t.Fatalf("publicOrigin allocates %v times per call", n)
	}
}
