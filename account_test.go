package twofactor

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The account page, against the test Caddy (and, for attempt counting,
// the handler with an injected clock).

const (
	firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	iphoneUA  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)

// userAgent sets the User-Agent of a browser's requests.
type userAgent string

func (ua userAgent) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", string(ua))
	return http.DefaultTransport.RoundTrip(r)
}

func browserAs(t *testing.T, ua string) *browser {
	b := newBrowser(t)
	if ua != "" {
		b.client.Transport = userAgent(ua)
	}
	return b
}

// devices starts a site that allows concurrent sessions and signs user in
// on one browser per user agent ("" for Go's), enrolling on the first.
func devices(t *testing.T, user string, uas ...string) (secret []byte, codes []string, bs []*browser) {
	t.Helper()
	startSite(t, siteConfig{matcher: "/admin/*", extra: "concurrent_sessions"})
	for i, ua := range uas {
		b := browserAs(t, ua)
		if i == 0 {
			secret, codes = b.enroll(user)
		} else if r := b.signIn(user, secret); r.status != http.StatusSeeOther {
			t.Fatalf("sign-in of %s: %d", user, r.status)
		}
		bs = append(bs, b)
	}
	return secret, codes, bs
}

var (
	sessionRowPattern = regexp.MustCompile(`(?s)<tr>\s*<td title="([^"]*)">.*?</tr>`)
	sessionRefPattern = regexp.MustCompile(`name="session" value="([^"]+)"`)
)

// account returns b's account page, which must be served.
func (b *browser) account() response {
	b.t.Helper()
	page := b.get("/_2fa/account")
	if page.status != http.StatusOK {
		b.t.Fatalf("account page: %d to %q\n%s", page.status, page.location(), page.body)
	}
	return page
}

// sessionRef returns the reference of the session listed with the user
// agent ua on an account page.
func (b *browser) sessionRef(page response, ua string) string {
	b.t.Helper()
	for _, row := range sessionRowPattern.FindAllStringSubmatch(page.body, -1) {
		if row[1] == ua {
			if m := sessionRefPattern.FindStringSubmatch(row[0]); m != nil {
				return m[1]
			}
		}
	}
	b.t.Fatalf("no session of %q to end on the page:\n%s", ua, page.body)
	return ""
}

// accountAction posts an action of the account page.
func (b *browser) accountAction(action string, fields ...string) response {
	b.t.Helper()
	form := url.Values{"csrf": {b.csrfFrom(b.account())}, "action": {action}}
	for i := 0; i+1 < len(fields); i += 2 {
		form.Set(fields[i], fields[i+1])
	}
	return b.post("/_2fa/account", form)
}

func wantRedirect(t *testing.T, r response, location string) {
	t.Helper()
	if r.status != http.StatusSeeOther || r.location() != location {
		t.Fatalf("got %d to %q, want 303 to %q\n%s", r.status, r.location(), location, r.body)
	}
}

func TestAccountPageNeedsSignIn(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	wantRedirect(t, b.get("/_2fa/account"), "/_2fa/login?next=%2F_2fa%2Faccount")
	wantRedirect(t, b.post("/_2fa/account", url.Values{"action": {"others"}}), "/_2fa/login?next=%2F_2fa%2Faccount")
	wantRedirect(t, b.get("/_2fa/account/authenticator"), "/_2fa/login?next=%2F_2fa%2Faccount")

	// Half signed in is not signed in.
	secret, _ := b.enroll("alice")
	other := newBrowser(t)
	if r := other.login("alice", testPassword, "/_2fa/account"); r.location() != "/_2fa/confirm" {
		t.Fatalf("login: %d to %q", r.status, r.location())
	}
	wantRedirect(t, other.get("/_2fa/account"), "/_2fa/login?next=%2F_2fa%2Faccount")
	// Signing in comes back to the account page.
	wantRedirect(t, other.confirm(other.code("alice", secret)), "/_2fa/account")
	other.account()
}

