// Command propagate measures how long a revocation made on one Caddy
// instance takes to be honoured by another on the same store. It reads
// "name cookie" lines (what `bench/signin -n` prints) from stdin; for
// each, it makes sure instance B serves the session (from its cache),
// revokes the user's sessions through instance A's admin API, and polls B
// with the cookie, as fast as B answers, until B refuses it (401):
//
//	signin -base http://127.0.0.1:8081 -user bench -password secret -n 100 |
//		go run ./bench/propagate -admin http://127.0.0.1:2019 -b http://127.0.0.1:8082
//
// The time of a revocation runs from sending the admin request to the end
// of B's first refusal. It prints the median, p99 and longest of those,
// and of the admin request alone, and how many of B's answers still
// served a session after A had answered its revocation (any is a window
// in which a revoked session outlived the revocation's answer).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

func main() {
	admin := flag.String("admin", "http://127.0.0.1:2019", "instance A's admin endpoint")
	b := flag.String("b", "http://127.0.0.1:8080", "instance B's site")
	limit := flag.Duration("limit", 10*time.Second, "give up on a revocation B still honours after this long")
	flag.Parse()
	if err := run(*admin, *b, *limit); err != nil {
		fmt.Fprintln(os.Stderr, "propagate:", err)
		os.Exit(1)
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

// get asks site for its root with cookie and returns the status.
func get(site, cookie string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, site+"/", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Cookie", cookie)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Body.Close()
}

// revoke ends the user's sessions through the admin API.
func revoke(admin, name string) error {
	resp, err := client.Post(admin+"/two_factor/users/"+name+"/revoke", "application/json", nil)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revoking %s: %d %s", name, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

func run(admin, b string, limit time.Duration) error {
	var took, calls []time.Duration
	late := 0
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		name, cookie, ok := strings.Cut(lines.Text(), " ")
		if !ok {
			return fmt.Errorf("want \"name cookie\" lines, got %q", lines.Text())
		}
		// Twice: the first request may read the session from the store,
		// the second is served from B's memory.
		for range 2 {
			if status, err := get(b, cookie); err != nil || status != http.StatusOK {
				return fmt.Errorf("%s before the revocation: %d %v", name, status, err)
			}
		}
		start := time.Now()
		revoked := make(chan error, 1)
		var answered atomic.Bool
		go func() {
			err := revoke(admin, name)
			calls = append(calls, time.Since(start))
			answered.Store(true)
			revoked <- err
		}()
		for {
			// Read before the request: a 200 then counts as late only if
			// B was asked after A had answered.
			after := answered.Load()
			status, err := get(b, cookie)
			if err != nil {
				return err
			}
			if status == http.StatusUnauthorized {
				took = append(took, time.Since(start))
				break
			}
			if status != http.StatusOK {
				return fmt.Errorf("%s: B answered %d", name, status)
			}
			if after {
				late++
			}
			if time.Since(start) > limit {
				return fmt.Errorf("%s: B still serves the session %v after the revocation", name, limit)
			}
		}
		if err := <-revoked; err != nil {
			return err
		}
	}
	if err := lines.Err(); err != nil {
		return err
	}
	if len(took) == 0 {
		return fmt.Errorf("no sessions on stdin")
	}
	fmt.Printf("%d revocations: until B refuses %s; the admin request on A %s; B served %d requests asked after A had answered\n",
		len(took), summary(took), summary(calls), late)
	return nil
}

// summary is the median, p99 and longest of d.
func summary(d []time.Duration) string {
	slices.Sort(d)
	n := len(d)
	r := func(d time.Duration) string { return d.Round(10 * time.Microsecond).String() }
	return fmt.Sprintf("p50 %s, p99 %s, max %s", r(d[n/2]), r(d[(n*99+99)/100-1]), r(d[n-1]))
}
