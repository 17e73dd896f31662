package twofactor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/term"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/caddy-two-factor/caddy-two-factor/signin"
	boltstore "github.com/caddy-two-factor/caddy-two-factor/store/bolt"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "two-factor",
		Usage: "<command> [<name>] [--address <interface>] [--config <path> [--adapter <name>]] [--db <path>] [--json]",
		Short: "Manages the users of two_factor",
		Long: `
Manages the users of the two_factor handler through the admin API of the
running Caddy, so changes take effect at once:

  users              list users: where defined, enrolled, recovery codes
                     left, signed-in sessions, locked until
  add-user <name>    add a user managed in the database; they set up their
                     authenticator at their first sign-in
  passwd <name>      set a database-managed user's password
  set-email <name> <address>
                     set a database-managed user's e-mail address for
                     notices and e-mailed codes ("" removes it); add-user
                     takes --email too
  remove-user <name> remove a database-managed user
  reset <name>       drop the user's authenticator and recovery codes (they
                     enroll again at next sign-in), ending their sessions
  revoke <name>      end all of the user's sessions
  unlock <name>      clear the user's failed attempts and lockout
  reseal             seal every TOTP secret, and every pending setup's, with
                     the current encryption_key, then compact the database
                     file so no secret stored without it (or with a previous
                     key) remains; needs the running Caddy, which holds the
                     keys
  migrate            copy a bbolt database into the Redis store a config
                     names, with Caddy stopped (see caddy two-factor migrate
                     --help)

Passwords are read without echo from the terminal, or from --password-file
(- for standard input), never from the command line, and are hashed here
before they are sent: with the algorithm and cost of the config's users, so
that the time a sign-in takes does not tell database users from the others
or from unknown names, or with the --algorithm you name.

The admin endpoint is --address, or the one in --config, or Caddy's default
(localhost:2019); a unix socket is unix//path/to/admin.sock.
When Caddy has several 2FA databases open, choose one with --db: a bbolt
file's path, or a Redis store as users names it,
redis://<first address>/<db>#<key_prefix>. When no running Caddy has the
--db file open, the file is changed directly; this fails if another process
holds it. A Redis store is changed only through a running Caddy that uses it.

With --json, standard output carries only JSON (an object with "error" and
"code" on failure); messages go to standard error. The exit status is 0 on
success and 1 on any failure.
`,
		CobraFunc: func(cmd *cobra.Command) {
			f := cmd.PersistentFlags()
			f.String("address", "", "The address of Caddy's admin endpoint, if not the default or the one in --config")
			f.StringP("config", "c", "", "Configuration file to read the admin address from, if --address is not used")
			f.StringP("adapter", "a", "", "Name of config adapter to apply (when --config is used)")
			f.String("db", "", "The 2FA database to act on (a bbolt file, or redis://<address>/<db>#<key_prefix>), when Caddy has several open or is not running")
			f.Bool("json", false, "Write only JSON to standard output")
			for _, sub := range cliCommands {
				cmd.AddCommand(sub.cobraCommand())
			}
			cmd.AddCommand(migrateCommand())
		},
	})
}

// cliCommand is a subcommand of `caddy two-factor`.
type cliCommand struct {
	action   string
	short    string
	name     bool // takes a user name
	password bool // reads a password
	passkey  bool // takes a passkey's name or ID after the user name
	address  bool // takes an e-mail address after the name
}

var cliCommands = []cliCommand{
	{action: actionUsers, short: "Lists the users, their enrollment, sessions and lockout"},
	{action: actionAddUser, name: true, password: true, short: "Adds a user managed in the database"},
	{action: actionPasswd, name: true, password: true, short: "Sets the password of a database-managed user and ends their sessions"},
	{action: actionSetEmail, name: true, address: true, short: "Sets the e-mail address of a database-managed user"},
	{action: actionRemoveUser, name: true, short: "Removes a database-managed user and ends their sessions"},
	{action: actionReset, name: true, short: "Drops a user's authenticator app, passkeys and recovery codes and ends their sessions"},
	{action: actionRemovePasskey, name: true, passkey: true, short: "Removes one passkey or security key of a user (by name or ID) and ends their sessions"},
	{action: actionRevoke, name: true, short: "Ends all sessions of a user"},
	{action: actionUnlock, name: true, short: "Clears a user's failed attempts and lockout"},
	{action: actionReseal, short: "Seals every secret with the current encryption_key and compacts the database"},
}

