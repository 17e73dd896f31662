package twofactor

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// publicSite is where the browser behind the test's front proxy thinks it
// is; the proxy talks plain HTTP to the test Caddy on localhost.
const publicSite = "https://admin.example.com"

// trustLocalProxies is the global option that makes the test client (on
// 127.0.0.1) a trusted proxy.
const trustLocalProxies = "servers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}"

// frontProxy plays a load balancer that terminates TLS in front of the
// test Caddy: it adds its header lines to every request, gives POSTs the
// Origin of the browser's page (when origin is set), and keeps every
// Set-Cookie line Caddy answers. (Go's cookie jar, like browsers, sends
// Secure cookies to localhost over plain HTTP, so the browser's jar keeps
// working.)
type frontProxy struct {
	lines  []string // "Name: value", the name sent as written
	origin string

	mu         sync.Mutex
	setCookies []string
}

func (p *frontProxy) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for _, l := range p.lines {
		name, value, _ := strings.Cut(l, ":")
		req.Header[name] = append(req.Header[name], strings.TrimSpace(value))
	}
	if p.origin != "" && req.Header.Get("Origin") != "" {
		req.Header.Set("Origin", p.origin)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		p.mu.Lock()
		p.setCookies = append(p.setCookies, resp.Header.Values("Set-Cookie")...)
		p.mu.Unlock()
	}
	return resp, err
}

// cookies returns the Set-Cookie lines seen so far.
func (p *frontProxy) cookies() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.setCookies...)
}

// behindProxy returns a browser whose requests pass through a frontProxy.
func behindProxy(t *testing.T, origin string, lines ...string) (*browser, *frontProxy) {
	t.Helper()
	b := newBrowser(t)
	p := &frontProxy{lines: lines, origin: origin}
	b.client.Transport = p
	return b, p
}

// setupIssuer returns the issuer named on a setup page.
func setupIssuer(t *testing.T, page response) string {
	t.Helper()
	_, rest, ok := strings.Cut(page.body, "alt=\"QR code to add ")
	issuer, _, ok2 := strings.Cut(rest, " (")
	if !ok || !ok2 {
		t.Fatalf("no issuer on the setup page (status %d):\n%s", page.status, page.body)
	}
	return issuer
}

func TestSignInBehindATrustedProxy(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*", global: []string{trustLocalProxies}})
	forwarded := []string{"X-Forwarded-Proto: https", "X-Forwarded-Host: admin.example.com"}
	b, front := behindProxy(t, publicSite, forwarded...)

	// The whole first sign-in, over plain HTTP, with the browser's
	// "Origin: https://admin.example.com" on every POST.
	if r := b.login("alice", testPassword, "/admin/"); r.status != http.StatusSeeOther || r.location() != "/_2fa/setup" {
		t.Fatalf("login: %d to %q, want 303 to /_2fa/setup", r.status, r.location())
	}
	page := b.get("/_2fa/setup")
	if got := setupIssuer(t, page); got != "admin.example.com" {
		t.Errorf("issuer %q, want the forwarded host admin.example.com", got)
	}
	secret, err := totpDecode(secretPattern.FindStringSubmatch(page.body)[1])
	if err != nil {
		t.Fatal(err)
	}
	if r := b.post("/_2fa/setup", url.Values{"csrf": {b.csrfFrom(page)}, "code": {b.code("alice", secret)}}); r.status != http.StatusOK {
		t.Fatalf("setup: %d", r.status)
	}
	if r := b.get("/admin/"); r.status != http.StatusOK || !strings.Contains(r.body, "user=alice") {
		t.Fatalf("after setup: %d %q", r.status, r.body)
	}
	// A later sign-in, through the confirm page.
	later, laterFront := behindProxy(t, publicSite, forwarded...)
	if r := later.signIn("alice", secret); r.status != http.StatusSeeOther {
		t.Fatalf("confirm: %d", r.status)
	}
	if r := later.get("/admin/"); r.status != http.StatusOK || !strings.Contains(r.body, "user=alice") {
		t.Fatalf("after confirm: %d %q", r.status, r.body)
	}

	cookies := append(front.cookies(), laterFront.cookies()...)
	names := map[string]bool{}
	for _, c := range cookies {
		name, _, _ := strings.Cut(c, "=")
		names[name] = true
		if !strings.HasPrefix(name, "__Host-") || !strings.Contains(c, "; Secure") || !strings.Contains(c, "; Path=/") || strings.Contains(c, "Domain=") {
			t.Errorf("cookie behind a trusted HTTPS proxy: %q", c)
		}
	}
	if !names[preCookieSecure] || !names[sessionCookieSecure] {
		t.Errorf("cookies set: %v, want %s and %s", names, preCookieSecure, sessionCookieSecure)
	}
}

