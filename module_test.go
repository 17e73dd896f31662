package twofactor

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	boltstore "github.com/caddy-two-factor/caddy-two-factor/store/bolt"
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

	login := b.login("alice", testPassword, "/admin/reports?year=2026")
	if login.status != http.StatusSeeOther || login.location() != "/_2fa/setup" {
		t.Fatalf("password step: %d to %q", login.status, login.location())
	}
	if r := b.get("/admin/reports"); r.status != http.StatusFound {
		t.Fatalf("password-only session reached the route: %d", r.status)
	}

	setup := b.get("/_2fa/setup")
	secret := secretPattern.FindStringSubmatch(setup.body)
	if setup.status != http.StatusOK || secret == nil {
		t.Fatalf("setup page: %d\n%s", setup.status, setup.body)
	}
	if !regexp.MustCompile(`<img[^>]+src="data:image/png;base64,[A-Za-z0-9+/=&#;]+"[^>]+alt="[^"]+"`).MatchString(setup.body) {
		t.Errorf("setup page has no QR code image:\n%s", setup.body)
	}
	if again := b.get("/_2fa/setup"); secretPattern.FindStringSubmatch(again.body)[1] != secret[1] {
		t.Errorf("reloading setup changed the pending secret")
	}
	key, err := totpDecode(secret[1])
	if err != nil {
		t.Fatal(err)
	}

	wrong := b.post("/_2fa/setup", url.Values{"csrf": {b.csrfFrom(setup)}, "code": {"000000"}})
	if wrong.status != http.StatusUnauthorized || !strings.Contains(wrong.body, secret[1]) {
		t.Fatalf("wrong setup code: %d", wrong.status)
	}
	if r := b.get("/admin/"); r.status != http.StatusFound {
		t.Fatalf("wrong setup code opened the route: %d", r.status)
	}

	done := b.post("/_2fa/setup", url.Values{"csrf": {b.csrfFrom(setup)}, "code": {b.code("alice", key)}})
	codes := recoveryPattern.FindAllStringSubmatch(done.body, -1)
	if done.status != http.StatusOK || len(codes) != 10 {
		t.Fatalf("setup: %d with %d recovery codes\n%s", done.status, len(codes), done.body)
	}
	if !strings.Contains(done.body, `name="next" value="/admin/reports?year=2026"`) {
		t.Errorf("recovery page does not link on to next:\n%s", done.body)
	}
	r = b.get("/admin/reports?year=2026")
	if r.status != http.StatusOK || r.body != "admin area: user=alice method=setup" {
		t.Fatalf("protected page after enrollment: %d %q", r.status, r.body)
	}
}

func TestUnauthenticatedNonBrowserRequestsGet401(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	for _, accept := range []string{"", "application/json", "*/*"} {
		r := b.get("/admin/api", "Accept: "+accept)
		if r.status != http.StatusUnauthorized || r.location() != "" {
			t.Errorf("Accept %q: got %d to %q, want 401", accept, r.status, r.location())
		}
	}
}

func TestLaterSignInsNeedTheSecondFactor(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	first := newBrowser(t)
	secret, _ := first.enroll("bob")

	second := newBrowser(t)
	login := second.login("bob", testPassword, "/admin/page?x=1")
	if login.location() != "/_2fa/confirm" {
		t.Fatalf("enrolled user's password step went to %q", login.location())
	}
	if r := second.get("/admin/page"); r.status != http.StatusFound {
		t.Fatalf("pending session reached the route: %d", r.status)
	}
	if r := second.get("/_2fa/setup"); r.status != http.StatusSeeOther || r.location() != "/_2fa/confirm" {
		t.Fatalf("pending session of an enrolled user reached setup: %d to %q", r.status, r.location())
	}
	done := second.confirm(second.code("bob", secret))
	if done.status != http.StatusSeeOther || done.location() != "/admin/page?x=1" {
		t.Fatalf("confirm: %d to %q\n%s", done.status, done.location(), done.body)
	}
	if r := second.get("/admin/page"); r.status != http.StatusOK || r.body != "admin area: user=bob method=totp" {
		t.Fatalf("after confirm: %d %q", r.status, r.body)
	}
	// A new sign-in rotates bob's session identifier: the first browser's
	// session has ended.
	if r := first.get("/admin/page"); r.status != http.StatusFound {
		t.Fatalf("older session still works after a new sign-in: %d", r.status)
	}
}

