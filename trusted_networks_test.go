package twofactor

import (
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestTrustedNetworksSkipTheGate runs the README's trusted-networks
// example: a named matcher `not client_ip ...` keeps the gate off for
// those networks, and the client address is the connection's unless
// trusted_proxies names the peer, so a forged X-Forwarded-For skips
// nothing; with the peer trusted, its header decides.
func TestTrustedNetworksSkipTheGate(t *testing.T) {
	routes := func(outside string) string {
		return "@outside not client_ip " + outside + "\n\t" + defaultRoutes
	}
	// The test client connects from 127.0.0.1, inside private_ranges.
	startSite(t, siteConfig{matcher: "@outside", routes: routes("private_ranges")})
	wantStatus(t, "from a private network", newBrowser(t).get("/admin/"), http.StatusOK)

	startSite(t, siteConfig{matcher: "@outside", routes: routes("10.0.0.0/8")})
	b := newBrowser(t)
	wantGoesTo(t, "from outside", b.get("/admin/"), http.StatusFound, "/_2fa/login?next=%2Fadmin%2F")
	wantGoesTo(t, "from outside, claiming a trusted address", b.get("/admin/", "X-Forwarded-For: 10.1.2.3"), http.StatusFound, "/_2fa/login?next=%2Fadmin%2F")

	// Behind a proxy: trusted_proxies names the proxy (here the test
	// client itself), and its X-Forwarded-For decides.
	startSite(t, siteConfig{matcher: "@outside", routes: routes("10.0.0.0/8"), global: []string{"servers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t\ttrusted_proxies_strict\n\t}"}})
	wantStatus(t, "through the trusted proxy, from a trusted network", newBrowser(t).get("/admin/", "X-Forwarded-For: 10.1.2.3"), http.StatusOK)
	wantGoesTo(t, "through the trusted proxy, from outside", newBrowser(t).get("/admin/", "X-Forwarded-For: 192.0.2.7"), http.StatusFound, "/_2fa/login?next=%2Fadmin%2F")
	wantGoesTo(t, "a forged entry before the proxy's", newBrowser(t).get("/admin/", "X-Forwarded-For: 10.1.2.3, 192.0.2.7"), http.StatusFound, "/_2fa/login?next=%2Fadmin%2F")

	// The short form is not Caddyfile.
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte("example.com {\n\ttwo_factor not client_ip private_ranges {\n\t\tuser alice "+testHash()+"\n\t}\n}\n"), map[string]any{"filename": "Caddyfile"})
	if err == nil || !strings.Contains(err.Error(), "Caddyfile:2") {
		t.Fatalf("two_factor not client_ip ...: %v", err)
	}
	t.Logf("the short form: %v", err)
}