func (c cliCommand) cobraCommand() *cobra.Command {
	cmd := &cobra.Command{Use: c.action, Short: c.short, Args: cobra.NoArgs}
	if c.name {
		cmd.Use += " <name>"
		cmd.Args = cobra.ExactArgs(1)
	}
	if c.passkey {
		cmd.Use += " <passkey name or ID>"
		cmd.Args = cobra.ExactArgs(2)
	}
	if c.address {
		cmd.Use += " <address>"
		cmd.Args = cobra.ExactArgs(2)
	}
	if c.action == actionAddUser {
		cmd.Flags().String("email", "", "The user's e-mail address, for security notices and e-mailed codes")
	}
	if c.password {
		cmd.Flags().String("password-file", "", "Read the password from the first line of this file (- for standard input)")
		cmd.Flags().String("algorithm", "", "Hash algorithm, argon2id or bcrypt (default: the algorithm and cost of the config's users)")
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
			cl, err := newCLI(c.action, fl, args)
			if err != nil {
				return caddy.ExitCodeFailedStartup, err
			}
			cl.stdin, cl.stdout, cl.stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
			return cl.run()
		})(cmd, args)
	}
	return cmd
}

// cli is one run of a `caddy two-factor` subcommand.
type cli struct {
	action string
	name   string
	// passkey is remove-passkey's passkey name or ID.
	passkey string
	// address is the admin endpoint.
	address string
	// db is the absolute path of the database to act on, or "".
	db           string
	json         bool
	passwordFile string
	// email is the address of set-email and add-user --email.
	email string
	// algorithm is the one --algorithm names, or "" for the config's.
	algorithm string
	// direct is set once the command acts on the --db file itself.
	direct bool
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// logger writes the audit line of an action done without Caddy.
	logger *zap.Logger
	now    func() time.Time
}

func newCLI(action string, fl caddycmd.Flags, args []string) (*cli, error) {
	address, err := caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, fl.String("config"), fl.String("adapter"))
	if err != nil {
		return nil, fmt.Errorf("finding the admin endpoint: %w", err)
	}
	c := &cli{
		action:  action,
		address: address,
		json:    fl.Bool("json"),
		stdin:   os.Stdin,
		stdout:  os.Stdout,
		stderr:  os.Stderr,
		logger:  caddy.Log(),
		now:     time.Now,
	}
	if len(args) > 0 {
		c.name = args[0]
	}
	if len(args) > 1 {
		if action == actionRemovePasskey {
			c.passkey = args[1]
		} else {
			c.email = args[1]
		}
	}
	if fl.Lookup("email") != nil {
		c.email = fl.String("email")
	}
	if db := fl.String("db"); isRedisName(db) {
		c.db = db
	} else if db != "" {
		if c.db, err = filepath.Abs(db); err != nil {
			return nil, err
		}
	}
	if fl.Lookup("password-file") != nil {
		c.passwordFile, c.algorithm = fl.String("password-file"), fl.String("algorithm")
	}
	return c, nil
}

// run carries out the action and prints its result.
func (c *cli) run() (int, error) {
	res, err := c.do()
	return c.finish(res, err, func() error { return c.printText(res) })
}

// finish prints the outcome of a command, res as JSON with --json or with
// text otherwise, and a failure as {"error", "code"} with --json, and
// returns the exit status.
func (c *cli) finish(res any, err error, text func() error) (int, error) {
	if err != nil {
		if c.json {
			refused, ok := errors.AsType[*adminError](err)
			if !ok {
				refused = &adminError{Message: err.Error()}
			}
			_ = c.printJSON(refused)
		}
		return caddy.ExitCodeFailedStartup, err
	}
	if c.json {
		err = c.printJSON(res)
	} else {
		err = text()
	}
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	return caddy.ExitCodeSuccess, nil
}

