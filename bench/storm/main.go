// Command storm sends a storm of sign-in attempts to a two_factor site:
// -c clients at once, each loading the login page and posting a password
// for one of many user names, for -d. It prints how the attempts were
// answered. Run it beside a load generator on signed-in requests to see
// what sign-ins cost everyone else:
//
//	go run ./bench/storm -base http://127.0.0.1:8080 -c 64 -d 10s
//
// Every password is wrong, so accounts and the client address lock after
// a few attempts; the module checks the password hash all the same, so
// the load stays. With -user, every attempt names one account: once it is
// locked, the storm is a flood of refused attempts.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

var csrfPattern = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

func main() {
	base := flag.String("base", "http://127.0.0.1:8080", "the site")
	prefix := flag.String("prefix", "/_2fa", "the module's path_prefix")
	clients := flag.Int("c", 64, "concurrent clients")
	duration := flag.Duration("d", 10*time.Second, "how long")
	users := flag.Int("users", 100000, "user names to spread attempts over (user0000001…)")
	user := flag.String("user", "", "post every attempt for this one user name instead (a flood on one account)")
	flag.Parse()

	var (
		mu       sync.Mutex
		statuses = map[string]int{}
		wg       sync.WaitGroup
	)
	deadline := time.Now().Add(*duration)
	for c := range *clients {
		wg.Go(func() {
			jar, _ := cookiejar.New(nil)
			hc := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			for i := 0; time.Now().Before(deadline); i++ {
				name := *user
				if name == "" {
					name = fmt.Sprintf("user%07d", (c*7919+i*104729)%*users+1)
				}
				status := attempt(hc, *base+*prefix, name)
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	var parts []string
	total := 0
	for s, n := range statuses {
		parts = append(parts, fmt.Sprintf("%s: %d", s, n))
		total += n
	}
	sort.Strings(parts)
	fmt.Printf("%d sign-in attempts in %s (%.1f/s): %s\n", total, *duration, float64(total)/duration.Seconds(), strings.Join(parts, ", "))
}

// attempt makes one sign-in attempt and returns how it was answered.
func attempt(hc *http.Client, pages, name string) string {
	resp, err := hc.Get(pages + "/login")
	if err != nil {
		return "error"
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfPattern.FindSubmatch(body)
	if m == nil {
		return fmt.Sprintf("login page %d", resp.StatusCode)
	}
	form := url.Values{"csrf": {string(m[1])}, "username": {name}, "password": {"not the password"}}
	req, err := http.NewRequest(http.MethodPost, pages+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = hc.Do(req)
	if err != nil {
		return "error"
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return fmt.Sprint(resp.StatusCode)
}
