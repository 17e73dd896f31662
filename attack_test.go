package twofactor

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// The attack regression suite: one test per attack on the sign-in flow,
// each against a real Caddy loaded from a Caddyfile.

// signedOut asserts that a request to the protected route did not get in.
func signedOut(t *testing.T, b *browser, path string) {
	t.Helper()
	r := b.get(path)
	if r.status == http.StatusOK || strings.Contains(r.body, "admin area") {
		t.Fatalf("%s reached the protected route: %d %q", path, r.status, r.body)
	}
}

func TestAttackBruteForcePasswordLocksTheAccount(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	for i := range DefaultMaxAttempts {
		if r := b.login("alice", fmt.Sprintf("guess-%d", i), "/"); r.status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, r.status)
		}
	}
	r := b.login("alice", testPassword, "/")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "Too many failed attempts") {
		t.Fatalf("right password while locked: %d Retry-After=%q", r.status, r.header.Get("Retry-After"))
	}
	// Another client (a fresh cookie jar, a new flow) is locked out too.
	if r := newBrowser(t).login("alice", testPassword, "/"); r.status != http.StatusTooManyRequests {
		t.Fatalf("new flow reset the lock: %d", r.status)
	}
}

func TestAttackBruteForceCodesLocksTheAccount(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	secret, _ := newBrowser(t).enroll("bob")
	b := newBrowser(t)
	b.login("bob", testPassword, "/")
	for i := range DefaultMaxAttempts - 1 {
		if r := b.confirm(fmt.Sprintf("%06d", 111111*(i+1)%1000000)); r.status != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: %d", i, r.status)
		}
	}
	// Restarting the flow does not reset the count: failures are per account.
	b2 := newBrowser(t)
	b2.login("bob", testPassword, "/")
	if r := b2.confirm("999999"); r.status != http.StatusUnauthorized {
		t.Fatalf("last wrong code: %d", r.status)
	}
	if r := b2.confirm(b2.code("bob", secret)); r.status != http.StatusTooManyRequests {
		t.Fatalf("right code while locked: %d", r.status)
	}
}

func TestAttackLockoutIsPersistedAcrossRestarts(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*"})
	for range DefaultMaxAttempts {
		newBrowser(t).login("carol", "wrong", "/")
	}
	stopSites(t)
	startSite(t, siteConfig{matcher: "/admin/*", db: site.db})
	if r := newBrowser(t).login("carol", testPassword, "/"); r.status != http.StatusTooManyRequests {
		t.Fatalf("restart reset the lockout: %d", r.status)
	}
}

func TestAttackLockoutDoesNotRevealWhichAccountsExist(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	lock := func(user string) response {
		b := newBrowser(t)
		for range DefaultMaxAttempts {
			b.login(user, "wrong", "/")
		}
		return b.login(user, "wrong", "/")
	}
	known, unknown := lock("dave"), lock("nobody-here")
	if known.status != http.StatusTooManyRequests || unknown.status != known.status {
		t.Fatalf("locked known user %d, locked unknown user %d", known.status, unknown.status)
	}
	if withoutNonce(known.body) != withoutNonce(unknown.body) || !sameHeaderNames(known.header, unknown.header) {
		t.Fatalf("locked known and unknown users can be told apart:\n%v\n%v", known.header, unknown.header)
	}
}

func TestAttackUnknownUserLooksLikeWrongPassword(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	b.get("/_2fa/login") // the pre-login cookie, so neither answer sets one
	wrong := b.login("erin", "not her password", "/")
	unknown := b.login("zzzz", "not her password", "/")
	if wrong.status != http.StatusUnauthorized || unknown.status != wrong.status {
		t.Fatalf("statuses: wrong password %d, unknown user %d", wrong.status, unknown.status)
	}
	if withoutNonce(strings.ReplaceAll(wrong.body, "erin", "zzzz")) != withoutNonce(unknown.body) {
		t.Fatalf("bodies differ beyond the echoed user name")
	}
	if !sameHeaderNames(wrong.header, unknown.header) {
		t.Fatalf("headers differ: %v vs %v", wrong.header, unknown.header)
	}
}