func (c *cli) do() (adminResult, error) {
	req := adminRequest{Action: c.action, Name: normalizeUsername(c.name), Passkey: c.passkey, Email: c.email}
	if namedAction(c.action) {
		if err := checkUsername(req.Name); err != nil {
			return adminResult{}, refuse(codeBadRequest, "%v", err)
		}
	}
	if c.action == actionAddUser || c.action == actionPasswd {
		var err error
		if req.PasswordHash, req.OtherHashClass, err = c.newPasswordHash(); err != nil {
			return adminResult{}, err
		}
	}
	return c.send(req)
}

// send carries out req through the admin API or, when no running Caddy has
// the --db file open, on the file itself.
func (c *cli) send(req adminRequest) (adminResult, error) {
	if c.direct {
		return c.offline(req)
	}
	res, err := c.request(req)
	switch errorCode(err) {
	case codeNotRunning, codeNoDatabase, codeNotOpen, codeNoAdminAPI:
		if c.action == actionReseal {
			// The keys are in the config of the Caddy that serves the
			// database, not in the file.
			return res, refuse(errorCode(err), "%v; reseal needs the running Caddy that serves the database, which holds the keys", err)
		}
		if isRedisName(c.db) {
			// Its address and credentials are in the config of the Caddy
			// that uses it, which also tells the other instances.
			return res, refuse(errorCode(err), "%v; %s is a Redis store: the command changes it through the admin API of a running Caddy that uses it (any instance: reach it with --address), never directly", err, c.db)
		}
		if c.db != "" {
			fmt.Fprintf(c.stderr, "%v\nChanging %s directly.\n", err, c.db)
			c.direct = true
			return c.offline(req)
		}
	}
	return res, err
}

// newPasswordHash reads a new password and hashes it with the class the
// server reports (the config's users' algorithm and cost), or with the
// algorithm of --algorithm. other is set when that is not the server's.
func (c *cli) newPasswordHash() (hash string, other bool, err error) {
	if c.algorithm != "" && c.algorithm != signin.Argon2id && c.algorithm != signin.Bcrypt {
		return "", false, refuse(codeBadRequest, "unknown hash algorithm %q: use argon2id or bcrypt", c.algorithm)
	}
	res, err := c.send(adminRequest{Action: actionHashClass})
	if err != nil {
		return "", false, err
	}
	if res.HashClass == nil {
		return "", false, fmt.Errorf("caddy at %s did not say which password hash its config uses", c.address)
	}
	class := *res.HashClass
	switch {
	case c.algorithm != "" && c.algorithm != class.Algorithm:
		want := class
		if class, err = signin.DefaultHashClass(c.algorithm); err != nil {
			return "", false, err
		}
		other = true
		fmt.Fprintf(c.stderr, "Hashing with %s as asked, but unknown user names are checked against %s (%s): the time a sign-in takes will tell this user from them.\n",
			class, want, hashClassOrigin(res.HashClassFrom))
	case res.HashClassFrom != hashClassFromConfig:
		fmt.Fprintf(c.stderr, "Hashing with %s: %s.\n", class, hashClassOrigin(res.HashClassFrom))
	}
	password, err := c.readPassword(class)
	if err != nil {
		return "", false, err
	}
	hash, err = signin.HashPassword(class, password)
	return hash, other, err
}