func TestAccountPageShowsEnrollmentAndSessions(t *testing.T) {
	_, _, bs := devices(t, "alice", firefoxUA, iphoneUA)
	laptop := bs[0]
	halfway := newBrowser(t)
	halfway.login("alice", testPassword, "/admin/")
	newBrowser(t).enroll("bob")

	page := laptop.account()
	today := time.Now().UTC().Format("2 Jan 2006")
	for _, want := range []string{
		"Signed in as <strong>alice</strong>",
		"<dd>On since " + today,
		`<dd id="codes-left">10</dd>`,
		`<td title="` + firefoxUA + `">Firefox on Linux <strong>(this device)</strong>`,
		`<td title="` + iphoneUA + `">Safari on iPhone</td>`,
		`<span class="hint">(signing in)</span>`,
		`id="sign-out-others"`,
		// Just signed in: changes need no further confirmation.
		`id="replace-authenticator"`,
	} {
		if !strings.Contains(page.body, want) {
			t.Errorf("account page lacks %q", want)
		}
	}
	if !regexp.MustCompile(`<td>(127\.0\.0\.1|::1)</td>`).MatchString(page.body) {
		t.Error("account page shows no client IP")
	}
	if rows := sessionRowPattern.FindAllString(page.body, -1); len(rows) != 3 {
		t.Errorf("%d sessions listed, want alice's 3", len(rows))
	}
	if n := strings.Count(page.body, `name="session"`); n != 2 {
		t.Errorf("%d sessions can be ended, want the 2 others", n)
	}
}

func TestAccountEndsSessions(t *testing.T) {
	_, _, bs := devices(t, "carol", firefoxUA, iphoneUA, "Tablet/1.0")
	laptop, phone, tablet := bs[0], bs[1], bs[2]

	wantRedirect(t, laptop.accountAction("end", "session", laptop.sessionRef(laptop.account(), iphoneUA)), "/_2fa/account?done=ended")
	if r := phone.get("/admin/"); r.status != http.StatusFound {
		t.Fatalf("ended session still open: %d", r.status)
	}
	for _, b := range []*browser{laptop, tablet} {
		if r := b.get("/admin/"); r.status != http.StatusOK {
			t.Fatalf("a session that was not ended is closed: %d", r.status)
		}
	}
	if page := laptop.get("/_2fa/account?done=ended"); !strings.Contains(page.body, accountNotices["ended"]) {
		t.Errorf("no notice after ending a session:\n%s", page.body)
	}

	wantRedirect(t, laptop.accountAction("others"), "/_2fa/account?done=others")
	if r := tablet.get("/admin/"); r.status != http.StatusFound {
		t.Fatalf("other session survived signing out everywhere else: %d", r.status)
	}
	if r := laptop.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("signing out everywhere else closed this session: %d", r.status)
	}
	if page := laptop.account(); strings.Contains(page.body, `id="sign-out-others"`) || len(sessionRowPattern.FindAllString(page.body, -1)) != 1 {
		t.Errorf("other sessions still listed:\n%s", page.body)
	}
}

func TestAccountCannotEndAnotherUsersSession(t *testing.T) {
	_, _, bs := devices(t, "dave", firefoxUA, iphoneUA)
	daveLaptop, davePhone := bs[0], bs[1]
	ref := daveLaptop.sessionRef(daveLaptop.account(), iphoneUA)

	erin := newBrowser(t)
	erin.enroll("erin")
	wantRedirect(t, erin.accountAction("end", "session", ref), "/_2fa/account?done=ended")
	if r := davePhone.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("erin ended dave's session: %d", r.status)
	}
}

func TestAccountFormsNeedCSRFAndSameOrigin(t *testing.T) {
	_, _, bs := devices(t, "frank", "", "")
	b, other := bs[0], bs[1]
	csrf := b.csrfFrom(b.account())
	for name, tc := range map[string]struct {
		form    url.Values
		headers []string
	}{
		"no token":      {url.Values{"action": {"others"}}, nil},
		"wrong token":   {url.Values{"action": {"others"}, "csrf": {csrf + "x"}}, nil},
		"other origin":  {url.Values{"action": {"others"}, "csrf": {csrf}}, []string{"Origin: https://evil.example"}},
		"cross-site":    {url.Values{"action": {"others"}, "csrf": {csrf}}, []string{"Sec-Fetch-Site: cross-site"}},
		"re-enrollment": {url.Values{"code": {"123456"}}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			path := "/_2fa/account"
			if name == "re-enrollment" {
				path += "/authenticator"
			}
			if r := b.post(path, tc.form, tc.headers...); r.status != http.StatusForbidden {
				t.Errorf("status %d, want 403", r.status)
			}
		})
	}
	if r := other.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("a forged form ended a session: %d", r.status)
	}
	if r := b.accountAction("nonsense"); r.status != http.StatusBadRequest {
		t.Errorf("unknown action: %d", r.status)
	}
}

