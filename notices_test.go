package twofactor

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/internal/mailtest"
	"github.com/caddy-two-factor/caddy-two-factor/notify"
)

// The notice tests run a real SMTP server (internal/mailtest) and a webhook
// receiver on loopback, and a site whose notify block names them.

// mailUsers are declared with an address in notice test sites.
var mailUsers = []string{"nadia", "oscar", "peggy", "quinn", "rupert", "sybil"}

// hook is a webhook receiver that keeps the JSON it gets.
type hook struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []map[string]any
	raw []string
	// arrived is signalled on each POST.
	arrived chan struct{}
}

func startHook(t *testing.T) *hook {
	t.Helper()
	h := &hook{arrived: make(chan struct{}, 100)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var v map[string]any
		if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &v) != nil {
			t.Errorf("webhook got %s %q", r.Header.Get("Content-Type"), body)
		}
		h.mu.Lock()
		h.got, h.raw = append(h.got, v), append(h.raw, string(body))
		h.mu.Unlock()
		h.arrived <- struct{}{}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// wait returns the first payload of event, waiting for it.
func (h *hook) wait(t *testing.T, event notify.Event) (map[string]any, string) {
	t.Helper()
	deadline := time.After(mailtest.Timeout)
	for {
		h.mu.Lock()
		for i, v := range h.got {
			if v["event"] == string(event) {
				h.mu.Unlock()
				return v, h.raw[i]
			}
		}
		h.mu.Unlock()
		select {
		case <-h.arrived:
		case <-deadline:
			t.Fatalf("no %s webhook within %s", event, mailtest.Timeout)
		}
	}
}

func (h *hook) count(event notify.Event) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, v := range h.got {
		if v["event"] == string(event) {
			n++
		}
	}
	return n
}

// noticeSite is a test site with notices (and e-mailed codes) on.
type noticeSite struct {
	*testSite
	mail *mailtest.Server
	hook *hook
}

// startNoticeSite starts a site that sends notices to ms (nil: a mail
// server that is down) and a webhook, with extra lines in two_factor.
func startNoticeSite(t *testing.T, ms *mailtest.Server, extra string) *noticeSite {
	t.Helper()
	return startNoticeSiteLogging(t, ms, extra, "")
}

// startNoticeSiteLogging is startNoticeSite with Caddy's logs written to
// logFile ("" for none).
func startNoticeSiteLogging(t *testing.T, ms *mailtest.Server, extra, logFile string) *noticeSite {
	t.Helper()
	return startNoticeSiteConfig(t, ms, extra, siteConfig{logFile: logFile})
}

// startNoticeSiteConfig is startNoticeSite on cfg's database and log
// file. e-mailed codes are on; extra may turn them on its own way
// (email_codes step_up).
func startNoticeSiteConfig(t *testing.T, ms *mailtest.Server, extra string, cfg siteConfig) *noticeSite {
	t.Helper()
	h := startHook(t)
	addr := ""
	if ms != nil {
		addr = ms.Addr
	} else {
		addr = deadAddress(t)
	}
	var users strings.Builder
	for _, u := range mailUsers {
		fmt.Fprintf(&users, "user %s %s %s@example.com\n\t\t", u, testHash(), u)
	}
	emailCodes := "email_codes"
	if strings.Contains(extra, "email_codes") {
		emailCodes = ""
	}
	cfg.matcher = "/admin/*"
	cfg.extra = users.String() + fmt.Sprintf(`notify {
			smtp %s insecure
			from "Example Admin <admin@example.com>"
			webhook %s/hook
			account_url %s/_2fa/account
		}
		%s
		%s`, addr, h.srv.URL, testBase(), emailCodes, extra)
	site := startSite(t, cfg)
	return &noticeSite{testSite: site, mail: ms, hook: h}
}

// deadAddress is a loopback address nobody listens on.
func deadAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// mailTo waits for a message to addr whose subject contains subject.
func mailTo(t *testing.T, ms *mailtest.Server, addr, subject string) (mailtest.Message, string) {
	t.Helper()
	for {
		got := ms.Received()
		for _, m := range got {
			if _, s, body := mailtest.Read(t, m.Data); m.To == addr && strings.Contains(s, subject) {
				return m, body
			}
		}
		ms.Wait(t, len(got)+1) // fails the test if none comes
	}
}

