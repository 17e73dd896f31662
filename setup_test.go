package twofactor

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

func TestSetupPageNeverFailsOnTheIssuer(t *testing.T) {
	s := newClockSite(t, nil)
	for name, tc := range map[string]struct {
		issuer, host string
		wantIssuer   string
		wantQR       bool
	}{
		"host":                            {host: "admin.example.com:8443", wantIssuer: "admin.example.com", wantQR: true},
		"host too long for an issuer":     {host: strings.Repeat("a", 250) + ".example", wantIssuer: "Caddy", wantQR: true},
		"issuer too long for any QR code": {issuer: strings.Repeat("é", 1200), host: "example.com", wantIssuer: strings.Repeat("é", 1200)},
	} {
		t.Run(name, func(t *testing.T) {
			s.h.Issuer = tc.issuer // no request is served meanwhile
			r := httptest.NewRequest(http.MethodGet, "/_2fa/setup", nil)
			r.Host = tc.host
			w := httptest.NewRecorder()
			sess := &store.Session{User: "alice", Stage: store.StagePending}
			if err := s.h.renderSetup(w, r, http.StatusOK, sess, &store.User{Name: "alice"}, []byte("12345678901234567890"), ""); err != nil {
				t.Fatalf("setup page: %v", err)
			}
			body := w.Body.String()
			if w.Code != http.StatusOK || !strings.Contains(body, `id="totp-secret"`) {
				t.Fatalf("setup page: %d without the key", w.Code)
			}
			if hasQR := strings.Contains(body, `class="qr"`); hasQR != tc.wantQR || hasQR == strings.Contains(body, `id="no-qr"`) {
				t.Errorf("QR code shown: %v, want %v", hasQR, tc.wantQR)
			}
			if !strings.Contains(body, "("+"alice) to an authenticator") && tc.wantQR {
				t.Errorf("QR alt text lost")
			}
			if tc.wantQR && !strings.Contains(body, "add "+tc.wantIssuer+" (alice)") {
				t.Errorf("issuer is not %q", tc.wantIssuer)
			}
		})
	}
}

func TestIssuerIsBounded(t *testing.T) {
	for issuer, ok := range map[string]bool{
		"Example Admin":          true,
		strings.Repeat("x", 100): true,
		strings.Repeat("x", 101): false,
		"line\nbreak":            false,
	} {
		h := &TwoFactor{Issuer: issuer}
		h.applyDefaults()
		if err := h.Validate(); (err == nil) != ok {
			t.Errorf("issuer of %d bytes: Validate() = %v", len(issuer), err)
		}
	}
}
