package twofactor

import (
	"net/http"
	"strings"
	"testing"
)

func TestFirstSignInEnrollsAndOpensTheRoute(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)

	if r := b.get("/"); r.status != http.StatusOK || r.body != "public" {
		t.Fatalf("public page: %d %q", r.status, r.body)
	}
	r := b.get("/admin/reports?year=2026")
	if r.status != http.StatusFound || r.location() != "/_2fa/login?next=%2Fadmin%2Freports%3Fyear%3D2026" {
		t.Fatalf("protected page without session: %d to %q", r.status, r.location())
	}
	secret, codes := b.enroll("alice")
	if len(secret) != 20 {
		t.Errorf("secret has %d bytes, want 20", len(secret))
	}
	if len(codes) != 10 {
		t.Errorf("got %d recovery codes, want 10", len(codes))
	}
	r = b.get("/admin/")
	if r.status != http.StatusOK || !strings.Contains(r.body, "user=alice method=setup") {
		t.Fatalf("protected page after enrollment: %d %q", r.status, r.body)
	}
}