// withoutNonce blanks a page's script nonce, which is new in every answer.
func withoutNonce(body string) string {
	return noncePattern.ReplaceAllString(body, `nonce=""`)
}

var noncePattern = regexp.MustCompile(`nonce="[^"]*"`)

func sameHeaderNames(a, b http.Header) bool {
	names := func(h http.Header) []string {
		var n []string
		for k := range h {
			if k != "Date" {
				n = append(n, k)
			}
		}
		slices.Sort(n)
		return n
	}
	return slices.Equal(names(a), names(b))
}

func TestAttackPerIPLimitIgnoresSpoofedForwardedFor(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*", extra: "max_ip_attempts 6"})
	b := newBrowser(t)
	for i := range 6 {
		// A different user each time (no account lock) and a different
		// forged X-Forwarded-For: Caddy's client IP is still the peer.
		page := b.get("/_2fa/login")
		r := b.post("/_2fa/login", url.Values{"csrf": {b.csrfFrom(page)}, "username": {fmt.Sprintf("spray%d", i)}, "password": {"x"}},
			fmt.Sprintf("X-Forwarded-For: 203.0.113.%d", i))
		if r.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, r.status)
		}
	}
	if r := b.login("frank", testPassword, "/"); r.status != http.StatusTooManyRequests {
		t.Fatalf("client over max_ip_attempts was not throttled: %d", r.status)
	}
}