// request sends req to the admin API.
func (c *cli) request(req adminRequest) (adminResult, error) {
	method, path := adminPath(req)
	if c.db != "" {
		path += "?db=" + url.QueryEscape(c.db)
	}
	var body io.Reader
	var fields map[string]string
	switch {
	case req.Passkey != "":
		fields = map[string]string{"passkey": req.Passkey}
	case req.Action == actionSetEmail:
		fields = map[string]string{"email": req.Email}
	}
	if fields != nil {
		raw, err := json.Marshal(fields)
		if err != nil {
			return adminResult{}, err
		}
		body = bytes.NewReader(raw)
	}
	if req.PasswordHash != "" {
		fields := map[string]any{"password_hash": req.PasswordHash}
		if req.Action == actionAddUser {
			fields["name"] = req.Name
			if req.Email != "" {
				fields["email"] = req.Email
			}
		}
		if req.OtherHashClass {
			fields["other_hash_class"] = true
		}
		raw, err := json.Marshal(fields)
		if err != nil {
			return adminResult{}, err
		}
		body = bytes.NewReader(raw)
	}
	resp, err := adminDo(c.address, method, path, body)
	if opErr, ok := errors.AsType[*net.OpError](err); ok && opErr.Op == "dial" && errors.Is(err, os.ErrPermission) {
		return adminResult{}, refuse(codeNoAccess, "may not connect to Caddy's admin socket %s: %v (run the command as the user Caddy runs as, or let a group in with the socket's permission bits, as in unix//run/caddy/admin.sock|0220)", c.address, opErr.Err)
	}
	if opErr, ok := errors.AsType[*net.OpError](err); ok && opErr.Op == "dial" {
		return adminResult{}, refuse(codeNotRunning, "no Caddy is answering at %s (is it running, and is that its admin endpoint? see --address): %v", c.address, opErr.Err)
	}
	if err != nil {
		return adminResult{}, fmt.Errorf("asking Caddy at %s: %w", c.address, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return adminResult{}, fmt.Errorf("reading Caddy's answer: %w", err)
	}
	if resp.StatusCode >= 400 {
		var refused adminError
		if json.Unmarshal(raw, &refused) == nil && refused.Code != "" {
			return adminResult{}, &refused
		}
		if resp.StatusCode == http.StatusNotFound {
			return adminResult{}, refuse(codeNoAdminAPI, "the Caddy at %s has no two_factor admin API: is it built with this module?", c.address)
		}
		return adminResult{}, fmt.Errorf("caddy at %s answered %s: %s", c.address, resp.Status, bytes.TrimSpace(raw))
	}
	var res adminResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return res, fmt.Errorf("reading Caddy's answer: %w", err)
	}
	return res, nil
}

// adminPath returns the admin API's method and path for req, from the
// table the API routes by.
func adminPath(req adminRequest) (method, path string) {
	for route, action := range adminRoutes {
		if action != req.Action {
			continue
		}
		method, path, _ = strings.Cut(route, " ")
		if segments := strings.Split(path, "/"); len(segments) > 1 {
			// Dots are escaped too, so a name like ".." is no path step.
			segments[1] = strings.ReplaceAll(url.PathEscape(req.Name), ".", "%2E")
			path = strings.Join(segments, "/")
		}
		return method, adminBase + path
	}
	panic("no admin route for " + req.Action)
}

// adminDo sends a request to Caddy's admin endpoint at address, over TCP
// or a unix socket ("unix//run/caddy/admin.sock", with or without
// permission bits "|0200"), as `caddy reload` and `caddy stop` do. It
// mirrors caddycmd.AdminAPIRequest, which cannot be called here: it turns
// a refusal into a plain error string and a dial error into text, and the
// command needs the refusal's JSON and to know that nobody answered.
func adminDo(address, method, uri string, body io.Reader) (*http.Response, error) {
	addr, err := caddy.ParseNetworkAddress(address)
	if err != nil || addr.PortRangeSize() > 1 {
		return nil, fmt.Errorf("invalid admin address %s: %v", address, err)
	}
	origin, dial := "http://"+addr.JoinHostPort(0), addr.JoinHostPort(0)
	if addr.IsUnixNetwork() {
		// The host is a placeholder (Caddy's admin endpoint accepts it on a
		// socket); the socket path may carry permission bits, which are
		// for Caddy's listener, not part of the path.
		origin = "http://127.0.0.1"
		dial, _, _ = strings.Cut(addr.Host, "|")
	}
	req, err := http.NewRequest(method, origin+uri, body)
	if err != nil {
		return nil, err
	}
	if !addr.IsUnixNetwork() {
		req.Header.Set("Origin", origin)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, addr.Network, dial)
			},
		},
	}
	return client.Do(req)
}