func TestConcurrentSessionsKeepsOlderSessions(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*", extra: "concurrent_sessions"})
	first := newBrowser(t)
	secret, _ := first.enroll("carol")
	second := newBrowser(t)
	if r := second.signIn("carol", secret); r.status != http.StatusSeeOther {
		t.Fatalf("second sign-in: %d", r.status)
	}
	for i, b := range []*browser{first, second} {
		if r := b.get("/admin/"); r.status != http.StatusOK {
			t.Errorf("browser %d: %d, want both sessions alive", i, r.status)
		}
	}
}

func TestRecoveryCodeSignsInOnce(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	_, codes := newBrowser(t).enroll("dave")

	b := newBrowser(t)
	b.login("dave", testPassword, "/admin/")
	// Case, spaces and dashes are forgiven.
	typed := strings.ToUpper(strings.ReplaceAll(codes[3], "-", " "))
	if r := b.confirm(typed); r.status != http.StatusSeeOther || r.location() != "/admin/" {
		t.Fatalf("recovery code: %d to %q\n%s", r.status, r.location(), r.body)
	}
	if r := b.get("/admin/"); r.body != "admin area: user=dave method=recovery" {
		t.Fatalf("after recovery sign-in: %q", r.body)
	}

	again := newBrowser(t)
	again.login("dave", testPassword, "/admin/")
	if r := again.confirm(codes[3]); r.status != http.StatusUnauthorized {
		t.Fatalf("used recovery code accepted again: %d", r.status)
	}
	if r := again.confirm(codes[4]); r.status != http.StatusSeeOther {
		t.Fatalf("unused recovery code refused: %d", r.status)
	}
}

func TestLogoutEndsTheSessionOnTheServer(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	b.enroll("erin")
	u, _ := url.Parse(testBase())
	stolen := b.client.Jar.Cookies(u)

	page := b.get("/_2fa/logout")
	if page.status != http.StatusOK || !strings.Contains(page.body, `<button type="submit">Sign out</button>`) {
		t.Fatalf("logout page: %d\n%s", page.status, page.body)
	}
	if r := b.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("GET of the logout page ended the session: %d", r.status)
	}
	out := b.post("/_2fa/logout", url.Values{"csrf": {b.csrfFrom(page)}})
	if out.status != http.StatusOK || !strings.Contains(out.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("logout: %d, Set-Cookie %q", out.status, out.header.Get("Set-Cookie"))
	}
	if r := b.get("/admin/"); r.status != http.StatusFound {
		t.Fatalf("route open after logout: %d", r.status)
	}
	// The old cookie, replayed by someone who copied it, is dead too.
	replay := newBrowser(t)
	replay.client.Jar.SetCookies(u, stolen)
	if r := replay.get("/admin/"); r.status != http.StatusFound {
		t.Fatalf("copied cookie works after logout: %d", r.status)
	}
}

func TestPagesAreServedWhateverTheMatcher(t *testing.T) {
	for _, matcher := range []string{"", "/admin/*", "/deep/only/*"} {
		t.Run("matcher="+matcher, func(t *testing.T) {
			startSite(t, siteConfig{matcher: matcher})
			b := newBrowser(t)
			if r := b.get("/_2fa/login"); r.status != http.StatusOK || !strings.Contains(r.body, `name="password"`) {
				t.Fatalf("login page: %d", r.status)
			}
			if r := b.get("/_2fa/static/style.css"); r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/css") {
				t.Fatalf("style sheet: %d %q", r.status, r.header.Get("Content-Type"))
			}
			public := b.get("/")
			if matcher == "" && public.status != http.StatusFound {
				t.Errorf("without a matcher the whole site is closed, got %d on /", public.status)
			}
			if matcher != "" && public.status != http.StatusOK {
				t.Errorf("with matcher %s, / is public, got %d", matcher, public.status)
			}
		})
	}
}