// checkMail checks the headers every notice has, and that the body says
// what to do if it was not the user.
func checkMail(t *testing.T, m mailtest.Message, user string) {
	t.Helper()
	msg, _, body := mailtest.Read(t, m.Data)
	for header, want := range map[string]string{
		"From":           "\"Example Admin\" <admin@example.com>",
		"To":             "<" + user + "@example.com>",
		"Auto-Submitted": "auto-generated",
		"Content-Type":   "text/plain; charset=UTF-8",
	} {
		if got := msg.Header.Get(header); got != want {
			t.Errorf("%s: %q, want %q", header, got, want)
		}
	}
	if m.From != "admin@example.com" {
		t.Errorf("envelope sender %q", m.From)
	}
	for _, want := range []string{"caddy two-factor revoke " + user, testBase() + "/_2fa/account", "IP address: 127.0.0.1"} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(string(m.Data), testPassword) {
		t.Error("a notice holds the password")
	}
}

func TestNoticeNewBrowser(t *testing.T) {
	site := startNoticeSite(t, mailtest.Start(t, mailtest.PlainOnly, nil), "")
	secret, _ := newBrowser(t).enroll("nadia")
	if r := browserAs(t, firefoxUA).signIn("nadia", secret); r.status != http.StatusSeeOther {
		t.Fatalf("sign-in from Firefox: %d", r.status)
	}
	m, body := mailTo(t, site.mail, "nadia@example.com", "New sign-in to your account nadia")
	checkMail(t, m, "nadia")
	if !strings.Contains(body, "Browser: Firefox on Linux") {
		t.Errorf("body does not name the browser:\n%s", body)
	}
	v, raw := site.hook.wait(t, notify.SignInNewBrowser)
	if v["user"] != "nadia" || v["browser"] != "Firefox on Linux" || v["client_ip"] != "127.0.0.1" || v["id"] == "" || v["title"] == "" {
		t.Errorf("webhook payload %s", raw)
	}
	if strings.Contains(raw, "nadia@example.com") {
		t.Errorf("the webhook payload holds the address: %s", raw)
	}
	// The same browser again is not new: the next notice is the operator's.
	if r := browserAs(t, firefoxUA).signIn("nadia", secret); r.status != http.StatusSeeOther {
		t.Fatalf("second sign-in from Firefox: %d", r.status)
	}
	if status, body := adminCall(t, http.MethodPost, "/two_factor/users/nadia/revoke", ""); status != http.StatusOK {
		t.Fatalf("revoke: %d %s", status, body)
	}
	site.hook.wait(t, notify.OperatorRevoke)
	if n := site.hook.count(notify.SignInNewBrowser); n != 1 {
		t.Errorf("%d new-browser notices, want 1", n)
	}
}

// A notice is written in the language the pages chose for the browser
// that caused it; an operator's action, with no browser, in the default.
func TestNoticeInTheBrowsersLanguage(t *testing.T) {
	site := startNoticeSite(t, mailtest.Start(t, mailtest.PlainOnly, nil), "")
	secret, _ := newBrowser(t).enroll("nadia")
	b := browserAs(t, firefoxUA)
	b.client.Transport = withHeader{b.client.Transport, "Accept-Language", "de-AT,de;q=0.9,en;q=0.5"}
	if r := b.signIn("nadia", secret); r.status != http.StatusSeeOther {
		t.Fatalf("sign-in from Firefox: %d", r.status)
	}
	_, body := mailTo(t, site.mail, "nadia@example.com", "Neue Anmeldung bei Ihrem Konto nadia")
	if !strings.Contains(body, "caddy two-factor revoke nadia") {
		t.Errorf("German body lacks the revoke command:\n%s", body)
	}
	if v, raw := site.hook.wait(t, notify.SignInNewBrowser); v["language"] != "de" || !strings.Contains(raw, "Neue Anmeldung") {
		t.Errorf("webhook payload %s", raw)
	}
	if status, body := adminCall(t, http.MethodPost, "/two_factor/users/nadia/revoke", ""); status != http.StatusOK {
		t.Fatalf("revoke: %d %s", status, body)
	}
	mailTo(t, site.mail, "nadia@example.com", "Your sessions for nadia were signed out")
}

// withHeader sets one more request header on every request.
type withHeader struct {
	next        http.RoundTripper
	name, value string
}

func (h withHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(h.name, h.value)
	return h.next.RoundTrip(r)
}