// TestSignInThroughACaddyFront runs the README's setup: a Caddy site that
// terminates TLS and proxies to a plain-HTTP site with two_factor, which
// trusts it. The browser only ever talks HTTPS to the front.
func TestSignInThroughACaddyFront(t *testing.T) {
	cert, key := selfSignedCertificate(t, "localhost")
	startSite(t, siteConfig{matcher: "/admin/*", global: []string{trustLocalProxies}, more: fmt.Sprintf(`
https://localhost:%d {
	tls %s %s
	reverse_proxy localhost:%d
}
`, testPorts().https, cert, key, testPorts().http)})
	b := newBrowser(t)
	b.base = fmt.Sprintf("https://localhost:%d", testPorts().https)
	b.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // a certificate made by the test

	page := b.get("/_2fa/login")
	if got := page.header.Get("Set-Cookie"); !strings.HasPrefix(got, preCookieSecure+"=") || !strings.Contains(got, "; Secure") {
		t.Fatalf("pre-login cookie through the front: %q", got)
	}
	secret, _ := b.enroll("dave")
	if r := b.get("/admin/"); r.status != http.StatusOK || !strings.Contains(r.body, "user=dave") {
		t.Fatalf("after setup: %d %q", r.status, r.body)
	}
	u, err := url.Parse(b.base)
	if err != nil {
		t.Fatal(err)
	}
	if cookies := b.client.Jar.Cookies(u); !slices.ContainsFunc(cookies, func(c *http.Cookie) bool { return c.Name == sessionCookieSecure }) {
		t.Fatalf("cookies after sign-in: %v, want %s", cookies, sessionCookieSecure)
	}
	later := newBrowser(t)
	later.base, later.client.Transport = b.base, b.client.Transport
	if r := later.signIn("dave", secret); r.status != http.StatusSeeOther {
		t.Fatalf("confirm through the front: %d", r.status)
	}
}

// TestAttackForgedForwardedHeaders: X-Forwarded-* from a client that Caddy
// does not trust, or that no proxy would send, change nothing.
func TestAttackForgedForwardedHeaders(t *testing.T) {
	forged := []string{"X-Forwarded-Proto: https", "X-Forwarded-Host: admin.example.com"}
	for name, tc := range map[string]struct {
		global []string
		lines  []string
	}{
		"no trusted_proxies": {lines: forged},
		"another network trusted": {
			global: []string{"servers {\n\t\ttrusted_proxies static 192.0.2.0/24\n\t}"},
			lines:  forged,
		},
		"look-alike names from a trusted proxy": {
			global: []string{trustLocalProxies},
			lines:  []string{"X_Forwarded_Proto: https", "X_Forwarded_Host: admin.example.com", "Forwarded: proto=https;host=admin.example.com"},
		},
		"lists from a trusted proxy": {
			global: []string{trustLocalProxies},
			lines:  []string{"X-Forwarded-Proto: https, https", "X-Forwarded-Host: admin.example.com, admin.example.com"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			startSite(t, siteConfig{matcher: "/admin/*", global: tc.global})

			// The page of another origin is refused.
			forger, _ := behindProxy(t, publicSite, tc.lines...)
			page := forger.get("/_2fa/login")
			r := forger.post("/_2fa/login", url.Values{"csrf": {forger.csrfFrom(page)}, "username": {"bob"}, "password": {testPassword}})
			if r.status != http.StatusForbidden {
				t.Fatalf("POST with Origin %s: %d, want 403", publicSite, r.status)
			}

			// From the connection's own origin, sign-in works as without
			// the headers: plain cookies, the issuer from Host.
			b, front := behindProxy(t, "", tc.lines...)
			if r := b.login("carol", testPassword, "/admin/"); r.status != http.StatusSeeOther || r.location() != "/_2fa/setup" {
				t.Fatalf("login: %d to %q", r.status, r.location())
			}
			if got := setupIssuer(t, b.get("/_2fa/setup")); got != "localhost" {
				t.Errorf("issuer %q, want localhost from Host", got)
			}
			cookies := front.cookies()
			if len(cookies) < 2 {
				t.Fatalf("cookies set: %q", cookies)
			}
			for _, c := range cookies {
				if strings.HasPrefix(c, "__Host-") || strings.Contains(c, "Secure") {
					t.Errorf("cookie on plain HTTP: %q", c)
				}
			}
		})
	}
}

func TestLaxTrustedProxiesAreWarnedAbout(t *testing.T) {
	for _, tc := range []struct {
		name string
		srv  *caddyhttp.Server
		warn bool
	}{
		{"no trusted proxies", &caddyhttp.Server{}, false},
		{"trusted proxies, strict", &caddyhttp.Server{TrustedProxiesRaw: []byte(`{"source":"static"}`), TrustedProxiesStrict: 1}, false},
		{"trusted proxies, not strict", &caddyhttp.Server{TrustedProxiesRaw: []byte(`{"source":"static"}`)}, true},
	} {
		core, logs := observer.New(zap.WarnLevel)
		warnLaxTrustedProxies(context.WithValue(context.Background(), caddyhttp.ServerCtxKey, tc.srv), zap.New(core))
		if warned := logs.FilterMessageSnippet("trusted_proxies_strict").Len() == 1; warned != tc.warn {
			t.Errorf("%s: warned %v, want %v", tc.name, warned, tc.warn)
		}
	}
}