// offline carries out req on the database file itself, for when no
// running Caddy has it open.
func (c *cli) offline(req adminRequest) (adminResult, error) {
	if _, err := os.Stat(c.db); err != nil {
		return adminResult{}, refuse(codeNotOpen, "no 2FA database at %s: %v", c.db, err)
	}
	st, err := boltstore.Open(c.db)
	if errors.Is(err, boltstore.ErrLocked) {
		return adminResult{}, refuse(codeLocked, "2FA database %s is held by another process (a Caddy whose admin endpoint is not %s? reach it with --address)", c.db, c.address)
	}
	if err != nil {
		return adminResult{}, err
	}
	defer st.Close()
	if req.Action == actionAddUser {
		fmt.Fprintln(c.stderr, "Without a running Caddy the names its config declares are not checked: a clash stops the config from loading.")
	}
	db := &database{store: st, path: c.db, attempts: throttle.New(st), logger: c.logger}
	res, err := db.administer(req, c.now())
	auditAdmin(c.logger, "command_line", req, res, err)
	return res, err
}

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (c *cli) printText(res adminResult) error {
	name := res.Name
	ended := ""
	if res.SessionsEnded != nil {
		ended = sessionCount(*res.SessionsEnded)
	}
	var err error
	switch res.Action {
	case actionUsers:
		return c.printUsers(res)
	case actionAddUser:
		_, err = fmt.Fprintf(c.stdout, "Added %s to %s. They set up their authenticator at their first sign-in.\n", name, res.DB)
	case actionPasswd:
		_, err = fmt.Fprintf(c.stdout, "Changed the password of %s; %s ended.\n", name, ended)
	case actionRemoveUser:
		_, err = fmt.Fprintf(c.stdout, "Removed %s; %s ended.\n", name, ended)
	case actionReset:
		_, err = fmt.Fprintf(c.stdout, "Reset %s: authenticator app, passkeys and recovery codes removed, %s ended. They set up a new second factor at their next sign-in.\n", name, ended)
	case actionRemovePasskey:
		_, err = fmt.Fprintf(c.stdout, "Removed passkey %q of %s; %s ended.\n", c.passkey, name, ended)
	case actionRevoke:
		_, err = fmt.Fprintf(c.stdout, "Signed %s out: %s ended.\n", name, ended)
	case actionUnlock:
		_, err = fmt.Fprintf(c.stdout, "Unlocked %s.\n", name)
	case actionSetEmail:
		_, err = fmt.Fprintf(c.stdout, "Set the e-mail address of %s.\n", name)
	case actionReseal:
		err = c.printResealed(res)
	}
	return err
}

func (c *cli) printResealed(res adminResult) error {
	r := res.Resealed
	if r == nil {
		return errors.New("caddy's answer has no reseal result")
	}
	fmt.Fprintf(c.stdout, "Sealed %d TOTP secrets and %d pending setups in %s with the current encryption_key.\n", r.Users, r.Sessions, res.DB)
	if r.Compacted != nil {
		fmt.Fprintf(c.stdout, "Compacted the file from %d to %d bytes: no secret remains in it unsealed or under a previous key.\n", r.Compacted.Before, r.Compacted.After)
	}
	if isRedisName(res.DB) {
		// Caddy's ACL user may not rewrite the server's files, and every
		// replica keeps files of its own: that is the operator's step
		// (TestResealOnRedisLeavesOldCiphertextsUntilTheAOFIsRewritten).
		fmt.Fprintln(c.stdout, "The Redis server may still hold the old ciphertexts in its append-only file and snapshots: on every server that persists, replicas included, run BGREWRITEAOF (with AOF) and BGSAVE (with RDB snapshots), and destroy older copies (see docs/operations.md).")
	}
	_, err := fmt.Fprintln(c.stdout, "Any previous_encryption_key can now be removed from the config.")
	return err
}

func sessionCount(n int) string {
	if n == 1 {
		return "1 session"
	}
	return fmt.Sprintf("%d sessions", n)
}