func TestNoticeRecoveryCodes(t *testing.T) {
	site := startNoticeSite(t, mailtest.Start(t, mailtest.PlainOnly, nil), "recovery_codes 4")
	_, codes := newBrowser(t).enroll("oscar")
	for i, want := range []struct {
		subject string
		event   notify.Event
	}{
		{"A recovery code was used for oscar", notify.RecoveryCodeUsed},
		{"Few recovery codes left for oscar", notify.RecoveryCodesLow},
	} {
		b := newBrowser(t)
		if r := b.login("oscar", testPassword, "/admin/"); r.status != http.StatusSeeOther {
			t.Fatalf("login: %d", r.status)
		}
		if r := b.confirm(codes[i]); r.status != http.StatusSeeOther {
			t.Fatalf("recovery code: %d", r.status)
		}
		m, body := mailTo(t, site.mail, "oscar@example.com", want.subject)
		checkMail(t, m, "oscar")
		left := 4 - (i + 1)
		if !strings.Contains(body, fmt.Sprintf(" %d recovery code", left)) {
			t.Errorf("body does not say %d are left:\n%s", left, body)
		}
		if v, raw := site.hook.wait(t, want.event); v["recovery_codes_left"] != float64(left) {
			t.Errorf("webhook payload %s", raw)
		}
		if strings.Contains(string(m.Data), codes[i]) {
			t.Error("the notice holds the recovery code")
		}
	}
}

func TestNoticeAccountLocked(t *testing.T) {
	site := startNoticeSite(t, mailtest.Start(t, mailtest.PlainOnly, nil), "max_attempts 2")
	newBrowser(t).enroll("peggy")
	b := newBrowser(t)
	b.login("peggy", testPassword, "/admin/")
	for range 2 {
		if r := b.confirm("000000"); r.status != http.StatusUnauthorized {
			t.Fatalf("wrong code: %d", r.status)
		}
	}
	// Refused attempts while locked tell nothing new.
	for range 3 {
		if r := b.login("peggy", testPassword, "/admin/"); r.status != http.StatusTooManyRequests {
			t.Fatalf("login while locked: %d", r.status)
		}
	}
	m, _ := mailTo(t, site.mail, "peggy@example.com", "Your account peggy is locked for now")
	checkMail(t, m, "peggy")
	site.hook.wait(t, notify.AccountLocked)
	if status, body := adminCall(t, http.MethodPost, "/two_factor/users/peggy/reset", ""); status != http.StatusOK {
		t.Fatalf("reset: %d %s", status, body)
	}
	site.hook.wait(t, notify.OperatorReset) // queued after the others
	if n := site.hook.count(notify.AccountLocked); n != 1 {
		t.Errorf("%d account_locked notices, want 1", n)
	}
}

func TestNoticeOperatorActions(t *testing.T) {
	site := startNoticeSite(t, mailtest.Start(t, mailtest.PlainOnly, nil), "")
	// A database user's address is theirs in the store.
	hash := testHash()
	if status, body := adminCall(t, http.MethodPost, "/two_factor/users", fmt.Sprintf(`{"name":"trent","password_hash":%q,"email":"trent@example.com"}`, hash)); status != http.StatusCreated {
		t.Fatalf("add-user: %d %s", status, body)
	}
	for _, tc := range []struct {
		method, path, body, to, subject string
		event                           notify.Event
	}{
		{http.MethodPut, "/two_factor/users/trent/password", fmt.Sprintf(`{"password_hash":%q}`, hash), "trent@example.com", "The password of trent was changed", notify.OperatorPasswordChange},
		{http.MethodPost, "/two_factor/users/quinn/revoke", "", "quinn@example.com", "Your sessions for quinn were signed out", notify.OperatorRevoke},
		{http.MethodPost, "/two_factor/users/quinn/reset", "", "quinn@example.com", "Your two-factor sign-in for quinn was reset", notify.OperatorReset},
	} {
		if status, body := adminCall(t, tc.method, tc.path, tc.body); status != http.StatusOK {
			t.Fatalf("%s %s: %d %s", tc.method, tc.path, status, body)
		}
		msg, _, body := mailtest.Read(t, func() []byte { m, _ := mailTo(t, site.mail, tc.to, tc.subject); return m.Data }())
		if !strings.Contains(body, "An administrator") || msg.Header.Get("To") != "<"+tc.to+">" {
			t.Errorf("%s: %s", tc.event, body)
		}
		site.hook.wait(t, tc.event)
	}
	// set-email changes where notices go.
	if status, body := adminCall(t, http.MethodPut, "/two_factor/users/trent/email", `{"email":"t.new@example.com"}`); status != http.StatusOK || !strings.Contains(body, `"email": "t.new@example.com"`) && !strings.Contains(body, `"email":"t.new@example.com"`) {
		t.Fatalf("set-email: %d %s", status, body)
	}
	if status, body := adminCall(t, http.MethodPut, "/two_factor/users/trent/email", `{"email":"x@y\r\nBcc: z@w"}`); status != http.StatusBadRequest {
		t.Fatalf("set-email with a line break: %d %s", status, body)
	}
	if status, body := adminCall(t, http.MethodPut, "/two_factor/users/quinn/email", `{"email":"q@example.com"}`); status != http.StatusConflict {
		t.Fatalf("set-email of a declared user: %d %s", status, body)
	}
	adminCall(t, http.MethodPost, "/two_factor/users/trent/revoke", "")
	mailTo(t, site.mail, "t.new@example.com", "Your sessions for trent were signed out")
}