func TestAttackRandomUserNamesDoNotGrowTheDatabase(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*", extra: "max_ip_attempts 100000"})
	before := fileSize(t, site.db)
	b := newBrowser(t)
	page := b.get("/_2fa/login")
	csrf := b.csrfFrom(page)
	for i := range 300 {
		b.post("/_2fa/login", url.Values{"csrf": {csrf}, "username": {fmt.Sprintf("random-%d", i)}, "password": {"x"}})
	}
	if after := fileSize(t, site.db); after != before {
		t.Fatalf("database grew from %d to %d bytes on unknown user names", before, after)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

func TestAttackReplayedCodeFromAnotherSession(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*", extra: "concurrent_sessions"})
	secret, _ := newBrowser(t).enroll("grace")
	victim := newBrowser(t)
	victim.login("grace", testPassword, "/")
	code := victim.code("grace", secret)
	if r := victim.confirm(code); r.status != http.StatusSeeOther {
		t.Fatalf("victim's sign-in: %d", r.status)
	}
	// The attacker knows the password and saw the code over a shoulder.
	attacker := newBrowser(t)
	attacker.login("grace", testPassword, "/")
	if r := attacker.confirm(code); r.status != http.StatusUnauthorized {
		t.Fatalf("replayed code accepted: %d", r.status)
	}
	signedOut(t, attacker, "/admin/")
}

func TestAttackSetupCodeReusedAtFirstLogin(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	b.login("heidi", testPassword, "/")
	setup := b.get("/_2fa/setup")
	secret, _ := totpDecode(secretPattern.FindStringSubmatch(setup.body)[1])
	code := b.code("heidi", secret)
	if r := b.post("/_2fa/setup", url.Values{"csrf": {b.csrfFrom(setup)}, "code": {code}}); r.status != http.StatusOK {
		t.Fatalf("setup: %d", r.status)
	}
	again := newBrowser(t)
	again.login("heidi", testPassword, "/")
	if r := again.confirm(code); r.status != http.StatusUnauthorized {
		t.Fatalf("setup code accepted at the next sign-in: %d", r.status)
	}
}

func TestAttackParallelRequestsWithOneCodeOnlyOneWins(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*", extra: "concurrent_sessions"})
	secret, _ := newBrowser(t).enroll("ivan")
	// As many racers as a user may hold pending sessions, so none of them
	// is ended by the others' sign-ins.
	const racers = maxPendingSessions
	browsers := make([]*browser, racers)
	forms := make([]url.Values, racers)
	code := ""
	for i := range browsers {
		browsers[i] = newBrowser(t)
		browsers[i].login("ivan", testPassword, "/")
		page := browsers[i].get("/_2fa/confirm")
		forms[i] = url.Values{"csrf": {browsers[i].csrfFrom(page)}}
	}
	code = browsers[0].code("ivan", secret)
	statuses := make([]int, racers)
	var wg sync.WaitGroup
	for i := range browsers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			forms[i].Set("code", code)
			resp := browsers[i].post("/_2fa/confirm", forms[i])
			statuses[i] = resp.status
			if resp.status == http.StatusSeeOther && resp.location() != "/" {
				t.Errorf("racer %d sent to %q, not signed in", i, resp.location())
			}
		}()
	}
	wg.Wait()
	won := 0
	for _, s := range statuses {
		if s == http.StatusSeeOther {
			won++
		} else if s != http.StatusUnauthorized && s != http.StatusTooManyRequests {
			// 429: the racers beyond the attempt budget are refused unchecked.
			t.Errorf("unexpected status %d", s)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d parallel uses of one code won, want exactly 1 (%v)", won, racers, statuses)
	}
}

func TestAttackMalformedCodes(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	newBrowser(t).enroll("judy")
	b := newBrowser(t)
	b.login("judy", testPassword, "/")
	for _, code := range []string{
		"+12345", "-12345", "１２３４５６", "1234567", "12345", "12\x0034", "123456\x00",
		"0x1234", "1e5", "", " ", strings.Repeat("1", 10<<10), "abcdef", "٣٣٣٣٣٣",
	} {
		r := b.confirm(code)
		if r.status != http.StatusBadRequest {
			t.Errorf("code %.20q: %d, want 400", code, r.status)
		}
	}
	// None of them counted as a guess: the account is not locked.
	if r := b.confirm("000000"); r.status != http.StatusUnauthorized {
		t.Fatalf("after malformed codes: %d", r.status)
	}
}

func TestAttackOpenRedirects(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	b.enroll("mallory")
	for _, next := range []string{
		"//evil.example", "/\\evil.example", "\\/evil.example", "%2F%2Fevil.example", "/%2F/evil.example",
		"https:evil.example", "https://evil.example/", "HTTPS://evil.example", "javascript:alert(1)",
		"data:text/html,<script>alert(1)</script>", "//user@evil.example", "https://localhost@evil.example",
		"/\r\nLocation: https://evil.example", "/\t/evil.example", "///evil.example", "/%5cevil.example",
		"evil.example", "/_2fa/logout", "",
	} {
		r := b.get("/_2fa/login?next=" + url.QueryEscape(next))
		if r.status != http.StatusSeeOther || r.location() != "/" {
			t.Errorf("next=%q: %d to %q, want / ", next, r.status, r.location())
		}
	}
	if r := b.get("/_2fa/login?next=" + url.QueryEscape("/admin/a?b=c")); r.location() != "/admin/a?b=c" {
		t.Errorf("a safe next was not kept: %q", r.location())
	}
}

func TestAttackLocationIgnoresHostAndForwardedHeaders(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	r := b.get("/admin/x", "X-Forwarded-Host: evil.example", "X-Forwarded-Proto: https", "Forwarded: host=evil.example")
	if r.status != http.StatusFound || !strings.HasPrefix(r.location(), "/_2fa/login?") {
		t.Fatalf("challenge Location %q", r.location())
	}
	login := b.login("niaj", testPassword, "/admin/x")
	if strings.Contains(login.location(), "evil") || !strings.HasPrefix(login.location(), "/") {
		t.Fatalf("login Location %q", login.location())
	}
}

func TestAttackCSRFOnEveryPost(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	b.get("/_2fa/login")
	for name, headers := range map[string][]string{
		"no token":           nil,
		"cross-site fetch":   {"Sec-Fetch-Site: cross-site"},
		"same-site fetch":    {"Sec-Fetch-Site: same-site"},
		"foreign origin":     {"Origin: https://evil.example"},
		"origin other port":  {"Origin: http://localhost:1"},
		"origin other proto": {"Origin: " + strings.Replace(testBase(), "http:", "https:", 1)},
	} {
		t.Run("login "+name, func(t *testing.T) {
			page := b.get("/_2fa/login")
			form := url.Values{"username": {"alice"}, "password": {testPassword}}
			if headers != nil {
				form.Set("csrf", b.csrfFrom(page))
			}
			if r := b.post("/_2fa/login", form, headers...); r.status != http.StatusForbidden {
				t.Fatalf("%d, want 403", r.status)
			}
		})
	}
	t.Run("login token from another client", func(t *testing.T) {
		other := newBrowser(t)
		token := other.csrfFrom(other.get("/_2fa/login"))
		if r := b.post("/_2fa/login", url.Values{"csrf": {token}, "username": {"alice"}, "password": {testPassword}}); r.status != http.StatusForbidden {
			t.Fatalf("%d, want 403", r.status)
		}
	})
	t.Run("login with Origin null and a token", func(t *testing.T) {
		page := b.get("/_2fa/login")
		r := b.post("/_2fa/login", url.Values{"csrf": {b.csrfFrom(page)}, "username": {"alice"}, "password": {testPassword}}, "Origin: null")
		if r.status != http.StatusSeeOther {
			t.Fatalf("%d, want 303: Origin null is what Chromium sends under no-referrer", r.status)
		}
	})
	// b now has a pending session for alice: setup, and (after enrolling)
	// confirm and logout need its token too.
	for _, page := range []string{"setup"} {
		t.Run(page+" without token", func(t *testing.T) {
			if r := b.post("/_2fa/"+page, url.Values{"code": {"123456"}}); r.status != http.StatusForbidden {
				t.Fatalf("%d, want 403", r.status)
			}
		})
	}
	enrolled := newBrowser(t)
	secret, _ := enrolled.enroll("bob")
	t.Run("logout without token", func(t *testing.T) {
		if r := enrolled.post("/_2fa/logout", nil); r.status != http.StatusForbidden {
			t.Fatalf("%d, want 403", r.status)
		}
		if r := enrolled.get("/admin/"); r.status != http.StatusOK {
			t.Fatalf("forged logout ended the session: %d", r.status)
		}
	})
	t.Run("confirm without token", func(t *testing.T) {
		c := newBrowser(t)
		c.login("bob", testPassword, "/")
		if r := c.post("/_2fa/confirm", url.Values{"code": {c.code("bob", secret)}}); r.status != http.StatusForbidden {
			t.Fatalf("%d, want 403", r.status)
		}
	})
	t.Run("confirm cross-site with token", func(t *testing.T) {
		c := newBrowser(t)
		c.login("bob", testPassword, "/")
		page := c.get("/_2fa/confirm")
		if r := c.post("/_2fa/confirm", url.Values{"csrf": {c.csrfFrom(page)}, "code": {"123456"}}, "Sec-Fetch-Site: cross-site"); r.status != http.StatusForbidden {
			t.Fatalf("%d, want 403", r.status)
		}
	})
}

func TestAttackCookieTampering(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	b.enroll("carol")
	token := b.sessionToken()
	if token == "" {
		t.Fatal("no session cookie")
	}
	flipped := []byte(token)
	flipped[5] ^= 1
	for name, cookie := range map[string]string{
		"flipped character": sessionCookie + "=" + string(flipped),
		"truncated":         sessionCookie + "=" + token[:len(token)-1],
		"padded":            sessionCookie + "=" + token + "=",
		"garbage":           sessionCookie + "=%00%ff<script>",
		"oversized":         sessionCookie + "=" + strings.Repeat("A", 4000),
		"duplicated":        sessionCookie + "=" + token + "; " + sessionCookie + "=" + token,
		"shadowed":          sessionCookie + "=" + string(flipped) + "; " + sessionCookie + "=" + token,
		"other name":        "two_factor_pre=" + token,
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, testBase()+"/admin/", nil)
			req.Header.Set("Cookie", cookie)
			req.Header.Set("Accept", "text/html")
			r := newBrowser(t).do(req)
			if r.status != http.StatusFound {
				t.Fatalf("%d, want 302 to sign in", r.status)
			}
		})
	}
	if r := b.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("the real cookie stopped working: %d", r.status)
	}
}