func (c *cli) printUsers(res adminResult) error {
	fmt.Fprintf(c.stdout, "2FA database %s\n", res.DB)
	if len(res.Users) == 0 {
		_, err := fmt.Fprintln(c.stdout, "No users.")
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tDEFINED IN\tENROLLED\tFACTORS\tRECOVERY CODES\tSESSIONS\tLOCKED UNTIL")
	for _, u := range res.Users {
		enrolled, codes, locked := "no", "-", "-"
		factors := userFactors(u)
		if u.Enrolled {
			enrolled = u.EnrolledAt.Local().Format("2006-01-02 15:04")
			codes = fmt.Sprint(u.RecoveryCodesLeft)
		}
		if !u.LockedUntil.IsZero() {
			locked = u.LockedUntil.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", u.Name, u.DefinedIn, enrolled, factors, codes, u.Sessions, locked)
	}
	return tw.Flush()
}

// userFactors names a user's second factors for the users table: totp,
// and each passkey by name ("-" for none).
func userFactors(u userInfo) string {
	var f []string
	if slices.Contains(u.Factors, signin.MethodTOTP) {
		f = append(f, "totp")
	}
	for _, p := range u.Passkeys {
		f = append(f, "passkey "+strconv.Quote(p.Name))
	}
	if len(f) == 0 {
		return "-"
	}
	return strings.Join(f, ", ")
}

// readPassword reads a new password, to be hashed into class, from
// --password-file or, without echo, from the terminal.
func (c *cli) readPassword(class signin.HashClass) ([]byte, error) {
	var (
		password []byte
		err      error
	)
	switch c.passwordFile {
	case "-":
		password, err = firstLine(c.stdin)
	case "":
		f, ok := c.stdin.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return nil, refuse(codeBadRequest, "no terminal to read the password from: use --password-file (- for standard input)")
		}
		password, err = c.promptPassword(int(f.Fd()))
	default:
		var f *os.File
		if f, err = os.Open(c.passwordFile); err != nil {
			return nil, fmt.Errorf("reading password file: %w", err)
		}
		defer f.Close()
		password, err = firstLine(f)
	}
	switch {
	case err != nil:
		return nil, err
	case len(password) == 0:
		return nil, refuse(codeBadRequest, "the password is empty")
	case len(password) > signin.MaxPasswordBytes:
		return nil, refuse(codeBadRequest, "the password is longer than %d bytes", signin.MaxPasswordBytes)
	case class.Algorithm == signin.Bcrypt && len(password) > signin.BcryptMaxBytes:
		return nil, refuse(codeBadRequest, "bcrypt reads only %d bytes of a password: use argon2id, or a shorter password", signin.BcryptMaxBytes)
	}
	return password, nil
}

// promptPassword asks for a password twice on the terminal fd, without
// echo, restoring the terminal if interrupted.
func (c *cli) promptPassword(fd int) ([]byte, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return nil, err
	}
	interrupt := make(chan os.Signal, 1)
	signal.Notify(interrupt, os.Interrupt)
	defer close(interrupt)
	defer signal.Stop(interrupt) // before the close
	go func() {
		if _, ok := <-interrupt; ok {
			_ = term.Restore(fd, state)
			os.Exit(caddy.ExitCodeFailedStartup)
		}
	}()

	fmt.Fprintf(c.stderr, "New password for %s: ", c.name)
	password, err := term.ReadPassword(fd)
	fmt.Fprintln(c.stderr)
	if err != nil {
		return nil, err
	}
	fmt.Fprint(c.stderr, "Confirm password: ")
	confirmation, err := term.ReadPassword(fd)
	fmt.Fprintln(c.stderr)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(password, confirmation) {
		return nil, errors.New("the passwords do not match")
	}
	return password, nil
}

// firstLine returns the first line of r, without its line ending.
func firstLine(r io.Reader) ([]byte, error) {
	line, err := bufio.NewReader(io.LimitReader(r, signin.MaxPasswordBytes+2)).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading password: %w", err)
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r")), nil
}
