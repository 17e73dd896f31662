// Command signin signs a new user in to a two_factor site through its real
// pages, as a browser would (login, TOTP setup with a code computed from
// the secret the setup page shows), and prints the session cookie as
// "name=value", for load generators:
//
//	go run ./bench/signin -base http://127.0.0.1:8080 -user bench -password secret
//
// The user must not be enrolled yet (use a fresh database).
//
// With -n, it signs in n users one after the other, <user>1 to <user>n
// (from -first), prints "name cookie" for each, and writes each sign-in's
// time (from the login page to the confirmed session: the password, then
// the code) in microseconds, one a line, to -durations; its median and p99
// go to stderr:
//
//	go run ./bench/signin -base http://127.0.0.1:8080 -user bench -password secret -n 100 -durations times.txt
package main

import (
	"encoding/base32"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/totp"
)

var (
	csrfPattern   = regexp.MustCompile(`name="csrf" value="([^"]*)"`)
	secretPattern = regexp.MustCompile(`data-secret="([A-Z2-7]+)"`)
)

func main() {
	base := flag.String("base", "http://127.0.0.1:8080", "the site")
	prefix := flag.String("prefix", "/_2fa", "the module's path_prefix")
	user := flag.String("user", "bench", "user name")
	password := flag.String("password", "", "password")
	n := flag.Int("n", 0, "sign in n users, <user><first> to <user><first+n-1>, and time each")
	first := flag.Int("first", 1, "the number of the first user with -n")
	durations := flag.String("durations", "", "with -n, append each sign-in's time in µs to this file")
	flag.Parse()
	if *n == 0 {
		cookie, err := signIn(*base, *prefix, *user, *password)
		if err != nil {
			fmt.Fprintln(os.Stderr, "signin:", err)
			os.Exit(1)
		}
		fmt.Println(cookie)
		return
	}
	if err := signInMany(*base, *prefix, *user, *password, *first, *n, *durations); err != nil {
		fmt.Fprintln(os.Stderr, "signin:", err)
		os.Exit(1)
	}
}

// signInMany signs in n users in turn, timing each sign-in.
func signInMany(base, prefix, user, password string, first, n int, durations string) error {
	took := make([]time.Duration, 0, n)
	var times strings.Builder
	for i := first; i < first+n; i++ {
		name := user + strconv.Itoa(i)
		start := time.Now()
		cookie, err := signIn(base, prefix, name, password)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		took = append(took, time.Since(start))
		fmt.Printf("%s %s\n", name, cookie)
		fmt.Fprintf(&times, "%d\n", took[len(took)-1].Microseconds())
	}
	if durations != "" {
		f, err := os.OpenFile(durations, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.WriteString(times.String()); err != nil {
			_ = f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	slices.Sort(took)
	fmt.Fprintf(os.Stderr, "%d sign-ins: p50 %v, p99 %v\n", n, took[n/2], took[(n*99+99)/100-1])
	return nil
}

type client struct {
	http *http.Client
	base string
}

func (c client) do(method, path string, form url.Values) (*http.Response, string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", "text/html")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", c.base)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// field returns the first group of pattern in page.
func field(pattern *regexp.Regexp, page, what string) (string, error) {
	m := pattern.FindStringSubmatch(page)
	if m == nil {
		return "", fmt.Errorf("no %s on the page", what)
	}
	return m[1], nil
}

func signIn(base, prefix, user, password string) (string, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return "", err
	}
	c := client{base: base, http: &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}

	_, page, err := c.do(http.MethodGet, prefix+"/login", nil)
	if err != nil {
		return "", err
	}
	csrf, err := field(csrfPattern, page, "csrf field on the login page")
	if err != nil {
		return "", err
	}
	resp, _, err := c.do(http.MethodPost, prefix+"/login", url.Values{"csrf": {csrf}, "username": {user}, "password": {password}, "next": {"/"}})
	if err != nil {
		return "", err
	}
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != prefix+"/setup" {
		return "", fmt.Errorf("login: %d to %q, want 303 to %s/setup (wrong password, or already enrolled?)", resp.StatusCode, loc, prefix)
	}

	_, page, err = c.do(http.MethodGet, prefix+"/setup", nil)
	if err != nil {
		return "", err
	}
	encoded, err := field(secretPattern, page, "TOTP secret on the setup page")
	if err != nil {
		return "", err
	}
	if csrf, err = field(csrfPattern, page, "csrf field on the setup page"); err != nil {
		return "", err
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(encoded)
	if err != nil {
		return "", err
	}
	code, err := totp.CodeAt(secret, time.Now())
	if err != nil {
		return "", err
	}
	resp, _, err = c.do(http.MethodPost, prefix+"/setup", url.Values{"csrf": {csrf}, "code": {code}})
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("setup: %d", resp.StatusCode)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "two_factor" || ck.Name == "__Host-two_factor" {
			return ck.Name + "=" + ck.Value, nil
		}
	}
	return "", errors.New("no session cookie after setup")
}