func TestAttackPendingSessionCannotReachTheRoute(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	newBrowser(t).enroll("dave")
	b := newBrowser(t)
	b.login("dave", testPassword, "/admin/")
	for _, path := range []string{"/admin/", "/admin/x", "/ADMIN/x", "/admin/../admin/x"} {
		signedOut(t, b, path)
	}
}

func TestAttackPathTricksDoNotBypassTheGate(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	for _, path := range []string{
		"/admin/x", "/ADMIN/x", "/Admin/x", "//admin/x", "/./admin/x", "/public/../admin/x",
		"/%2e%2e/admin/x", "/public/%2e%2e/admin/x", "/admin%2fx", "/%61dmin/x", "/admin/%2e%2e/admin/x",
		"/_2fa/../admin/x", "/_2fa/%2e%2e/admin/x", "/_2fa%2f..%2fadmin/x",
	} {
		req, err := http.NewRequest(http.MethodGet, testBase()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = path // send the path exactly as written
		req.Header.Set("Accept", "text/html")
		r := b.do(req)
		if strings.Contains(r.body, "admin area") || r.status >= 500 {
			t.Errorf("%s: %d %q", path, r.status, r.body)
		}
	}
	for _, path := range []string{"/_2FA/login", "/_2fa/LOGIN", "/_2fa//login", "/_2fa/%6cogin", "/_2fa/./login"} {
		req, _ := http.NewRequest(http.MethodGet, testBase()+path, nil)
		req.URL.Opaque = path
		if r := b.do(req); r.status >= 500 || strings.Contains(r.body, "admin area") {
			t.Errorf("%s: %d", path, r.status)
		}
	}
}

func TestAttackSecurityHeadersOnEveryPage(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	pages := map[string]response{
		"login":     b.get("/_2fa/login"),
		"not found": b.get("/_2fa/nope"),
		"logout":    b.get("/_2fa/logout"),
	}
	pages["405"] = b.do(newRequest(t, http.MethodPut, b.base+"/_2fa/login", ""))
	pages["413"] = b.post("/_2fa/login", url.Values{"pad": {strings.Repeat("x", maxFormBytes)}})
	b.login("erin", testPassword, "/")
	pages["setup"] = b.get("/_2fa/setup")
	pages["bad code"] = b.post("/_2fa/setup", url.Values{"csrf": {b.csrfFrom(pages["setup"])}, "code": {"12"}})
	pages["forged"] = b.post("/_2fa/setup", nil)
	secret := mustDecodeSecret(t, pages["setup"].body)
	pages["recovery"] = b.post("/_2fa/setup", url.Values{"csrf": {b.csrfFrom(pages["setup"])}, "code": {b.code("erin", secret)}})
	pages["account"] = b.get("/_2fa/account")
	pages["replace authenticator"] = b.get("/_2fa/account/authenticator")
	again := newBrowser(t)
	again.login("erin", testPassword, "/")
	pages["confirm"] = again.get("/_2fa/confirm")
	for range DefaultMaxAttempts {
		again.login("dave", "wrong", "/")
	}
	pages["429 locked"] = again.login("dave", "wrong", "/")
	if pages["429 locked"].status != http.StatusTooManyRequests || pages["recovery"].status != http.StatusOK || pages["405"].status != http.StatusMethodNotAllowed || pages["413"].status != http.StatusRequestEntityTooLarge {
		t.Fatalf("pages not reached: locked %d, recovery %d, 405 %d, 413 %d", pages["429 locked"].status, pages["recovery"].status, pages["405"].status, pages["413"].status)
	}
	nonces := map[string]bool{}
	for name, r := range pages {
		csp := r.header.Get("Content-Security-Policy")
		m := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9]{16,})';`).FindStringSubmatch(csp)
		if !strings.Contains(csp, "frame-ancestors 'none'") || m == nil || regexp.MustCompile(`script-src [^;]*'self'`).MatchString(csp) || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", name, csp)
			continue
		}
		// The page's only script carries the nonce; every page has its own.
		if !strings.Contains(r.body, `<script nonce="`+m[1]+`" src="/_2fa/static/app.js`) || nonces[m[1]] {
			t.Errorf("%s: script without this page's own nonce %q", name, m[1])
		}
		nonces[m[1]] = true
		wantPageHeaders(t, name, r.header, "no-store")
		if regexp.MustCompile(`<script>|\son[a-z]+=|style="`).MatchString(r.body) {
			t.Errorf("%s: inline script or style in the page", name)
		}
	}
	for _, asset := range []string{"/_2fa/static/app.js", "/_2fa/static/style.css"} {
		r := b.get(asset)
		if csp := r.header.Get("Content-Security-Policy"); r.status != http.StatusOK || !strings.Contains(csp, "sandbox") || !strings.HasPrefix(csp, "default-src 'none'") {
			t.Errorf("%s: %d, CSP %q", asset, r.status, csp)
		}
		if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", asset, got)
		}
	}
}

