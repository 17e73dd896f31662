package twofactor

import (
	"encoding/base32"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-two-factor/caddy-two-factor/totp"
)

// The integration tests run one real Caddy in this process (caddytest
// starts it on first use) and load a Caddyfile per test. They must not run
// in parallel.

const testPassword = "correct horse battery"

// testPorts are free ports picked once per test process, so several test
// processes (packages, developers) can run side by side.
var testPorts = sync.OnceValue(func() (ports struct{ admin, http, https int }) {
	ports.admin, ports.http, ports.https = freePort(), freePort(), freePort()
	return ports
})

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func testBase() string { return fmt.Sprintf("http://localhost:%d", testPorts().http) }

// globalOptions is the global block of every test Caddyfile, with extra
// lines added inside it.
func globalOptions(extra ...string) string {
	p := testPorts()
	return fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	grace_period 1ns
	skip_install_trust
	%s
}
`, p.admin, p.http, p.https, strings.Join(extra, "\n\t"))
}

// newTester returns a caddytest.Tester for the test Caddy.
func newTester(t *testing.T) *caddytest.Tester {
	return caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: testPorts().admin})
}

// loadCaddyfile loads a Caddyfile (which must start with globalOptions())
// into the test Caddy, starting it on first use.
func loadCaddyfile(t *testing.T, caddyfile string) {
	t.Helper()
	newTester(t).InitServer(caddyfile, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
}

// testHash is a bcrypt hash of testPassword at the lowest cost, so tests
// stay fast; the cost is read from the hash at sign-in.
var testHash = sync.OnceValue(func() string {
	h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
})

// testUsers are declared in every test site. A TOTP step is accepted once
// per user, so tests that sign in several times use several users.
var testUsers = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj"}

// siteConfig describes a test site.
type siteConfig struct {
	// matcher is the two_factor directive's matcher ("" for none).
	matcher string
	// extra lines inside the two_factor block.
	extra string
	// db is the database path; a fresh one when empty.
	db string
	// store, when set, replaces the db line (a store redis block).
	store string
	// logFile, if set, receives Caddy's logs as JSON lines.
	logFile string
	// routes replaces the site's default routes (respond lines) when set.
	routes string
	// more is appended after the site block, for more sites.
	more string
	// global lines are added to the global options block.
	global []string
}

// testSite is a running Caddy with a two_factor site.
type testSite struct {
	t  *testing.T
	db string
}

// defaultRoutes answer behind two_factor in test sites.
const defaultRoutes = `respond /admin/* "admin area: user={http.auth.user.id} method={http.two_factor.method}"
	respond "public"`

func caddyfileFor(cfg siteConfig) string {
	if cfg.routes == "" {
		cfg.routes = defaultRoutes
	}
	var users strings.Builder
	for _, u := range testUsers {
		fmt.Fprintf(&users, "\t\tuser %s %s\n", u, testHash())
	}
	global := cfg.global
	if cfg.logFile != "" {
		global = append(global, fmt.Sprintf("log {\n\t\toutput file %s\n\t\tformat json\n\t\tlevel DEBUG\n\t}", cfg.logFile))
	}
	storeLine := "db " + cfg.db
	if cfg.store != "" {
		storeLine = cfg.store
	}
	return globalOptions(global...) + fmt.Sprintf(`
http://localhost:%d {
	two_factor %s {
		%s
%s		%s
	}
	%s
}
%s`, testPorts().http, cfg.matcher, storeLine, users.String(), cfg.extra, cfg.routes, cfg.more)
}

// startSite loads a site into the test Caddy.
func startSite(t *testing.T, cfg siteConfig) *testSite {
	t.Helper()
	if cfg.db == "" {
		cfg.db = filepath.Join(t.TempDir(), "two_factor.db")
	}
	loadCaddyfile(t, caddyfileFor(cfg))
	return &testSite{t: t, db: cfg.db}
}

// stopSites loads a config without two_factor, so every handle on the
// database is released, as when Caddy stops.
func stopSites(t *testing.T) {
	t.Helper()
	loadCaddyfile(t, globalOptions()+fmt.Sprintf(`
http://localhost:%d {
	respond "no two-factor here"
}
`, testPorts().http))
}

// browser is one client with its own cookie jar; it does not follow
// redirects, so tests see each step.
type browser struct {
	t      *testing.T
	client *http.Client
	base   string
	// now is the clock TOTP codes are computed for: the server's.
	now func() time.Time
}

// usedSteps is the last TOTP step used per secret, over all browsers, so
// every code a test sends is one the server has not seen.
var usedSteps = struct {
	sync.Mutex
	last map[string]uint64
}{last: map[string]uint64{}}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{
		t:    t,
		base: testBase(),
		now:  time.Now,
		client: &http.Client{
			Jar:     jar,
			Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// response is a read response.
type response struct {
	status int
	header http.Header
	body   string
}

func (r response) location() string { return r.header.Get("Location") }

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("reading %s: %v", req.URL, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// get requests path as a browser would (Accept: text/html).
func (b *browser) get(path string, headers ...string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.base+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	setHeaders(req, headers)
	return b.do(req)
}

// post submits a form as a browser would from our own pages.
func (b *browser) post(path string, form url.Values, headers ...string) response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Origin", b.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	setHeaders(req, headers)
	return b.do(req)
}

// setHeaders sets "Name: value" pairs; an empty value deletes the header.
func setHeaders(req *http.Request, headers []string) {
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		value = strings.TrimSpace(value)
		if value == "" {
			req.Header.Del(name)
		} else {
			req.Header.Set(name, value)
		}
	}
}

var (
	csrfPattern     = regexp.MustCompile(`name="csrf" value="([^"]*)"`)
	secretPattern   = regexp.MustCompile(`id="totp-secret" data-secret="([A-Z2-7]+)"`)
	recoveryPattern = regexp.MustCompile(`class="recovery-code"><code>([a-z2-7-]+)</code>`)
)

func (b *browser) csrfFrom(page response) string {
	b.t.Helper()
	m := csrfPattern.FindStringSubmatch(page.body)
	if m == nil {
		b.t.Fatalf("no csrf field on page (status %d):\n%s", page.status, page.body)
	}
	return m[1]
}

// login gives user's password and returns the response (a redirect to
// setup or confirm when it is right).
func (b *browser) login(user, password, next string) response {
	b.t.Helper()
	page := b.get("/_2fa/login?next=" + url.QueryEscape(next))
	if page.status != http.StatusOK {
		b.t.Fatalf("login page: status %d", page.status)
	}
	return b.post("/_2fa/login", url.Values{
		"csrf": {b.csrfFrom(page)}, "next": {next}, "username": {user}, "password": {password},
	})
}

// enroll signs user in for the first time, and returns the TOTP secret and
// the recovery codes.
func (b *browser) enroll(user string) (secret []byte, codes []string) {
	b.t.Helper()
	resp := b.login(user, testPassword, "/admin/")
	if resp.status != http.StatusSeeOther || resp.location() != "/_2fa/setup" {
		b.t.Fatalf("login of %s: got %d to %q, want 303 to /_2fa/setup\n%s", user, resp.status, resp.location(), resp.body)
	}
	page := b.get("/_2fa/setup")
	m := secretPattern.FindStringSubmatch(page.body)
	if m == nil {
		b.t.Fatalf("no secret on setup page:\n%s", page.body)
	}
	secret, err := totpDecode(m[1])
	if err != nil {
		b.t.Fatal(err)
	}
	done := b.post("/_2fa/setup", url.Values{"csrf": {b.csrfFrom(page)}, "code": {b.code(user, secret)}})
	if done.status != http.StatusOK {
		b.t.Fatalf("setup of %s: status %d\n%s", user, done.status, done.body)
	}
	for _, m := range recoveryPattern.FindAllStringSubmatch(done.body, -1) {
		codes = append(codes, m[1])
	}
	return secret, codes
}

// signIn signs an enrolled user in with a TOTP code.
func (b *browser) signIn(user string, secret []byte) response {
	b.t.Helper()
	resp := b.login(user, testPassword, "/admin/")
	if resp.status != http.StatusSeeOther || resp.location() != "/_2fa/confirm" {
		b.t.Fatalf("login of %s: got %d to %q, want 303 to /_2fa/confirm", user, resp.status, resp.location())
	}
	return b.confirm(b.code(user, secret))
}

// confirm posts a code on the confirm page.
func (b *browser) confirm(code string) response {
	b.t.Helper()
	page := b.get("/_2fa/confirm")
	if page.status != http.StatusOK {
		b.t.Fatalf("confirm page: status %d", page.status)
	}
	return b.post("/_2fa/confirm", url.Values{"csrf": {b.csrfFrom(page)}, "code": {code}})
}

// code returns a valid code for user that this browser has not used yet:
// the skew allows three steps around now, so a user can sign in at most
// three times in one 30-second step.
func (b *browser) code(user string, secret []byte) string {
	b.t.Helper()
	usedSteps.Lock()
	defer usedSteps.Unlock()
	now := totp.Step(b.now())
	step := max(usedSteps.last[string(secret)]+1, now-totp.Skew)
	if step > now+totp.Skew {
		b.t.Fatalf("no unused TOTP step left for %s: use another test user", user)
	}
	usedSteps.last[string(secret)] = step
	return codeAt(b.t, secret, step)
}

func codeAt(t *testing.T, secret []byte, step uint64) string {
	t.Helper()
	c, err := totp.CodeAt(secret, time.Unix(int64(step)*30, 0))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func totpDecode(s string) ([]byte, error) {
	return b32NoPad.DecodeString(s)
}

var b32NoPad = base32.StdEncoding.WithPadding(base32.NoPadding)

func totpStep(t time.Time) uint64 { return totp.Step(t) }

// sessionToken is the value of the browser's session cookie, or "".
func (b *browser) sessionToken() string {
	u, err := url.Parse(b.base)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			return c.Value
		}
	}
	return ""
}
