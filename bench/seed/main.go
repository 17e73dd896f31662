// Command seed fills a two_factor database with users and signed-in
// sessions, for measuring how the module behaves at scale.
//
//	go run ./bench/seed -db /tmp/2fa.db -users 100000 -sessions 1000000
//
// Users are managed in the database (they have a password hash, an
// enrolled authenticator with recovery codes and a session identifier) and
// are named user0000001, user0000002, …; sessions are spread over them,
// with realistic client addresses and User-Agents and expiries spread over
// -lifetime, so the sweep finds work as time passes. With -tokens FILE, the
// cookie values of the -token-count sessions that expire last are written to
// FILE, one a line, for load generators that want many distinct sessions.
//
// The database must not be open in a running Caddy (bbolt locks the file).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/internal/seed"
	boltstore "github.com/caddy-two-factor/caddy-two-factor/store/bolt"
)

func main() {
	var (
		path = flag.String("db", "", "database file to fill (created if missing)")
		o    seed.Options
		out  = flag.String("tokens", "", "write the cookie values of the sessions that expire last to this file")
	)
	flag.IntVar(&o.Users, "users", 100000, "number of users")
	flag.IntVar(&o.Sessions, "sessions", 1000000, "number of signed-in sessions")
	flag.IntVar(&o.Expired, "expired", 0, "how many of the sessions have already expired (for the sweep)")
	flag.DurationVar(&o.Lifetime, "lifetime", 12*time.Hour, "sessions expire evenly over this span from now")
	flag.StringVar(&o.Password, "password", "seed-password", "every user's password")
	flag.IntVar(&o.Tokens, "token-count", 1000, "how many cookie values -tokens gets")
	flag.IntVar(&o.Batch, "batch", 1000, "records per write transaction")
	flag.Parse()
	if *path == "" || o.Users <= 0 || o.Sessions < 0 || o.Expired > o.Sessions {
		flag.Usage()
		os.Exit(2)
	}
	if *out == "" {
		o.Tokens = 0
	}
	if err := run(*path, *out, o); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func run(path, out string, o seed.Options) error {
	st, err := boltstore.Open(path)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	tokens, err := seed.Fill(st, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d users and %d sessions written to %s in %s\n", o.Users, o.Sessions, path, time.Since(start).Round(time.Millisecond))
	if out != "" {
		return os.WriteFile(out, []byte(strings.Join(tokens, "\n")+"\n"), 0o600)
	}
	return nil
}