func TestPagesAnswerWrongMethodsAndUnknownPaths(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	if r := b.get("/_2fa/nope"); r.status != http.StatusNotFound {
		t.Errorf("unknown page: %d", r.status)
	}
	req, _ := http.NewRequest(http.MethodDelete, testBase()+"/_2fa/login", nil)
	if r := b.do(req); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD, POST" {
		t.Errorf("DELETE login: %d Allow %q", r.status, r.header.Get("Allow"))
	}
	if r := b.get("/_2fa"); r.status != http.StatusOK {
		t.Errorf("bare prefix: %d", r.status)
	}
}

func TestPlaceholdersReachTheUpstream(t *testing.T) {
	db := filepath.Join(t.TempDir(), "2fa.db")
	loadCaddyfile(t, globalOptions()+fmt.Sprintf(`
http://localhost:%d {
	two_factor {
		db %s
		user grace %s
	}
	respond `+"`"+`{"user":"{http.auth.user.id}","method":"{http.two_factor.method}","confirmed":"{http.two_factor.confirmed_at}","expires":"{http.two_factor.session_expires}"}`+"`"+`
}
`, testPorts().http, db, testHash()))
	b := newBrowser(t)
	b.enroll("grace")
	r := b.get("/anything")
	var got map[string]string
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("%d %q: %v", r.status, r.body, err)
	}
	if got["user"] != "grace" || got["method"] != "setup" {
		t.Errorf("placeholders: %v", got)
	}
	confirmed, err1 := time.Parse(time.RFC3339, got["confirmed"])
	expires, err2 := time.Parse(time.RFC3339, got["expires"])
	if err1 != nil || err2 != nil || expires.Sub(confirmed) != DefaultSessionLifetime {
		t.Errorf("times: confirmed %q expires %q", got["confirmed"], got["expires"])
	}
}

func TestReloadKeepsSessionsAndEnrollments(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	secret, _ := b.enroll("heidi")

	// The same database under a changed config: the handle is shared
	// through the reload, not reopened, so nothing is lost or locked.
	startSite(t, siteConfig{matcher: "/admin/*", db: site.db, extra: `issuer "Reloaded"`})
	if r := b.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("session lost on reload: %d", r.status)
	}

	// A stop (no config uses the file, so it is closed) and a start.
	stopSites(t)
	startSite(t, siteConfig{matcher: "/admin/*", db: site.db})
	if r := b.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("session lost on restart: %d", r.status)
	}
	other := newBrowser(t)
	if r := other.signIn("heidi", secret); r.status != http.StatusSeeOther {
		t.Fatalf("enrollment lost on restart: %d", r.status)
	}
}

func TestDatabaseIsClosedWhenNoConfigUsesIt(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*"})
	stopSites(t)
	// Another process (here: another handle) can open the file at once.
	st, err := boltstore.Open(site.db)
	if err != nil {
		t.Fatalf("database still held after the config was unloaded: %v", err)
	}
	st.Close()
}

func TestDatabaseHeldElsewhereIsAClearError(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"}) // make sure Caddy runs
	path := filepath.Join(t.TempDir(), "held.db")
	st, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	client := &http.Client{Timeout: 3 * boltstore.LockTimeout}
	resp, err := client.Post(fmt.Sprintf("http://localhost:%d/load", testPorts().admin), "text/caddyfile",
		strings.NewReader(caddyfileFor(siteConfig{matcher: "/admin/*", db: path})))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK || !strings.Contains(string(body), "locked by another process") || !strings.Contains(string(body), path) {
		t.Fatalf("load with a held database: %d %s", resp.StatusCode, body)
	}
}

