package twofactor

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/caddy-two-factor/caddy-two-factor/internal/redistest"
	"github.com/caddy-two-factor/caddy-two-factor/signin"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// scrape reads the test Caddy's admin /metrics: each sample by its series,
// name{labels} as the text format writes it.
func scrape(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", testPorts().admin))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	samples := make(map[string]float64)
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		line := lines.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		if _, dup := samples[line[:i]]; dup {
			t.Errorf("series %s is served twice", line[:i])
		}
		samples[line[:i]] = v
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	return samples
}

// series names a sample: name{k="v",...}, labels in the order given,
// which must be the order Prometheus writes them in (sorted by name).
func series(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", labels[i], labels[i+1])
	}
	return name + "{" + b.String() + "}"
}

// checkSessionGauges counts the sessions of the store named name afresh
// and fails unless the scrape reports pending and full sessions.
func checkSessionGauges(t *testing.T, backend, name string, pending, full float64) {
	t.Helper()
	forgetSessionCount(name)
	got := scrape(t)
	for stage, want := range map[string]float64{"pending": pending, "full": full} {
		s := series("caddy_two_factor_sessions", "backend", backend, "stage", stage, "store", name)
		if v, ok := got[s]; !ok || v != want {
			t.Errorf("%s = %v (served %v), want %v", s, v, ok, want)
		}
	}
}

// forgetSessionCount drops the cached session count of the database at
// path, as the passing of a sweep interval does.
func forgetSessionCount(path string) {
	databases.Range(func(_, v any) bool {
		if db := v.(*database); db.path == path {
			db.sessionsCountedAt.Store(0)
		}
		return true
	})
}

func TestMetricsAfterAScriptedSignIn(t *testing.T) {
	site := startSite(t, siteConfig{extra: "max_attempts 2"})
	before := scrape(t)

	b := newBrowser(t)
	if r := b.login("alice", "not the password", "/admin/"); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong password: status %d", r.status)
	}
	secret, _ := b.enroll("alice")
	for range 2 {
		if r := b.get("/admin/"); r.status != http.StatusOK {
			t.Fatalf("signed-in request: status %d", r.status)
		}
	}
	// A second sign-in, on another browser, with a wrong code first.
	b2 := newBrowser(t)
	if r := b2.login("alice", testPassword, "/admin/"); r.location() != "/_2fa/confirm" {
		t.Fatalf("second login: %d to %q", r.status, r.location())
	}
	// b is signed in, b2 has given its password only.
	checkSessionGauges(t, "bolt", site.db, 1, 1)
	if r := b2.confirm("000000"); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong code: status %d", r.status)
	}
	if r := b2.confirm(b2.code("alice", secret)); r.status != http.StatusSeeOther {
		t.Fatalf("right code: status %d", r.status)
	}

	// A client without a session: a script is refused, a browser sent
	// to sign in, a forged form turned away.
	c := newBrowser(t)
	if r := c.get("/admin/", "Accept: application/json"); r.status != http.StatusUnauthorized {
		t.Fatalf("script without a session: status %d", r.status)
	}
	if r := c.get("/admin/"); r.status != http.StatusFound {
		t.Fatalf("browser without a session: status %d", r.status)
	}
	if r := c.post("/_2fa/login", url.Values{"csrf": {"forged"}, "username": {"bob"}, "password": {"x"}}); r.status != http.StatusForbidden {
		t.Fatalf("forged login: status %d", r.status)
	}
	// max_attempts wrong passwords lock bob for this network; the next
	// attempt is refused by the lock without a hash.
	for range 2 {
		c.login("bob", "not the password", "/admin/")
	}
	if r := c.login("bob", "not the password", "/admin/"); r.status != http.StatusTooManyRequests {
		t.Fatalf("attempt on a locked account: status %d", r.status)
	}

	forgetSessionCount(site.db)
	after := scrape(t)
	delta := func(s string) float64 { return after[s] - before[s] }

	signIns := "caddy_two_factor_sign_ins_total"
	for _, tc := range []struct {
		series string
		want   float64
	}{
		{series(signIns, "outcome", "bad_password", "step", "login"), 3},
		{series(signIns, "outcome", "password_accepted", "step", "login"), 2},
		{series(signIns, "outcome", "setup_complete", "step", "setup"), 1},
		{series(signIns, "outcome", "bad_code", "step", "confirm"), 1},
		{series(signIns, "outcome", "signed_in", "step", "confirm"), 1},
		{series(signIns, "outcome", "csrf_rejected", "step", "login"), 1},
		{series(signIns, "outcome", "locked", "step", "login"), 1},
		{series("caddy_two_factor_gate_decisions_total", "decision", "allowed"), 2},
		{series("caddy_two_factor_gate_decisions_total", "decision", "refused"), 1},
		{series("caddy_two_factor_gate_decisions_total", "decision", "challenged"), 1},
		{series("caddy_two_factor_gate_decisions_total", "decision", "unavailable"), 0},
		{series("caddy_two_factor_lockouts_total", "scope", "account_network"), 1},
		{series("caddy_two_factor_lockouts_total", "scope", "account"), 0},
		// Every password typed is hashed once, and each waited for its slot.
		{series("caddy_two_factor_password_hash_seconds_count"), 5},
		{series("caddy_two_factor_password_hash_wait_seconds_count", "result", "acquired"), 5},
		{series("caddy_two_factor_password_hash_wait_seconds_count", "result", "refused"), 0},
		{series("caddy_two_factor_store_errors_total", "backend", "bolt", "operation", "update"), 0},
		{series("caddy_two_factor_store_errors_total", "backend", "bolt", "operation", "view"), 0},
	} {
		if _, ok := after[tc.series]; !ok {
			t.Errorf("%s is not served", tc.series)
		} else if got := delta(tc.series); got != tc.want {
			t.Errorf("%s rose by %v, want %v", tc.series, got, tc.want)
		}
	}
	for _, s := range []string{
		series("caddy_two_factor_store_operation_seconds_count", "backend", "bolt", "operation", "view"),
		series("caddy_two_factor_store_operation_seconds_count", "backend", "bolt", "operation", "update"),
	} {
		if delta(s) <= 0 {
			t.Errorf("%s rose by %v, want the store's transactions counted", s, delta(s))
		}
	}

	// The store holds b2's session, signed in: b's ended when b2 signed
	// in, and the pending sessions were replaced as each sign-in went on.
	checkSessionGauges(t, "bolt", site.db, 0, 1)
	labels := []string{"backend", "bolt", "store", site.db}
	// The second request of b was served from memory; sign-ins wrote
	// sessions and users, which dropped them from the cache.
	for _, name := range []string{"hits", "misses", "invalidations"} {
		s := series("caddy_two_factor_session_cache_"+name+"_total", labels...)
		if after[s] < 1 {
			t.Errorf("%s = %v, want at least 1", s, after[s])
		}
	}
}