func TestAccountNewRecoveryCodes(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	secret, oldCodes := b.enroll("grace")
	page := b.accountAction("codes", "code", b.code("grace", secret))
	if page.status != http.StatusOK {
		t.Fatalf("new codes: %d\n%s", page.status, page.body)
	}
	var newCodes []string
	for _, m := range recoveryPattern.FindAllStringSubmatch(page.body, -1) {
		newCodes = append(newCodes, m[1])
	}
	if len(newCodes) != DefaultRecoveryCodes || newCodes[0] == oldCodes[0] {
		t.Fatalf("new codes %q, old %q", newCodes, oldCodes)
	}
	if !strings.Contains(page.body, `name="next" value="/_2fa/account"`) {
		t.Errorf("the codes page does not lead back to the account page:\n%s", page.body)
	}
	// Its continue button: login with a signed-in session goes on to next.
	wantRedirect(t, b.get("/_2fa/login?next=%2F_2fa%2Faccount"), "/_2fa/account")

	other := newBrowser(t)
	other.login("grace", testPassword, "/admin/")
	if r := other.confirm(oldCodes[0]); r.status != http.StatusUnauthorized {
		t.Fatalf("an old recovery code still works: %d", r.status)
	}
	wantRedirect(t, other.confirm(newCodes[0]), "/admin/")
	if page := other.account(); !strings.Contains(page.body, `<dd id="codes-left">9</dd>`) {
		t.Errorf("codes left after using one:\n%s", page.body)
	}
}

func TestAccountReplaceAuthenticator(t *testing.T) {
	oldSecret, codes, bs := devices(t, "heidi", "", "")
	laptop, phone := bs[0], bs[1]

	page := laptop.get("/_2fa/account/authenticator")
	m := secretPattern.FindStringSubmatch(page.body)
	if page.status != http.StatusOK || m == nil || !strings.Contains(page.body, "Replace your authenticator") ||
		!strings.Contains(page.body, `action="/_2fa/account/authenticator"`) {
		t.Fatalf("replace page: %d\n%s", page.status, page.body)
	}
	newSecret, err := totpDecode(m[1])
	if err != nil {
		t.Fatal(err)
	}
	csrf := laptop.csrfFrom(page)
	replace := func(current, code string) response {
		return laptop.post("/_2fa/account/authenticator", url.Values{"csrf": {csrf}, "current": {current}, "code": {code}})
	}
	// A code of the old authenticator does not activate the new one.
	if r := replace(codes[1], laptop.code("heidi", oldSecret)); r.status != http.StatusUnauthorized {
		t.Fatalf("old code accepted for the new authenticator: %d", r.status)
	}
	wantRedirect(t, replace(codes[1], laptop.code("heidi", newSecret)), "/_2fa/account?done=authenticator")

	if r := phone.get("/admin/"); r.status != http.StatusFound {
		t.Fatalf("the other session survived the new authenticator: %d", r.status)
	}
	if r := laptop.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("replacing the authenticator signed this session out: %d", r.status)
	}
	// The old authenticator no longer signs in; the new one and the old
	// recovery codes do.
	fresh := newBrowser(t)
	fresh.login("heidi", testPassword, "/admin/")
	if r := fresh.confirm(codeAt(t, oldSecret, totpStep(time.Now()))); r.status != http.StatusUnauthorized {
		t.Fatalf("old authenticator still signs in: %d", r.status)
	}
	wantRedirect(t, fresh.confirm(fresh.code("heidi", newSecret)), "/admin/")
	recovered := newBrowser(t)
	recovered.login("heidi", testPassword, "/admin/")
	wantRedirect(t, recovered.confirm(codes[0]), "/admin/")
	// The pending secret is gone: the page makes a new one, each time.
	again := laptop.get("/_2fa/account/authenticator")
	if strings.Contains(again.body, m[1]) {
		t.Error("the used secret is offered again")
	}
	if third := laptop.get("/_2fa/account/authenticator"); secretPattern.FindStringSubmatch(third.body)[1] == secretPattern.FindStringSubmatch(again.body)[1] {
		t.Error("the page showed the same new secret twice: a script that read it once would know the one activated")
	}
}