var (
	emailOfferPattern = regexp.MustCompile(`We send an 8-digit code to ([^<]+)\.`)
	mailedCodePattern = regexp.MustCompile(`Your sign-in code is (\d{8})`)
)

// askForCode posts "E-mail me a code" from the confirm page.
func (b *browser) askForCode() response {
	b.t.Helper()
	page := b.get("/_2fa/confirm")
	return b.post("/_2fa/confirm/email", url.Values{"csrf": {b.csrfFrom(page)}})
}

func TestEmailCodeSignIn(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	site := startNoticeSiteLogging(t, mailtest.Start(t, mailtest.PlainOnly, nil), "", logFile)
	newBrowser(t).enroll("rupert")
	b := newBrowser(t)
	b.login("rupert", testPassword, "/admin/")
	page := b.get("/_2fa/confirm")
	if m := emailOfferPattern.FindStringSubmatch(page.body); m == nil || m[1] != "r***@example.com" {
		t.Fatalf("confirm page offers no e-mailed code to r***@example.com:\n%s", page.body)
	}
	if strings.Contains(page.body, "rupert@example.com") {
		t.Fatal("the confirm page shows the whole address")
	}
	sent := b.askForCode()
	if sent.status != http.StatusOK || !strings.Contains(sent.body, "a code is on its way to r***@example.com") {
		t.Fatalf("asking for a code: %d\n%s", sent.status, sent.body)
	}
	m, body := mailTo(t, site.mail, "rupert@example.com", "Your sign-in code for rupert")
	checkMail(t, m, "rupert")
	code := mailedCodePattern.FindStringSubmatch(body)
	if code == nil {
		t.Fatalf("no code in the mail:\n%s", body)
	}
	if v, raw := site.hook.wait(t, notify.EmailCode); strings.Contains(raw, code[1]) || v["user"] != "rupert" {
		t.Errorf("the webhook learns more than that a code was sent: %s", raw)
	}
	done := b.post("/_2fa/confirm", url.Values{"csrf": {b.csrfFrom(b.get("/_2fa/confirm"))}, "code": {code[1]}})
	wantRedirect(t, done, "/admin/")
	if r := b.get("/admin/"); !strings.Contains(r.body, "method=email") {
		t.Fatalf("admin area: %s", r.body)
	}
	// Single use: the code does not open another pending session.
	b2 := newBrowser(t)
	b2.login("rupert", testPassword, "/admin/")
	if r := b2.confirm(code[1]); r.status != http.StatusUnauthorized {
		t.Fatalf("the code a second time: %d", r.status)
	}
	// The log tells of the code, never the code or the address.
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logs), `"email_code_sent"`) {
		t.Error("no audit line of the e-mailed code")
	}
	for _, secret := range []string{code[1], "rupert@example.com"} {
		if strings.Contains(string(logs), secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

func TestEmailCodeLimits(t *testing.T) {
	site := startNoticeSite(t, mailtest.Start(t, mailtest.PlainOnly, nil), "")
	newBrowser(t).enroll("sybil")
	b := newBrowser(t)
	b.login("sybil", testPassword, "/admin/")
	for i := range 3 {
		if r := b.askForCode(); r.status != http.StatusOK {
			t.Fatalf("request %d: %d", i+1, r.status)
		}
	}
	r := b.askForCode()
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "You have asked for several codes already") {
		t.Fatalf("request 4: %d %q\n%s", r.status, r.header.Get("Retry-After"), r.body)
	}
	site.mail.Wait(t, 3)
	// Wrong e-mailed codes use the budget of wrong codes (max_attempts 5).
	for i := range 5 {
		if r := b.confirm("12345678"); r.status != http.StatusUnauthorized {
			t.Fatalf("wrong e-mailed code %d: %d", i+1, r.status)
		}
	}
	if r := b.confirm("12345678"); r.status != http.StatusTooManyRequests {
		t.Fatalf("after 5 wrong codes: %d", r.status)
	}
}

// TestEmailCodeBrokenMailServer: with the mail server down, asking for a
// code is answered as when it is up, and the sign-in with an
// authenticator goes on.
func TestEmailCodeBrokenMailServer(t *testing.T) {
	startNoticeSite(t, nil, "")
	secret, _ := newBrowser(t).enroll("nadia")
	b := newBrowser(t)
	b.login("nadia", testPassword, "/admin/")
	start := time.Now()
	sent := b.askForCode()
	if sent.status != http.StatusOK || !strings.Contains(sent.body, "a code is on its way to n***@example.com") {
		t.Fatalf("asking for a code with the mail server down: %d\n%s", sent.status, sent.body)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("asking took %s with the mail server down", took)
	}
	wantRedirect(t, b.confirm(b.code("nadia", secret)), "/admin/")
}

func TestNoticeTemplatesDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "notify"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, "notify", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("operator_revoke.subject.txt", "Sessions ended for {{.User}} (custom)")
	// templates_dir holds pages too; one is enough.
	page, err := os.ReadFile("templates/error.html")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "error.html"), page, 0o644); err != nil {
		t.Fatal(err)
	}
	site := startNoticeSite(t, mailtest.Start(t, mailtest.PlainOnly, nil), "templates_dir "+dir)
	adminCall(t, http.MethodPost, "/two_factor/users/nadia/revoke", "")
	mailTo(t, site.mail, "nadia@example.com", "Sessions ended for nadia (custom)")

	// A template that does not parse, or names no message, is a config error.
	for name, text := range map[string]string{"operator_revoke.body.txt": "{{.User", "no_such_message.txt": "hi"} {
		bad := t.TempDir()
		if err := os.MkdirAll(filepath.Join(bad, "notify"), 0o755); err != nil {
			t.Fatal(err)
		}
		for file, content := range map[string][]byte{"error.html": page, filepath.Join("notify", name): []byte(text)} {
			if err := os.WriteFile(filepath.Join(bad, file), content, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cfg := caddyfileFor(siteConfig{db: filepath.Join(t.TempDir(), "x.db"), extra: fmt.Sprintf("notify {\n\t\t\twebhook %s\n\t\t}\n\t\ttemplates_dir %s", site.hook.srv.URL, bad)})
		if msg := loadFails(t, cfg); !strings.Contains(msg, "notice template") {
			t.Errorf("%s: refused with %s", name, msg)
		}
	}
}

// TestNoticeDispatcherEndsWithItsConfig: a reload and a stop leave no
// dispatcher goroutine behind.
func TestNoticeDispatcherEndsWithItsConfig(t *testing.T) {
	ms := mailtest.Start(t, mailtest.PlainOnly, nil)
	startNoticeSite(t, ms, "")
	if n := dispatcherGoroutines(); n != 2 {
		t.Fatalf("%d dispatcher goroutines with one config (SMTP and a webhook), want 2", n)
	}
	startNoticeSite(t, ms, "") // a reload
	if n := dispatcherGoroutines(); n != 2 {
		t.Fatalf("%d dispatcher goroutines after a reload, want 2", n)
	}
	stopSites(t)
	if n := dispatcherGoroutines(); n != 0 {
		t.Fatalf("%d dispatcher goroutines after the config is gone", n)
	}
}

// dispatcherGoroutines counts the running workers of notify dispatchers.
func dispatcherGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "notify.(*Dispatcher).run(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestNoticeSentOnceByTwoInstances: two instances on one Redis store both
// report the same lock (the failure that set it on A, a refused sign-in
// on B); the notice they queue has one ID, which one instance claims in
// Redis, so the user gets one e-mail and each webhook one POST.
func TestNoticeSentOnceByTwoInstances(t *testing.T) {
	ms := mailtest.Start(t, mailtest.PlainOnly, nil)
	hk := startHook(t)
	_, a, b := twoInstances(t, func(h *TwoFactor) {
		h.MaxAttempts = 2
		h.Users = append(h.Users, Account{Username: "nadia", Password: testHash(), Email: "nadia@example.com"})
		h.Notify = &Notify{SMTP: ms.Addr, SMTPSecurity: "insecure", From: "Example Admin <admin@example.com>", Webhooks: []string{hk.srv.URL}}
	})
	enroller := a.browser(t)
	enroller.now = time.Now
	enroller.enroll("nadia")
	onA := a.browser(t)
	onA.login("nadia", testPassword, "/app")
	for range 2 {
		if r := onA.confirm("000000"); r.status != http.StatusUnauthorized {
			t.Fatalf("wrong code on A: %d", r.status)
		}
	}
	hk.wait(t, notify.AccountLocked)
	onB := b.browser(t)
	onB.now = time.Now
	if r := onB.login("nadia", testPassword, "/app"); r.status != http.StatusTooManyRequests {
		t.Fatalf("sign-in on B while locked: %d", r.status)
	}
	// B's notices go out in order: once its revoke notice is in, so is
	// whatever it did with the lock.
	if _, err := b.h.db.administer(adminRequest{Action: actionRevoke, Name: "nadia"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	hk.wait(t, notify.OperatorRevoke)
	mailTo(t, ms, "nadia@example.com", "Your sessions for nadia were signed out")
	if n := hk.count(notify.AccountLocked); n != 1 {
		t.Errorf("%d account_locked webhook POSTs from two instances, want 1", n)
	}
	locked := 0
	for _, m := range ms.Received() {
		if _, subject, _ := mailtest.Read(t, m.Data); strings.Contains(subject, "is locked") {
			locked++
		}
	}
	if locked != 1 {
		t.Errorf("%d account_locked e-mails from two instances, want 1", locked)
	}
}

// TestCommandEmail gives database users addresses from the command line,
// through the admin API and, with Caddy stopped, on the file; the users
// list shows them, and bad or declared ones are refused.
func TestCommandEmail(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*"})
	run := cliFor(t)
	run("", "add-user", "zoe", "--email", "zoe@example.com", "--password-file", passwordFile(t, testPassword)).mustSucceed(t)
	if zoe := usersOf(t, run)["zoe"]; zoe.Email != "zoe@example.com" {
		t.Fatalf("zoe after add-user --email: %+v", zoe)
	}
	if out := run("", "set-email", "zoe", "Zoe <z@example.org>").mustSucceed(t); !strings.Contains(out.stdout, "Set the e-mail address of zoe") {
		t.Errorf("set-email said %q", out.stdout)
	}
	if zoe := usersOf(t, run)["zoe"]; zoe.Email != "z@example.org" {
		t.Fatalf("zoe after set-email: %+v", zoe)
	}
	for _, tc := range []struct {
		args []string
		code string
	}{
		{[]string{"set-email", "zoe", "z@example.org\r\nBcc: x@example.net"}, codeBadRequest},
		{[]string{"set-email", "zoe", "not an address"}, codeBadRequest},
		{[]string{"set-email", "alice", "alice@example.com"}, codeDefinedInConfig},
		{[]string{"set-email", "nobody", "n@example.com"}, codeUnknownUser},
	} {
		if code := run("", append(tc.args, "--json")...).refusal(t); code != tc.code {
			t.Errorf("%q: code %q, want %q", tc.args, code, tc.code)
		}
	}
	stopSites(t)
	twoFactorCommand(t, "", "set-email", "zoe", "", "--address", adminAddress(), "--db", site.db).mustSucceed(t)
	startSite(t, siteConfig{matcher: "/admin/*", db: site.db})
	if zoe := usersOf(t, cliFor(t))["zoe"]; zoe.Email != "" {
		t.Fatalf("zoe after set-email \"\" on the file: %+v", zoe)
	}
}

// TestNoticeAuthenticatorReplaced: the account page shows the user's
// address, and a new authenticator from it tells the user.
func TestNoticeAuthenticatorReplaced(t *testing.T) {
	site := startNoticeSite(t, mailtest.Start(t, mailtest.PlainOnly, nil), "")
	b := newBrowser(t)
	oldSecret, _ := b.enroll("quinn")
	if acct := b.account(); !strings.Contains(acct.body, `<dd id="email">quinn@example.com `) {
		t.Errorf("the account page does not show the address:\n%s", acct.body)
	}
	page := b.get("/_2fa/account/authenticator")
	m := secretPattern.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("replace page: %d\n%s", page.status, page.body)
	}
	newSecret, err := totpDecode(m[1])
	if err != nil {
		t.Fatal(err)
	}
	r := b.post("/_2fa/account/authenticator", url.Values{"csrf": {b.csrfFrom(page)}, "current": {b.code("quinn", oldSecret)}, "code": {b.code("quinn", newSecret)}})
	wantRedirect(t, r, "/_2fa/account?done=authenticator")
	msg, _ := mailTo(t, site.mail, "quinn@example.com", "An authenticator was added to quinn")
	checkMail(t, msg, "quinn")
	site.hook.wait(t, notify.AuthenticatorAdded)
}

// TestNoticeAppTokensAndRememberedBrowsers: creating and revoking an app
// token, and remembering and forgetting a browser, each tell the user, by
// e-mail and webhook, naming the token or the browser.
func TestNoticeAppTokensAndRememberedBrowsers(t *testing.T) {
	site := startNoticeSite(t, mailtest.Start(t, mailtest.PlainOnly, nil), "app_tokens /api/*\n\t\tremember_device 30d")
	const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	b := browserAs(t, firefox)
	secret, _ := b.enroll("sybil")

	b.createAppToken("sybil", secret, "calendar", "30")
	msg, body := mailTo(t, site.mail, "sybil@example.com", "An app token was created for sybil")
	checkMail(t, msg, "sybil")
	if !strings.Contains(body, `("calendar")`) {
		t.Errorf("the notice does not name the token:\n%s", body)
	}
	if v, _ := site.hook.wait(t, notify.AppTokenAdded); v["item"] != "calendar" {
		t.Errorf("webhook item %v, want calendar", v["item"])
	}

	page := b.account()
	id := appTokenIDPattern.FindStringSubmatch(page.body)
	if id == nil {
		t.Fatalf("no token listed:\n%s", page.body)
	}
	wantGoesTo(t, "revoke", b.post("/_2fa/account", url.Values{"csrf": {b.csrfFrom(page)}, "action": {"revoke_token"}, "token": {id[1]}}), http.StatusSeeOther, "/_2fa/account?done=token_revoked")
	mailTo(t, site.mail, "sybil@example.com", "An app token was removed from sybil")
	if v, _ := site.hook.wait(t, notify.AppTokenRemoved); v["item"] != "calendar" {
		t.Errorf("webhook item %v, want calendar", v["item"])
	}

	b.logout()
	if b.passwordOnly("sybil") {
		t.Fatal("a browser not remembered was spared the code")
	}
	b.confirmRemembering("sybil", secret)
	mailTo(t, site.mail, "sybil@example.com", "A browser was remembered for sybil")
	if v, _ := site.hook.wait(t, notify.RememberedBrowserAdded); v["item"] != "Firefox on Linux" {
		t.Errorf("webhook item %v, want Firefox on Linux", v["item"])
	}

	page = b.account()
	browserID := browserIDPattern.FindStringSubmatch(page.body)
	if browserID == nil {
		t.Fatalf("no browser listed:\n%s", page.body)
	}
	wantGoesTo(t, "forget", b.post("/_2fa/account", url.Values{"csrf": {b.csrfFrom(page)}, "action": {"forget_browser"}, "browser": {browserID[1]}}), http.StatusSeeOther, "/_2fa/account?done=forgotten")
	_, body = mailTo(t, site.mail, "sybil@example.com", "A remembered browser was removed from sybil")
	if !strings.Contains(body, `("Firefox on Linux")`) {
		t.Errorf("the notice does not name the browser:\n%s", body)
	}
	site.hook.wait(t, notify.RememberedBrowserRemoved)
}

// TestEmailCodeAtStepUp: with email_codes step_up, the confirm page that
// a step-up rule sends a signed-in browser to offers the e-mailed code,
// sends it, takes it and returns to the request; with email_codes alone
// it offers none and sends none to a signed-in session.
func TestEmailCodeAtStepUp(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		offered     bool
	}{
		{"email_codes step_up", "email_codes step_up", true},
		{"email_codes", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "two_factor.db")
			clock := &fakeClock{now: time.Now().UTC()}
			testClocks.Store(db, clock.Now)
			t.Cleanup(func() { testClocks.Delete(db) })
			site := startNoticeSiteConfig(t, mailtest.Start(t, mailtest.PlainOnly, nil), "step_up 5m /admin/settings/*\n\t\t"+tc.extra, siteConfig{db: db})
			b := newBrowser(t)
			b.now = clock.Now
			b.enroll("peggy")
			clock.Advance(10 * time.Minute)

			const target = "/admin/settings/x"
			wantGoesTo(t, "a stale factor", b.get(target), http.StatusFound, "/_2fa/confirm?next="+url.QueryEscape(target))
			page := b.get("/_2fa/confirm?next=" + url.QueryEscape(target))
			m := emailOfferPattern.FindStringSubmatch(page.body)
			if !tc.offered {
				if m != nil {
					t.Fatalf("the step-up page offers an e-mailed code:\n%s", page.body)
				}
				r := b.post("/_2fa/confirm/email", url.Values{"csrf": {b.csrfFrom(page)}, "next": {target}})
				wantStatus(t, "asking for a code anyway", r, http.StatusBadRequest)
				if n := len(site.mail.Received()); n != 0 {
					t.Fatalf("%d mails sent", n)
				}
				return
			}
			if m == nil || m[1] != "p***@example.com" {
				t.Fatalf("the step-up page offers no e-mailed code to p***@example.com:\n%s", page.body)
			}
			sent := b.post("/_2fa/confirm/email", url.Values{"csrf": {b.csrfFrom(page)}, "next": {target}})
			if sent.status != http.StatusOK || !strings.Contains(sent.body, "a code is on its way to p***@example.com") || !strings.Contains(sent.body, `name="next" value="`+target+`"`) {
				t.Fatalf("asking for a code: %d\n%s", sent.status, sent.body)
			}
			_, body := mailTo(t, site.mail, "peggy@example.com", "Your sign-in code for peggy")
			code := mailedCodePattern.FindStringSubmatch(body)
			if code == nil {
				t.Fatalf("no code in the mail:\n%s", body)
			}
			done := b.post("/_2fa/confirm", url.Values{"csrf": {b.csrfFrom(sent)}, "code": {code[1]}, "next": {target}})
			wantGoesTo(t, "the e-mailed code", done, http.StatusSeeOther, target)
			if r := b.get(target); r.status != http.StatusOK || !strings.Contains(r.body, "method=email") {
				t.Fatalf("after the e-mailed code: %d %s", r.status, r.body)
			}
		})
	}
}

