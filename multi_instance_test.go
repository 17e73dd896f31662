package twofactor

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/internal/redistest"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// This file runs the README's three-instance setup (see "Which store")
// with real processes: three Caddy instances (cmd/caddy) on one
// redis-server, each plain HTTP and trusting the loopback only, behind a
// fourth Caddy that terminates TLS and spreads requests round robin. The
// browser talks HTTPS to the front; to choose an instance, the test talks
// to it directly and sends what the front would.

// servedByHeader names the instance that answered; each instance's
// Caddyfile sets it.
const servedByHeader = "X-Served-By"

// multiInstance is one Caddy process of the cluster.
type multiInstance struct {
	name        string
	port, admin int
	caddyfile   string
	cmd         *exec.Cmd
}

func (i *multiInstance) url() string { return fmt.Sprintf("http://localhost:%d", i.port) }

// multiCluster is the front, the instances behind it, and their Redis.
type multiCluster struct {
	// owner is the test the processes live as long as.
	owner     *testing.T
	bin, dir  string
	redis     *redistest.Server
	instances []*multiInstance
	// front is the URL the browser uses.
	front string
	// toFront is the browser's transport to the front: it trusts no
	// certificate, and checks none (the front's is from its own CA).
	toFront http.RoundTripper
}

// instanceCaddyfile is an instance's Caddyfile: the README's, with the
// test's ports and the test users.
func instanceCaddyfile(name string, port, admin int, dir, redisAddr string) string {
	var users strings.Builder
	for _, u := range testUsers {
		fmt.Fprintf(&users, "\t\tuser %s %s\n", u, testHash())
	}
	return fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
	storage file_system %s
	grace_period 1ns
	servers {
		trusted_proxies static 127.0.0.1/32
		trusted_proxies_strict
	}
}

http://localhost:%d {
	header %s %s
	two_factor /app* {
		store redis {
			address %s
			password {env.REDIS_PASSWORD}
			key_prefix two_factor:
			timeout 1s
		}
		encryption_key {env.TWO_FACTOR_KEY}
%s	}
	respond /app* "{http.auth.user.id}"
	respond "public"
}
`, admin, filepath.Join(dir, "storage"), port, servedByHeader, name, redisAddr, users.String())
}

// frontCaddyfile is the front's Caddyfile: TLS from Caddy's own CA, round
// robin over the instances; a dial that fails marks the instance down for
// fail_duration and the request is tried on the next one.
func frontCaddyfile(httpPort, httpsPort int, dir string, instances []*multiInstance) string {
	upstreams := make([]string, len(instances))
	for i, in := range instances {
		upstreams[i] = fmt.Sprintf("localhost:%d", in.port)
	}
	return fmt.Sprintf(`{
	admin off
	persist_config off
	storage file_system %s
	http_port %d
	https_port %d
	local_certs
	skip_install_trust
	grace_period 1ns
}