// TestAttackSameSiteScriptCannotChangeTheSecondFactor plays a script of the
// application behind the gate (an XSS there): it has the user's cookies
// and reads the account pages' tokens, right after the user signed in, but
// has no code. It can replace neither the recovery codes nor the
// authenticator; with a code, the user can, once per code.
func TestAttackSameSiteScriptCannotChangeTheSecondFactor(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	secret, codes := b.enroll("ivan")

	for name, fields := range map[string][]string{"no code": nil, "wrong code": {"code", "000000"}, "malformed": {"code", "x"}} {
		r := b.accountAction("codes", fields...)
		if r.status != http.StatusBadRequest && r.status != http.StatusUnauthorized {
			t.Errorf("new recovery codes with %s: %d", name, r.status)
		}
		if recoveryPattern.MatchString(r.body) {
			t.Fatalf("new recovery codes with %s", name)
		}
	}
	page := b.get("/_2fa/account/authenticator")
	newSecret, err := totpDecode(secretPattern.FindStringSubmatch(page.body)[1])
	if err != nil {
		t.Fatal(err)
	}
	// The script knows the new secret it just read, but no current code.
	form := url.Values{"csrf": {b.csrfFrom(page)}, "code": {b.code("ivan", newSecret)}}
	if r := b.post("/_2fa/account/authenticator", form); r.status != http.StatusBadRequest {
		t.Fatalf("authenticator replaced without a current code: %d", r.status)
	}
	form.Set("current", "000000")
	form.Set("code", b.code("ivan", newSecret))
	if r := b.post("/_2fa/account/authenticator", form); r.status != http.StatusUnauthorized {
		t.Fatalf("authenticator replaced with a wrong current code: %d", r.status)
	}
	if r := b.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("the failed attempts signed the user out: %d", r.status)
	}

	// The user, with codes: each works once, a recovery code too.
	code := b.code("ivan", secret)
	if r := b.accountAction("codes", "code", code); r.status != http.StatusOK || !recoveryPattern.MatchString(r.body) {
		t.Fatalf("new codes with a right code: %d", r.status)
	}
	if r := b.accountAction("codes", "code", code); r.status != http.StatusUnauthorized {
		t.Fatalf("a code replaced the recovery codes twice: %d", r.status)
	}
	if r := b.accountAction("codes", "code", codes[0]); r.status != http.StatusUnauthorized {
		t.Fatalf("a recovery code replaced by the new ones still works: %d", r.status)
	}
}

func TestAccountChangesCountFailures(t *testing.T) {
	s := newClockSite(t, nil)
	b := s.browser(t)
	b.enroll("judy")
	for range DefaultMaxAttempts {
		b.accountAction("codes", "code", "000000")
	}
	if r := b.accountAction("codes", "code", "000000"); r.status != http.StatusTooManyRequests {
		t.Fatalf("account changes not locked after %d failures: %d", DefaultMaxAttempts, r.status)
	}
	// The lock is the account's: sign-in is locked too.
	if r := s.browser(t).login("judy", testPassword, "/app"); r.status != http.StatusTooManyRequests {
		t.Fatalf("sign-in not locked: %d", r.status)
	}
}

func TestLogoutPageLinksToTheAccount(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	b.enroll("mallory")
	if r := b.get("/_2fa/logout"); !strings.Contains(r.body, `href="/_2fa/account"`) {
		t.Errorf("no account link for a signed-in user:\n%s", r.body)
	}
	halfway := newBrowser(t)
	halfway.login("mallory", testPassword, "/admin/")
	if r := halfway.get("/_2fa/logout"); !strings.Contains(r.body, "Sign out") || strings.Contains(r.body, `href="/_2fa/account"`) {
		t.Errorf("account link for a half-signed-in user:\n%s", r.body)
	}
}