// TestNoticePasskeyAddedAndRemoved: adding a passkey from the account page
// and removing it each send their notice, naming the passkey, by e-mail
// and webhook.
func TestNoticePasskeyAddedAndRemoved(t *testing.T) {
	site := startNoticeSite(t, mailtest.Start(t, mailtest.PlainOnly, nil), "")
	b := newBrowser(t)
	secret, _ := b.enroll("rupert")
	page := b.account()
	csrf := b.csrfFrom(page)
	options := b.mustOptions("/_2fa/account/passkey/options", csrf, "current", b.code("rupert", secret))
	resp := b.post("/_2fa/account/passkey", url.Values{"csrf": {csrf}, "action": {"add"}, "name": {"Desk key"}, "credential": {string(newKey(t).Create(t, options))}})
	if resp.location() != "/_2fa/account?done=passkey-add" {
		t.Fatalf("adding a passkey: %d to %q\n%s", resp.status, resp.location(), resp.body)
	}
	msg, body := mailTo(t, site.mail, "rupert@example.com", "A passkey was added to rupert")
	checkMail(t, msg, "rupert")
	if !strings.Contains(body, `"Desk key"`) {
		t.Errorf("the notice of an added passkey does not name it:\n%s", body)
	}
	if v, _ := site.hook.wait(t, notify.PasskeyAdded); v["item"] != "Desk key" {
		t.Errorf("webhook of an added passkey: item %v, want its name", v["item"])
	}

	page = b.account()
	id := passkeyIDPattern.FindStringSubmatch(page.body)[1]
	if resp := b.post("/_2fa/account/passkey", url.Values{"csrf": {b.csrfFrom(page)}, "action": {"remove"}, "id": {id}}); resp.location() != "/_2fa/account?done=passkey-remove" {
		t.Fatalf("removing the passkey: %d to %q", resp.status, resp.location())
	}
	msg, body = mailTo(t, site.mail, "rupert@example.com", "A passkey was removed from rupert")
	checkMail(t, msg, "rupert")
	if !strings.Contains(body, `"Desk key"`) {
		t.Errorf("the notice of a removed passkey does not name it:\n%s", body)
	}
	if v, _ := site.hook.wait(t, notify.PasskeyRemoved); v["item"] != "Desk key" {
		t.Errorf("webhook of a removed passkey: item %v, want its name", v["item"])
	}
}