func TestJSONConfigMirrorsTheCaddyfile(t *testing.T) {
	db := filepath.Join(t.TempDir(), "2fa.db")
	loadJSON(t, fmt.Sprintf(`[
			{
				"match": [{"path": ["/admin/*"]}, {"path": ["/_2fa", "/_2fa/*"]}],
				"handle": [{
					"handler": "two_factor",
					"db": %q,
					"users": [{"username": "ivan", "password": %q}],
					"session_idle": "10m",
					"recovery_codes": 4
				}]
			},
			{"handle": [{"handler": "static_response", "body": "page for {http.auth.user.id}"}]}
		]`, db, testHash()))
	b := newBrowser(t)
	if r := b.get("/public"); r.status != http.StatusOK {
		t.Fatalf("public page: %d", r.status)
	}
	_, codes := b.enroll("ivan")
	if len(codes) != 4 {
		t.Errorf("recovery_codes 4 gave %d codes", len(codes))
	}
	if r := b.get("/admin/x"); r.status != http.StatusOK || r.body != "page for ivan" {
		t.Fatalf("after sign-in: %d %q", r.status, r.body)
	}
}

func TestHTTPSCookiesAreSecureAndHostPrefixed(t *testing.T) {
	db := filepath.Join(t.TempDir(), "2fa.db")
	cert, key := selfSignedCertificate(t, "localhost")
	loadCaddyfile(t, globalOptions()+fmt.Sprintf(`
https://localhost:%d {
	tls %s %s
	two_factor {
		db %s
		user alice %s
	}
	respond "inside"
}
`, testPorts().https, cert, key, db, testHash()))
	b := newBrowser(t)
	b.base = fmt.Sprintf("https://localhost:%d", testPorts().https)
	b.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // a certificate made by the test

	page := b.get("/_2fa/login")
	if got := page.header.Get("Set-Cookie"); !strings.HasPrefix(got, "__Host-two_factor_pre=") || !strings.Contains(got, "; Secure") || !strings.Contains(got, "; HttpOnly") || !strings.Contains(got, "; Path=/") {
		t.Fatalf("pre-login cookie on HTTPS: %q", got)
	}
	login := b.post("/_2fa/login", url.Values{"csrf": {b.csrfFrom(page)}, "username": {"alice"}, "password": {testPassword}})
	got := login.header.Get("Set-Cookie")
	if login.status != http.StatusSeeOther || !strings.HasPrefix(got, "__Host-two_factor=") || !strings.Contains(got, "; Secure") || !strings.Contains(got, "SameSite=Lax") || strings.Contains(got, "Domain=") {
		t.Fatalf("session cookie on HTTPS: %d %q", login.status, got)
	}
	// The plain-HTTP cookie name means nothing on HTTPS.
	u, _ := url.Parse(b.base)
	token := strings.TrimPrefix(strings.SplitN(got, ";", 2)[0], "__Host-two_factor=")
	b.client.Jar.SetCookies(u, []*http.Cookie{{Name: "two_factor", Value: token}})
	if r := b.get("/_2fa/setup"); r.status != http.StatusOK {
		t.Fatalf("setup with the HTTPS session: %d", r.status)
	}
	plain := newBrowser(t)
	plain.base = b.base
	plain.client.Transport = b.client.Transport
	plain.client.Jar.SetCookies(u, []*http.Cookie{{Name: "two_factor", Value: token}})
	if r := plain.get("/_2fa/setup"); r.status != http.StatusSeeOther {
		t.Fatalf("an unprefixed cookie was accepted on HTTPS: %d", r.status)
	}
}

// selfSignedCertificate writes a certificate for host and its key as PEM
// files, and returns their paths.
func selfSignedCertificate(t *testing.T, host string) (certFile, keyFile string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