func TestMetricsSurviveAReload(t *testing.T) {
	dir := t.TempDir()
	// A second handler in the same config registers the same collectors
	// with the same registry.
	cfg := siteConfig{
		db: filepath.Join(dir, "2fa.db"),
		more: fmt.Sprintf(`
http://127.0.0.1:%d {
	two_factor {
		db %s
	}
	respond "second site"
}`, testPorts().http, filepath.Join(dir, "second.db")),
	}
	startSite(t, cfg)
	badPassword := series("caddy_two_factor_sign_ins_total", "outcome", "bad_password", "step", "login")
	before := scrape(t)[badPassword]
	newBrowser(t).login("carol", "not the password", "/admin/")

	// Another config: Caddy provisions it with a new registry.
	cfg.extra = "title Reloaded"
	startSite(t, cfg)
	if r := newBrowser(t).get("/_2fa/login"); !strings.Contains(r.body, "Reloaded") {
		t.Fatal("the new config is not the one serving")
	}
	newBrowser(t).login("carol", "not the password", "/admin/")

	if got := scrape(t)[badPassword] - before; got != 2 {
		t.Errorf("%s rose by %v over a reload, want 2: one before it, one after", badPassword, got)
	}
}

func TestRegisterMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	for i := range 2 {
		if err := registerMetrics(reg); err != nil {
			t.Fatalf("registration %d with one registry: %v", i+1, err)
		}
	}
	if err := registerMetrics(prometheus.NewPedanticRegistry()); err != nil {
		t.Fatalf("registration with a new registry: %v", err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Errorf("gathering the module's metrics: %v", err)
	}
	// Another collector under one of the names is a conflict, not a
	// collector of ours registered already.
	clash := prometheus.NewRegistry()
	clash.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "caddy_two_factor_lockouts_total", Help: "other"}))
	if err := registerMetrics(clash); err == nil {
		t.Error("a clashing collector was taken for ours")
	}
}