// TestNoticePasskeySignInNewBrowser: a passkey sign-in from a browser the
// user has not used counts as a new browser, as a code's does.
func TestNoticePasskeySignInNewBrowser(t *testing.T) {
	site := startNoticeSite(t, mailtest.Start(t, mailtest.PlainOnly, nil), "")
	key := newKey(t)
	newBrowser(t).enrollPasskey("sybil", key)
	b := browserAs(t, firefoxUA)
	csrf, options := b.beginPasskeyConfirm("sybil")
	if resp := b.confirmPasskey(csrf, key.Get(t, options)); resp.status != http.StatusSeeOther {
		t.Fatalf("passkey confirmation: %d\n%s", resp.status, resp.body)
	}
	msg, body := mailTo(t, site.mail, "sybil@example.com", "New sign-in to your account sybil")
	checkMail(t, msg, "sybil")
	if !strings.Contains(body, "Browser: Firefox on Linux") {
		t.Errorf("body does not name the browser:\n%s", body)
	}
	site.hook.wait(t, notify.SignInNewBrowser)
}

// TestNoticeOperatorRemovesPasskey: an operator's remove-passkey tells the
// user which passkey went.
func TestNoticeOperatorRemovesPasskey(t *testing.T) {
	site := startNoticeSite(t, mailtest.Start(t, mailtest.PlainOnly, nil), "")
	newBrowser(t).enrollPasskey("peggy", newKey(t))
	if status, body := adminCall(t, http.MethodPost, "/two_factor/users/peggy/remove_passkey", `{"passkey":"Key of peggy"}`); status != http.StatusOK {
		t.Fatalf("remove_passkey: %d %s", status, body)
	}
	_, body := mailTo(t, site.mail, "peggy@example.com", "A passkey was removed from peggy")
	if !strings.Contains(body, `"Key of peggy"`) {
		t.Errorf("the notice does not name the passkey:\n%s", body)
	}
	if v, _ := site.hook.wait(t, notify.PasskeyRemoved); v["item"] != "Key of peggy" {
		t.Errorf("webhook: item %v, want the passkey's name", v["item"])
	}
}