https://localhost:%d {
	tls internal
	reverse_proxy %s {
		lb_policy round_robin
		lb_try_duration 5s
		lb_try_interval 50ms
		fail_duration 1s
	}
}
`, filepath.Join(dir, "storage"), httpPort, httpsPort, httpsPort, strings.Join(upstreams, " "))
}

// startCluster starts redis-server, three instances and the front.
func startCluster(t *testing.T) *multiCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds cmd/caddy and runs four Caddy processes; skipped with -short")
	}
	c := &multiCluster{owner: t, redis: redistest.Start(t), bin: buildCaddy(t), dir: t.TempDir()}
	t.Setenv("REDIS_PASSWORD", c.redis.Password)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	t.Setenv("TWO_FACTOR_KEY", base64.StdEncoding.EncodeToString(key))
	for _, name := range []string{"a", "b", "c"} {
		in := &multiInstance{name: name, port: freePort(), admin: freePort()}
		dir := filepath.Join(c.dir, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		in.caddyfile = filepath.Join(dir, "Caddyfile")
		config := instanceCaddyfile(name, in.port, in.admin, dir, c.redis.Addr)
		if err := os.WriteFile(in.caddyfile, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		c.instances = append(c.instances, in)
		c.start(in)
	}
	dir := filepath.Join(c.dir, "front")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	httpsPort := freePort()
	frontFile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(frontFile, []byte(frontCaddyfile(freePort(), httpsPort, dir, c.instances)), 0o600); err != nil {
		t.Fatal(err)
	}
	startCaddyProcess(t, c.bin, dir, frontFile)
	c.front = fmt.Sprintf("https://localhost:%d", httpsPort)
	c.toFront = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // the front's certificate is from its own test CA
	// The front gets its certificate from its CA just after it starts.
	waitFor(t, 10*time.Second, "the front to serve HTTPS", func() bool {
		resp, err := (&http.Client{Transport: c.toFront, Timeout: time.Second}).Get(c.front + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return c
}

// start runs in's Caddy process, and returns once it serves; it is
// killed when the owner test ends.
func (c *multiCluster) start(in *multiInstance) {
	c.owner.Helper()
	in.cmd = startCaddyProcess(c.owner, c.bin, filepath.Dir(in.caddyfile), in.caddyfile)
}

// servedBy records which instance answered each request through the front.
type servedBy struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []string
}

func (s *servedBy) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(req)
	if err == nil {
		s.mu.Lock()
		s.seen = append(s.seen, resp.Header.Get(servedByHeader))
		s.mu.Unlock()
	}
	return resp, err
}

// take returns the instances seen since the last call.
func (s *servedBy) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := s.seen
	s.seen = nil
	return seen
}

// browser returns a browser that talks to the front, and what it saw.
func (c *multiCluster) browser(t *testing.T) (*browser, *servedBy) {
	b := newBrowser(t)
	b.base = c.front
	seen := &servedBy{next: c.toFront}
	b.client.Transport = seen
	return b, seen
}

// forwarded are the header lines the front adds to what it proxies.
func (c *multiCluster) forwarded() []string {
	return []string{"X-Forwarded-Proto: https", "X-Forwarded-Host: " + strings.TrimPrefix(c.front, "https://")}
}

// direct returns a browser with b's cookies that talks to in itself, as
// the front would (cookies do not tell ports apart, so the jar serves
// both).
func (c *multiCluster) direct(b *browser, in *multiInstance) *browser {
	d := *b
	client := *b.client
	client.Transport = &frontProxy{lines: c.forwarded(), origin: c.front}
	d.client, d.base = &client, in.url()
	return &d
}

// gate returns the status in answers for GET /app with the session token.
func (c *multiCluster) gate(t *testing.T, in *multiInstance, token string) int {
	t.Helper()
	return c.gateAt(t, in.url(), http.DefaultTransport, token, c.forwarded()...)
}

// gateAt returns the status for GET base/app with the session token, or 0
// when there was no answer (the error is reported; callers may run in
// goroutines of their own).
func (c *multiCluster) gateAt(t *testing.T, base string, transport http.RoundTripper, token string, headers ...string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/app", nil)
	if err != nil {
		t.Fatal(err)
	}
	setHeaders(req, headers)
	req.Header.Set("Accept", "text/html")
	req.AddCookie(&http.Cookie{Name: sessionCookieSecure, Value: token})
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("GET %s/app: %v", base, err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// refusedEverywhere polls every instance at once with token from start
// until each refuses it, and returns how long each took.
func (c *multiCluster) refusedEverywhere(t *testing.T, token string, start time.Time, limit time.Duration) map[string]time.Duration {
	t.Helper()
	after := make([]time.Duration, len(c.instances))
	statuses := make([]int, len(c.instances))
	var wg sync.WaitGroup
	for i, in := range c.instances {
		wg.Go(func() {
			for {
				status := c.gate(t, in, token)
				if status != http.StatusOK || time.Since(start) > limit {
					after[i], statuses[i] = time.Since(start), status
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	refused := map[string]time.Duration{}
	for i, in := range c.instances {
		switch statuses[i] {
		case http.StatusFound:
			refused[in.name] = after[i]
		case http.StatusOK:
			t.Fatalf("after %s the ended session still passes %s", limit, in.name)
		default:
			t.Fatalf("%s answered %d for an ended session, want 302", in.name, statuses[i])
		}
	}
	return refused
}

// secureToken is the browser's session cookie on HTTPS.
func secureToken(t *testing.T, b *browser) string {
	t.Helper()
	u, err := url.Parse(b.base)
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range b.client.Jar.Cookies(u) {
		if ck.Name == sessionCookieSecure {
			return ck.Value
		}
	}
	t.Fatalf("no %s cookie", sessionCookieSecure)
	return ""
}

// distinct returns the distinct non-empty names in seen.
func distinct(seen []string) map[string]bool {
	set := map[string]bool{}
	for _, s := range seen {
		if s != "" {
			set[s] = true
		}
	}
	return set
}

// TestThreeInstancesBehindAFront is the proof that instances on one Redis
// behave as one server: sign-ins spread over them, codes and budgets are
// shared, a sign-out or revocation ends a session on all within a second,
// a killed instance costs nothing, and a Redis outage gives 503s, never a
// pass, and ends without a restart.
func TestThreeInstancesBehindAFront(t *testing.T) {
	c := startCluster(t)
	a, b, cc := c.instances[0], c.instances[1], c.instances[2]
	secrets := map[string][]byte{}
	var aliceCodes []string

	t.Run("sign-ins spread over the instances", func(t *testing.T) {
		br, seen := c.browser(t)
		secret, codes := br.enroll("alice")
		secrets["alice"], aliceCodes = secret, codes
		if r := br.get("/app"); r.status != http.StatusOK || r.body != "alice" {
			t.Fatalf("after setup: %d %q", r.status, r.body)
		}
		later, laterSeen := c.browser(t)
		if r := later.signIn("alice", secret); r.status != http.StatusSeeOther {
			t.Fatalf("confirm through the front: %d", r.status)
		}
		if r := later.get("/app"); r.status != http.StatusOK || r.body != "alice" {
			t.Fatalf("after confirm: %d %q", r.status, r.body)
		}
		for what, s := range map[string]*servedBy{"setup": seen, "confirm": laterSeen} {
			got := s.take()
			if len(distinct(got)) != 3 {
				t.Errorf("the %s flow was answered by %v, want all three instances", what, got)
			}
			t.Logf("%s flow answered by %v", what, got)
		}
	})

	t.Run("a code used on one instance is refused on another", func(t *testing.T) {
		secret := secrets["alice"]
		first, _ := c.browser(t)
		if r := first.login("alice", testPassword, "/app"); r.status != http.StatusSeeOther {
			t.Fatalf("login: %d", r.status)
		}
		code := first.code("alice", secret)
		onA := c.direct(first, a)
		if r := onA.confirm(code); r.status != http.StatusSeeOther {
			t.Fatalf("the code on a: %d", r.status)
		}
		replay, _ := c.browser(t)
		if r := replay.login("alice", testPassword, "/app"); r.status != http.StatusSeeOther {
			t.Fatalf("login: %d", r.status)
		}
		if r := c.direct(replay, b).confirm(code); r.status != http.StatusUnauthorized {
			t.Fatalf("b answered %d to a code already used on a, want 401", r.status)
		}
	})

	t.Run("five wrong passwords over three instances lock everywhere", func(t *testing.T) {
		for i := range DefaultMaxAttempts {
			br, _ := c.browser(t)
			if r := c.direct(br, c.instances[i%3]).login("grace", "wrong password", "/app"); r.status != http.StatusUnauthorized {
				t.Fatalf("wrong password %d on %s: %d", i+1, c.instances[i%3].name, r.status)
			}
		}
		for _, in := range c.instances {
			br, _ := c.browser(t)
			if r := c.direct(br, in).login("grace", testPassword, "/app"); r.status != http.StatusTooManyRequests {
				t.Errorf("the right password on %s after %d failures spread over three instances: %d, want 429", in.name, DefaultMaxAttempts, r.status)
			}
		}
	})

	t.Run("one recovery code on two instances at once signs in once", func(t *testing.T) {
		browsers := []*browser{}
		for _, in := range []*multiInstance{a, b} {
			br, _ := c.browser(t)
			d := c.direct(br, in)
			if r := d.login("alice", testPassword, "/app"); r.status != http.StatusSeeOther || r.location() != "/_2fa/confirm" {
				t.Fatalf("login on %s: %d to %q", in.name, r.status, r.location())
			}
			browsers = append(browsers, d)
		}
		pages := make([]response, 2)
		for i, d := range browsers {
			pages[i] = d.get("/_2fa/confirm")
		}
		results := make([]response, 2)
		var wg sync.WaitGroup
		for i, d := range browsers {
			wg.Go(func() {
				results[i] = d.post("/_2fa/confirm", url.Values{"csrf": {d.csrfFrom(pages[i])}, "code": {aliceCodes[0]}})
			})
		}
		wg.Wait()
		wins := 0
		for _, r := range results {
			switch {
			case r.status == http.StatusSeeOther && r.location() == "/app":
				wins++
			case r.status >= 500:
				t.Errorf("a confirm answered %d", r.status)
			}
		}
		if wins != 1 {
			t.Fatalf("one recovery code signed in %d times (answers %d %d)", wins, results[0].status, results[1].status)
		}
	})

	t.Run("a sign-out and a revocation end the session everywhere within a second", func(t *testing.T) {
		signedIn := func(user string) (*browser, string) {
			br, _ := c.browser(t)
			if _, ok := secrets[user]; ok {
				if r := br.signIn(user, secrets[user]); r.status != http.StatusSeeOther {
					t.Fatalf("sign-in of %s: %d", user, r.status)
				}
			} else {
				secrets[user], _ = br.enroll(user)
			}
			token := secureToken(t, br)
			// Every instance serves the session, from memory the second time.
			for range 2 {
				for _, in := range c.instances {
					if status := c.gate(t, in, token); status != http.StatusOK {
						t.Fatalf("%s refused %s's session: %d", in.name, user, status)
					}
				}
			}
			return br, token
		}

		br, token := signedIn("bob")
		onA := c.direct(br, a)
		page := onA.get("/_2fa/logout")
		sent := time.Now()
		if r := onA.post("/_2fa/logout", url.Values{"csrf": {onA.csrfFrom(page)}}); r.status >= 400 {
			t.Fatalf("logout on a: %d", r.status)
		}
		done := time.Now()
		after := c.refusedEverywhere(t, token, done, time.Second)
		t.Logf("sign-out on a: refused by a after %s, b after %s, c after %s (from the end of the sign-out; its request took %s)",
			after["a"], after["b"], after["c"], done.Sub(sent))

		_, token = signedIn("carol")
		sent = time.Now()
		revoke := exec.Command(c.bin, "two-factor", "revoke", "carol", "--address", fmt.Sprintf("localhost:%d", b.admin))
		if out, err := revoke.CombinedOutput(); err != nil || !strings.Contains(string(out), "1 session ended") {
			t.Fatalf("caddy two-factor revoke through b: %v\n%s", err, out)
		}
		done = time.Now()
		after = c.refusedEverywhere(t, token, done, time.Second)
		t.Logf("caddy two-factor revoke through b's admin API: refused by a after %s, b after %s, c after %s (from the command's exit; the command took %s)",
			after["a"], after["b"], after["c"], done.Sub(sent))
	})

	t.Run("a killed instance costs nothing", func(t *testing.T) {
		br, seen := c.browser(t)
		secrets["dave"], _ = br.enroll("dave")
		seen.take()
		if err := cc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cc.cmd.Wait()
		for i := range 6 {
			if r := br.get("/app"); r.status != http.StatusOK || r.body != "dave" {
				t.Fatalf("request %d through the front with c killed: %d %q", i+1, r.status, r.body)
			}
		}
		other, otherSeen := c.browser(t)
		secrets["erin"], _ = other.enroll("erin")
		if r := other.get("/app"); r.status != http.StatusOK {
			t.Fatalf("sign-in with c killed, then: %d", r.status)
		}
		if got := distinct(append(seen.take(), otherSeen.take()...)); got["c"] || len(got) != 2 {
			t.Fatalf("with c killed, answers came from %v", got)
		}

		c.start(cc)
		if status := c.gate(t, cc, secureToken(t, br)); status != http.StatusOK {
			t.Fatalf("the restarted c refused a session opened while it was down: %d", status)
		}
		// The front sends requests to c again once fail_duration is over.
		waitFor(t, 5*time.Second, "the front to send requests to c again", func() bool {
			if r := br.get("/app"); r.status != http.StatusOK {
				t.Fatalf("through the front after c's restart: %d", r.status)
			}
			return distinct(seen.take())["c"]
		})
	})

	t.Run("a Redis outage gives 503s and ends without a restart", func(t *testing.T) {
		br, _ := c.browser(t)
		if r := br.signIn("dave", secrets["dave"]); r.status != http.StatusSeeOther {
			t.Fatalf("sign-in: %d", r.status)
		}
		valid := secureToken(t, br)
		revokedBrowser, _ := c.browser(t)
		if r := revokedBrowser.signIn("erin", secrets["erin"]); r.status != http.StatusSeeOther {
			t.Fatalf("sign-in: %d", r.status)
		}
		revoked := secureToken(t, revokedBrowser)
		for _, in := range c.instances {
			if status := c.gate(t, in, revoked); status != http.StatusOK {
				t.Fatalf("%s refused erin's session: %d", in.name, status)
			}
		}
		revoke := exec.Command(c.bin, "two-factor", "revoke", "erin", "--address", fmt.Sprintf("localhost:%d", a.admin))
		if out, err := revoke.CombinedOutput(); err != nil {
			t.Fatalf("revoke: %v\n%s", err, out)
		}
		c.refusedEverywhere(t, revoked, time.Now(), time.Second)
		raw := make([]byte, store.TokenBytes)
		_, _ = rand.Read(raw)
		unknown := encodeKey(raw)

		const outage = 3 * time.Second
		pause(t, c.redis, outage)
		end := time.Now().Add(outage)
		type answer struct {
			instance, token string
			status          int
		}
		var (
			mu      sync.Mutex
			answers []answer
			wg      sync.WaitGroup
		)
		// Each instance directly, and the front.
		targets := map[string]func(token string) int{"front": func(token string) int { return c.gateAt(t, c.front, c.toFront, token) }}
		for _, in := range c.instances {
			targets[in.name] = func(token string) int { return c.gate(t, in, token) }
		}
		for target, gate := range targets {
			for name, token := range map[string]string{"valid": valid, "revoked": revoked, "unknown": unknown} {
				wg.Go(func() {
					for time.Now().Before(end.Add(-200 * time.Millisecond)) {
						status := gate(token)
						mu.Lock()
						answers = append(answers, answer{target, name, status})
						mu.Unlock()
						time.Sleep(20 * time.Millisecond)
					}
				})
			}
		}
		wg.Wait()
		unavailable, tally := map[string]int{}, map[string]int{}
		for _, ans := range answers {
			tally[fmt.Sprintf("%s %s %d", ans.instance, ans.token, ans.status)]++
			switch {
			case ans.status == http.StatusOK && ans.token != "valid":
				t.Errorf("during the outage, %s let a %s session in", ans.instance, ans.token)
			case ans.status >= 500 && ans.status != http.StatusServiceUnavailable:
				t.Errorf("during the outage, %s answered %d for a %s session", ans.instance, ans.status, ans.token)
			case ans.status == http.StatusServiceUnavailable:
				unavailable[ans.instance+" "+ans.token]++
			}
		}
		for target := range targets {
			if unavailable[target+" unknown"] == 0 {
				t.Errorf("%s never answered 503 for an unknown session during the outage", target)
			}
		}
		t.Logf("during the outage (the last answers come when it ends): %v", tally)

		waitFor(t, 10*time.Second, "every instance to serve again", func() bool {
			for _, in := range c.instances {
				if c.gate(t, in, valid) != http.StatusOK {
					return false
				}
			}
			return true
		})
		t.Logf("every instance served again %s after the outage's end", time.Since(end))
		for _, in := range c.instances {
			for _, token := range []string{revoked, unknown} {
				if status := c.gate(t, in, token); status != http.StatusFound {
					t.Errorf("after the outage, %s answered %d for an ended or unknown session, want 302", in.name, status)
				}
			}
		}
		fresh, _ := c.browser(t)
		fresh.enroll("frank")
		if r := fresh.get("/app"); r.status != http.StatusOK || r.body != "frank" {
			t.Fatalf("a sign-in after the outage: %d %q", r.status, r.body)
		}
	})
}