// wantPageHeaders checks the headers every page of the module has.
func wantPageHeaders(t *testing.T, name string, hdr http.Header, cacheControl string) {
	t.Helper()
	for header, want := range map[string]string{
		"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": cacheControl, "X-Content-Type-Options": "nosniff",
	} {
		if got := hdr.Get(header); got != want {
			t.Errorf("%s: %s %q, want %q", name, header, got, want)
		}
	}
}

func mustDecodeSecret(t *testing.T, page string) []byte {
	t.Helper()
	m := secretPattern.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no secret on the page:\n%s", page)
	}
	secret, err := totpDecode(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func newRequest(t *testing.T, method, target, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestAttackReflectedValuesAreEscaped(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	payload := `"><script>alert(1)</script>`
	r := b.login(payload, "x", "/"+payload)
	if strings.Contains(r.body, "<script>alert(1)") {
		t.Fatalf("user name reflected unescaped:\n%s", r.body)
	}
	page := b.get("/_2fa/login?next=" + url.QueryEscape("/"+payload))
	if strings.Contains(page.body, "<script>alert(1)") || strings.Contains(page.body, `value="/">`) {
		t.Fatalf("next reflected unescaped:\n%s", page.body)
	}
}

func TestAttackBodyLimitsAndRepeatedFields(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	page := b.get("/_2fa/login")
	huge := url.Values{"csrf": {b.csrfFrom(page)}, "username": {"alice"}, "password": {strings.Repeat("p", 70<<10)}}
	if r := b.post("/_2fa/login", huge); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("70 KiB body: %d, want 413", r.status)
	}
	repeated := url.Values{"csrf": {b.csrfFrom(page)}, "username": {"alice", "bob"}, "password": {testPassword}}
	if r := b.post("/_2fa/login", repeated); r.status != http.StatusBadRequest {
		t.Fatalf("repeated user name: %d, want 400", r.status)
	}
	req, _ := http.NewRequest(http.MethodPost, testBase()+"/_2fa/login", strings.NewReader("csrf=%zz&username=a"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := b.do(req); r.status != http.StatusBadRequest {
		t.Fatalf("undecodable body: %d, want 400", r.status)
	}
	req, _ = http.NewRequest(http.MethodPost, testBase()+"/_2fa/login", strings.NewReader("--x\r\n"))
	req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
	if r := b.do(req); r.status >= 500 || r.status < 400 {
		t.Fatalf("multipart body: %d, want a 4xx", r.status)
	}
}

func TestAttackLongPasswordsAreNotTruncated(t *testing.T) {
	long := strings.Repeat("a", 72)
	hash, err := bcrypt.GenerateFromPassword([]byte(long), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	startSite(t, siteConfig{matcher: "/admin/*", extra: "user longpw " + string(hash)})
	if r := newBrowser(t).login("longpw", long+"-anything-after-byte-72", "/"); r.status != http.StatusUnauthorized {
		t.Fatalf("password longer than 72 bytes matched its first 72: %d", r.status)
	}
	if r := newBrowser(t).login("longpw", long, "/"); r.status != http.StatusSeeOther {
		t.Fatalf("the real 72-byte password: %d", r.status)
	}
}

func TestAttackUserNamesAreNormalised(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	r := newBrowser(t).login("ｆｒａｎｋ", testPassword, "/") // fullwidth letters
	if r.status != http.StatusSeeOther {
		t.Fatalf("fullwidth spelling of a user name: %d, want the same account", r.status)
	}
}

func TestAttackIdentityHeadersCannotBeForged(t *testing.T) {
	startSite(t, siteConfig{
		matcher: "/admin/*",
		routes: fmt.Sprintf(`reverse_proxy /admin/* localhost:%d {
		header_up Remote-User {http.auth.user.id}
		header_up -X-Forwarded-User
	}`, upstreamPort()),
		more: fmt.Sprintf(`http://localhost:%d {
	bind 127.0.0.1
	respond "remote-user=[{header.Remote-User}] forwarded-user=[{header.X-Forwarded-User}]"
}
`, upstreamPort()),
	})
	b := newBrowser(t)
	forged := []string{"Remote-User: mallory", "X-Forwarded-User: mallory"}
	if r := b.get("/admin/", forged...); strings.Contains(r.body, "mallory") || r.status != http.StatusFound {
		t.Fatalf("forged identity without a session: %d %q", r.status, r.body)
	}
	b.enroll("grace")
	r := b.get("/admin/", forged...)
	if r.status != http.StatusOK || r.body != "remote-user=[grace] forwarded-user=[]" {
		t.Fatalf("upstream saw %d %q", r.status, r.body)
	}
}

var upstreamPort = sync.OnceValue(freePort)

func TestAttackPendingSessionCannotReplaceAnAuthenticator(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	owner := newBrowser(t)
	secret, _ := owner.enroll("heidi")

	attacker := newBrowser(t) // knows the password, not the phone
	attacker.login("heidi", testPassword, "/")
	if r := attacker.get("/_2fa/setup"); r.status != http.StatusSeeOther || r.location() != "/_2fa/confirm" || secretPattern.MatchString(r.body) {
		t.Fatalf("setup page for an enrolled user: %d to %q", r.status, r.location())
	}
	confirm := attacker.get("/_2fa/confirm")
	r := attacker.post("/_2fa/setup", url.Values{"csrf": {attacker.csrfFrom(confirm)}, "code": {"123456"}, "secret": {"JBSWY3DPEHPK3PXP"}})
	if r.status != http.StatusSeeOther || r.location() != "/_2fa/confirm" || recoveryPattern.MatchString(r.body) {
		t.Fatalf("setup POST for an enrolled user: %d to %q", r.status, r.location())
	}
	signedOut(t, attacker, "/admin/")
	if r := newBrowser(t).signIn("heidi", secret); r.status != http.StatusSeeOther {
		t.Fatalf("the owner's authenticator stopped working: %d", r.status)
	}
}

func TestAttackAuditLogHasEveryDecisionAndNoSecrets(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	startSite(t, siteConfig{matcher: "/admin/*", logFile: logFile})
	b := newBrowser(t)
	b.login("ivan", "wrong-password-123", "/")
	secret, codes := b.enroll("ivan")
	token := b.sessionToken()
	b2 := newBrowser(t)
	b2.login("ivan", testPassword, "/")
	used := b2.code("ivan", secret)
	b2.confirm(used)
	b3 := newBrowser(t)
	b3.login("ivan", testPassword, "/")
	b3.confirm(used) // a replay
	b3.confirm(codes[0])
	logout := b3.get("/_2fa/logout")
	b3.post("/_2fa/logout", url.Values{"csrf": {b3.csrfFrom(logout)}})
	for range DefaultMaxAttempts + 1 {
		newBrowser(t).login("judy", "nope-nope", "/")
	}
	stopSites(t) // flush and close the log

	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	log := string(raw)
	for _, event := range []string{`"event":"login_failed"`, `"reason":"bad_password"`, `"event":"password_accepted"`, `"event":"enrolled"`,
		`"event":"signed_in"`, `"reason":"replayed_code"`, `"method":"recovery"`, `"event":"logout"`, `"event":"login_locked"`, `"client_ip":"127.0.0.1"`} {
		if !strings.Contains(log, event) {
			t.Errorf("audit log lacks %s", event)
		}
	}
	secrets := []string{testPassword, "wrong-password-123", "nope-nope", totpEncode(secret), used, token}
	secrets = append(secrets, codes...)
	scanner := bufio.NewScanner(strings.NewReader(log))
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		for _, s := range secrets {
			if s != "" && strings.Contains(scanner.Text(), s) {
				t.Errorf("log line contains a secret %q: %s", s, scanner.Text())
			}
		}
	}
}

func totpEncode(secret []byte) string { return b32NoPad.EncodeToString(secret) }

func TestAttackParallelGuessesStayWithinTheBudget(t *testing.T) {
	const parallel = 30
	t.Run("passwords", func(t *testing.T) {
		startSite(t, siteConfig{matcher: "/admin/*", extra: "max_ip_attempts 1000"})
		b := newBrowser(t)
		csrf := b.csrfFrom(b.get("/_2fa/login"))
		statuses := race(parallel, func(i int) int {
			return b.post("/_2fa/login", url.Values{"csrf": {csrf}, "username": {"alice"}, "password": {fmt.Sprintf("guess-%d", i)}}).status
		})
		if checked := statuses[http.StatusUnauthorized]; checked > DefaultMaxAttempts {
			t.Fatalf("%d of %d parallel password guesses were checked, budget %d (%v)", checked, parallel, DefaultMaxAttempts, statuses)
		}
	})
	t.Run("codes", func(t *testing.T) {
		startSite(t, siteConfig{matcher: "/admin/*", extra: "max_ip_attempts 1000"})
		newBrowser(t).enroll("bob")
		b := newBrowser(t)
		b.login("bob", testPassword, "/")
		csrf := b.csrfFrom(b.get("/_2fa/confirm"))
		statuses := race(parallel, func(i int) int {
			return b.post("/_2fa/confirm", url.Values{"csrf": {csrf}, "code": {fmt.Sprintf("%06d", 100000+i)}}).status
		})
		if checked := statuses[http.StatusUnauthorized]; checked > DefaultMaxAttempts {
			t.Fatalf("%d of %d parallel code guesses were checked, budget %d (%v)", checked, parallel, DefaultMaxAttempts, statuses)
		}
	})
}

// race runs n requests at once and counts their statuses.
func race(n int, request func(i int) int) map[int]int {
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		statuses = map[int]int{}
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := request(i)
			mu.Lock()
			statuses[s]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return statuses
}

func TestAttackRightAttemptsDoNotUseUpTheClientBudget(t *testing.T) {
	// An office behind one address signs in all day: only failures count.
	startSite(t, siteConfig{matcher: "/admin/*", extra: "max_ip_attempts 3"})
	for _, user := range testUsers[:6] {
		if r := newBrowser(t).login(user, testPassword, "/"); r.status != http.StatusSeeOther {
			t.Fatalf("right password of %s: %d", user, r.status)
		}
	}
}