func TestMetricsCountAStoreOutage(t *testing.T) {
	_, faults := startFaultySite(t, siteConfig{})
	stale := newBrowser(t)
	token, _, err := store.NewSessionToken()
	if err != nil {
		t.Fatal(err)
	}
	setSessionCookie(t, stale, token)
	unavailable := series("caddy_two_factor_gate_decisions_total", "decision", "unavailable")
	viewErrors := series("caddy_two_factor_store_errors_total", "backend", "bolt", "operation", "view")
	before := scrape(t)

	faults.fail()
	if r := stale.get("/admin/", "Accept: application/json"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("a session the store could not look up: status %d", r.status)
	}
	faults.heal()

	after := scrape(t)
	if got := after[unavailable] - before[unavailable]; got != 1 {
		t.Errorf("%s rose by %v, want 1", unavailable, got)
	}
	if got := after[viewErrors] - before[viewErrors]; got != 1 {
		t.Errorf("%s rose by %v, want 1: the session's read", viewErrors, got)
	}
}

// TestMetricsOfARedisStore: a Redis store is measured under its own
// backend and name, and its stored sessions are counted.
func TestMetricsOfARedisStore(t *testing.T) {
	srv := redistest.Start(t)
	loadCaddyfile(t, redisSiteCaddyfile(srv, "metrics:", ""))
	t.Cleanup(func() { stopSites(t) }) // before the server stops
	updates := series("caddy_two_factor_store_operation_seconds_count", "backend", "redis", "operation", "update")
	before := scrape(t)

	b := newBrowser(t)
	b.enroll("alice")
	if r := b.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("alice is not signed in: %d", r.status)
	}

	name := redisDBName(srv, "metrics:")
	forgetSessionCount(name)
	after := scrape(t)
	if got := after[updates] - before[updates]; got <= 0 {
		t.Errorf("%s rose by %v, want the sign-in's writes counted", updates, got)
	}
	checkSessionGauges(t, "redis", name, 0, 1)
}

// TestSignInOutcomeLabels: the labels of sign-in outcomes come from fixed
// sets, whatever the page's path or the event's step.
func TestSignInOutcomeLabels(t *testing.T) {
	for _, tc := range []struct {
		name        string
		count       func()
		step, label string
	}{
		{"an event at a step", func() { observeSignIn(signin.Event{Kind: signin.EventBadCode, Step: signin.StepConfirm}) }, "confirm", "bad_code"},
		{"an event at no step", func() { observeSignIn(signin.Event{Kind: signin.EventSignedOut}) }, "none", "signed_out"},
		{"a forged login", func() { countSignIn(formStep(""), outcomeCSRFRejected) }, "login", "csrf_rejected"},
		{"a forged new authenticator", func() { countSignIn(formStep("account/authenticator"), outcomeCSRFRejected) }, "reenroll", "csrf_rejected"},
		{"a refused passkey, whatever why", func() {
			observeSignIn(signin.Event{Kind: signin.EventBadCode, Step: signin.StepPasskeyLogin, Method: signin.MethodWebAuthn, Reason: "cloned"})
		}, "passkey_login", "passkey_refused"},
		{"a passkey sign-in", func() {
			observeSignIn(signin.Event{Kind: signin.EventSignedIn, Step: signin.StepPasskeyLogin, Method: signin.MethodWebAuthn})
		}, "passkey_login", "signed_in"},
		{"a passkey added", func() {
			observeSignIn(signin.Event{Kind: signin.EventPasskeyAdded, Step: signin.StepAddPasskey, Reason: "My key"})
		}, "add_passkey", "passkey_added"},
		{"a forged passkey login", func() { countSignIn(formStep("login/passkey/options"), outcomeCSRFRejected) }, "passkey_login", "csrf_rejected"},
		{"a forged post to a path of the client's", func() { countSignIn(formStep("../../x?user=alice"), outcomeCSRFRejected) }, "none", "csrf_rejected"},
	} {
		before := counterValue(t, signInOutcomes.WithLabelValues(tc.step, tc.label))
		tc.count()
		if got := counterValue(t, signInOutcomes.WithLabelValues(tc.step, tc.label)) - before; got != 1 {
			t.Errorf("%s: {step=%q,outcome=%q} rose by %v, want 1", tc.name, tc.step, tc.label, got)
		}
	}
	// Failures of bookkeeping are for the log, not an outcome.
	series := seriesOf(signInOutcomes)
	observeSignIn(signin.Event{Kind: signin.EventError, Reason: "settling a 2FA attempt"})
	if seriesOf(signInOutcomes) != series {
		t.Error("an error event made a sign-in outcome")
	}
}

// counterValue reads a counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// seriesOf counts the series a collector has.
func seriesOf(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	n := 0
	for range ch {
		n++
	}
	return n
}
