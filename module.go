// Package twofactor is a Caddy HTTP handler, two_factor, that closes the
// routes it matches until the user has signed in with a password and a
// second factor (a TOTP code, or a one-time recovery code).
//
// It serves its own sign-in pages under a path prefix (/_2fa by default):
// login, TOTP setup on first sign-in, confirmation on every later one, and
// logout. Users, enrollments and server-side sessions are kept in an
// embedded bbolt database.
//
// The sign-in itself (passwords, codes, sessions, attempt budgets, the
// operator's actions) is package signin, which has no HTTP in it; this
// package parses requests, keeps cookies and CSRF tokens, answers the
// service's typed errors in one place (failure.go), writes its events to
// the audit log (audit.go), and runs the gate, the admin API and the
// command line.
//
// Once a signed-in request is let through, these placeholders are set. On
// any other request the handler sees, those that nothing set before (as
// basic_auth sets {http.auth.user.id}) are set to empty:
//
//	{http.auth.user.id}              the user name
//	{http.two_factor.user}           the user name
//	{http.two_factor.method}         how the second factor was given: totp, recovery, setup, email or webauthn;
//	                                 remembered (remember_device) or app_token (app_tokens)
//	{http.two_factor.confirmed_at}   when it was last given (RFC 3339); empty when none was
//	{http.two_factor.session_expires} when the session ends at the latest (RFC 3339)
package twofactor

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"go.uber.org/zap"
	"golang.org/x/text/unicode/norm"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-two-factor/caddy-two-factor/notify"
	"github.com/caddy-two-factor/caddy-two-factor/passkey"
	"github.com/caddy-two-factor/caddy-two-factor/policy"
	"github.com/caddy-two-factor/caddy-two-factor/seal"
	"github.com/caddy-two-factor/caddy-two-factor/signin"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
)

func init() {
	caddy.RegisterModule(TwoFactor{})
}

// Defaults of the config fields.
const (
	DefaultPathPrefix      = "/_2fa"
	DefaultSessionIdle     = 30 * time.Minute
	DefaultSessionLifetime = 12 * time.Hour
	DefaultPendingLifetime = 5 * time.Minute
	DefaultRecoveryCodes   = 10
	DefaultMaxAttempts     = 5
	DefaultAttemptWindow   = 5 * time.Minute
	DefaultLockout         = 15 * time.Minute
	DefaultMaxIPAttempts   = 50
	// DefaultMaxAccountAttempts is NIST SP 800-63B's ceiling of consecutive
	// failures on one account.
	DefaultMaxAccountAttempts = 100
)

// TwoFactor is an HTTP handler that lets a request through only once its
// client has signed in with a password and a second factor, and otherwise
// sends it to the sign-in pages it serves under path_prefix.
//
// An unauthenticated request that accepts text/html is redirected to
// {path_prefix}/login?next=<original path and query>; any other gets 401.
//
// Which requests it guards is its own match field, matched against the
// request as rewritten and as the client sent it. The handler must also
// see requests for its own pages: the Caddyfile directive puts its matcher
// in match and leaves the route unmatched. A JSON route that keeps
// matchers of its own needs an extra matcher set for the pages,
// {"path": ["/_2fa", "/_2fa/*"]}, and its matchers see only the
// rewritten request.
type TwoFactor struct {
	// The bbolt database file with enrollments and sessions. It is opened
	// once per file and shared by every site that names it: sites that
	// share a file share one set of users, enrollments, sessions and
	// lockouts. Default: a file of the site's own (see site).
	DB string `json:"db,omitempty"`

	// Where enrollments, sessions and lockouts are kept: a module of the
	// two_factor.stores namespace, named by its "backend" key:
	// {"backend": "bolt", "path": ...} (the same as db) or
	// {"backend": "redis", ...}, for several Caddy instances that share
	// sign-ins. Set db or store, not both. Default: the bolt file of db,
	// or of site.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=two_factor.stores inline_key=backend"`

	// The site this handler guards, which names its default database file:
	// two_factor/<site>-<digest>.db in Caddy's data directory, so sites
	// that name no db never share sign-ins, and the default WebAuthn
	// rp_id and origins. The Caddyfile sets it to the site block's
	// addresses. In JSON, set site or db.
	Site string `json:"site,omitempty"`

	// The issuer shown in authenticator apps, at most 100 bytes (it goes
	// into the QR code twice). Default: the host name the user signs in on,
	// or "Caddy" when that is longer.
	Issuer string `json:"issuer,omitempty"`

	// The users who may sign in, with password hashes from
	// `caddy hash-password` (bcrypt or argon2id).
	Users []Account `json:"users,omitempty"`

	// Base64 of 32 random bytes that encrypt TOTP secrets at rest (AES-256-GCM).
	// Give it as a placeholder, {env.TWO_FACTOR_KEY} or {file.path},
	// resolved at provisioning: a key written in the config is logged by
	// Caddy at DEBUG level and served at GET /config/, so that logs a
	// warning. A config whose keys do not open the database's secrets is
	// refused when it loads. Default: none; secrets are then stored
	// unencrypted and a warning is logged.
	EncryptionKey string `json:"encryption_key,omitempty"`

	// Keys that encrypted TOTP secrets before encryption_key, in the same
	// form: they open what was sealed with them, and each secret is sealed
	// again with encryption_key when it is used, or all at once by
	// `caddy two-factor reseal`, after which they can be removed.
	// Default: none.
	PreviousEncryptionKeys []string `json:"previous_encryption_keys,omitempty"`

	// Where the sign-in pages are served. Default: /_2fa
	PathPrefix string `json:"path_prefix,omitempty"`

	// A session not used for this long ends. Default: 30m
	SessionIdle caddy.Duration `json:"session_idle,omitempty"`

	// A session ends this long after sign-in, whatever its activity. Default: 12h
	SessionLifetime caddy.Duration `json:"session_lifetime,omitempty"`

	// How long a user has, after the password step, to give the second
	// factor. Default: 5m
	PendingLifetime caddy.Duration `json:"pending_lifetime,omitempty"`

	// Keep a user's other sessions when they sign in again. By default a
	// new sign-in ends all older sessions of the user, and each sign-in
	// rotates the user's session identifier.
	ConcurrentSessions bool `json:"concurrent_sessions,omitempty"`

	// The SameSite attribute of the session cookie: lax or strict. Default: lax
	SameSite string `json:"same_site,omitempty"`

	// How many recovery codes a user gets at enrollment. Default: 10
	RecoveryCodes int `json:"recovery_codes,omitempty"`

	// Failed passwords and codes an account may have from one client
	// network (an IPv4 address or an IPv6 /64) within attempt_window before
	// it is locked for that network. Default: 5
	MaxAttempts int `json:"max_attempts,omitempty"`

	// Failed passwords and codes an account may have from all networks
	// together within 24 hours (or until a complete sign-in) before it is
	// locked everywhere. Someone who knows a user name can lock that user
	// out of their own network at once, but out of every network only by
	// this many failures. Default: 100
	MaxAccountAttempts int `json:"max_account_attempts,omitempty"`

	// The window in which failures are counted. Default: 5m
	AttemptWindow caddy.Duration `json:"attempt_window,omitempty"`

	// How long a locked account or client stays locked. Default: 15m
	Lockout caddy.Duration `json:"lockout,omitempty"`

	// Failures one client IP may have within attempt_window, over all
	// accounts, before it is locked. The client IP is Caddy's, which honours
	// the server's trusted_proxies. Default: 50
	MaxIPAttempts int `json:"max_ip_attempts,omitempty"`

	// The site's name, shown above every sign-in page and in the browser's
	// tab title. Default: the issuer, when one is set; otherwise none.
	Title string `json:"title,omitempty"`

	// A logo shown above the title: a path on this site (/logo.svg) or a
	// data:image/ URL. The pages' Content-Security-Policy loads images only
	// from the site itself, so another site's URL is refused. Default: none.
	LogoURL string `json:"logo_url,omitempty"`

	// An image file (.png, .jpg, .gif, .webp, .svg or .ico, at most 1 MiB)
	// that the module serves as the logo, in place of logo_url. It is read
	// at provisioning. Default: none.
	LogoFile string `json:"logo_file,omitempty"`

	// A style sheet served after the module's own, so its rules win: set
	// the colour variables of docs/branding.md, or restyle anything. It is
	// read at provisioning (at most 1 MiB). Default: none.
	CSSFile string `json:"css_file,omitempty"`

	// A directory of page templates (*.html) parsed over the embedded ones:
	// a file replaces the embedded file of the same name. Start from a
	// copy of the module's templates/ folder. The templates are parsed and
	// test-rendered at provisioning, so a broken one is a config error.
	// Default: the embedded templates only.
	TemplatesDir string `json:"templates_dir,omitempty"`

	// Passkeys and security keys (WebAuthn): the relying party. rp_id is
	// the domain passkeys are bound to (default: the host of the site's
	// address); rp_name the name browsers show (default: the issuer, else
	// the title, else rp_id); origins the pages may run a ceremony from
	// (default: the site's addresses on rp_id; never taken from a
	// request's Host); user_verification and resident_key are required,
	// preferred (the default) or discouraged. A site whose address names no
	// domain has no passkeys unless this is set. See docs/passkeys.md.
	WebAuthn *passkey.Config `json:"webauthn,omitempty"`

	// The second factors users may enroll: "totp", "webauthn". A factor a
	// user has keeps working. Default: both.
	Factors []string `json:"factors,omitempty"`

	// Let a discoverable passkey that verifies the user (PIN or biometric)
	// sign in alone, without password or code. Needs user_verification
	// required. Default: off.
	PasskeyLogin bool `json:"passkey_login,omitempty"`

	// The language of the pages, a BCP 47 tag such as de or pt-BR,
	// whatever the browser asks for. Default: the browser's choice
	// (Accept-Language) among languages.
	Language string `json:"language,omitempty"`

	// The languages the pages may speak, chosen per request by the
	// browser's Accept-Language; the first is used when none fits.
	// Default: all that ship (en, de, fr, es, it, nl, pt-BR, pl, ja,
	// zh-Hans) and those of messages_dir, with English when none fits.
	Languages []string `json:"languages,omitempty"`

	// A directory of message catalogs, <tag>.json (de.json, sv.json),
	// that override messages of the embedded languages or add languages:
	// a key left out is taken from English. They are checked at
	// provisioning: a key English lacks or a message whose placeholders
	// differ from English's is a config error naming the file.
	// Default: none.
	MessagesDir string `json:"messages_dir,omitempty"`

	// The requests the gate guards, as one matcher set (all its matchers
	// must match). A request is guarded if the set matches it as it is
	// now or as the client sent it, before any rewrite, uri or try_files;
	// every other request passes to the next handler with the identity
	// placeholders empty. A route's own matchers see only the rewritten
	// request, so guard paths here, not there. Default: every request
	// that reaches the handler.
	MatchersRaw caddy.ModuleMap `json:"match,omitempty" caddy:"namespace=http.matchers"`

	// Step-up rules: a request to a path that a rule's paths match needs a
	// second factor given within the rule's max_age (the smallest, when
	// several match). Otherwise a browser is sent to
	// {path_prefix}/confirm?next=<the request>, which asks a signed-in
	// session for the second factor only, and any other client gets 401.
	// Paths are patterns with the meaning of Caddy's path matcher. See
	// docs/policies.md. Default: none.
	StepUp []StepUpRule `json:"step_up,omitempty"`

	// Random re-checks: each second factor given draws a deadline
	// between min and max after it, after which the next guarded request
	// asks for the second factor again, as step-up does. Default: off.
	Recheck *RecheckRule `json:"recheck,omitempty"`

	// A placeholder naming the user that an earlier handler authenticated,
	// such as {http.auth.user.id} after basic_auth: the module then shows
	// no password page and asks only for the second factor, and a session
	// counts only while the placeholder names its user. users become
	// optional: when given, only they may pass (their hashes are not
	// used). A guarded request on which the placeholder is empty is
	// refused and logged. Default: none (the module asks for a password).
	UserFrom string `json:"user_from,omitempty"`

	// Path patterns (as step_up's) where a request may pass with an app
	// token instead of a session: Authorization: Bearer <token>, or Basic
	// with the user's name and the token as the password, for clients
	// that cannot give a second factor. Users create tokens on the account
	// page. Never accepted on the module's own pages. Default: none.
	AppTokens []string `json:"app_tokens,omitempty"`

	// How long a browser is spared the second factor after the user ticks
	// "don't ask for a code on this browser" on the confirm page: a later
	// sign-in from it needs only the password. The browser keeps a random
	// token in a cookie of its own; the store keeps its digest, bound to
	// the user's current factors. Default: off (no checkbox).
	RememberDevice caddy.Duration `json:"remember_device,omitempty"`
	// Security notices by e-mail and webhook (see Notify and
	// docs/notifications.md). Default: none.
	Notify *Notify `json:"notify,omitempty"`

	// Let a user with an e-mail address ask for a fallback sign-in code by
	// e-mail on the confirm page (8 digits, 10 minutes, once). Needs
	// notify's smtp. Default: off.
	EmailCodes bool `json:"email_codes,omitempty"`

	// Let the confirm page that a step_up rule or a recheck sends a
	// signed-in browser to offer the e-mailed code too (Caddyfile:
	// email_codes step_up). A new authenticator, new recovery codes and
	// app tokens still need the authenticator or a recovery code. Needs
	// email_codes. Default: off.
	EmailCodesStepUp bool `json:"email_codes_step_up,omitempty"`

	accounts    map[string]signin.Account
	fakeAccount signin.Account
	sealer      *seal.Sealer
	db          *database
	// signin carries out the sign-ins; the pages parse, call it and answer.
	signin *signin.Service
	// store is the store module; ownStore says whether this handler
	// opened it (the default file, or a test's) and so must clean it up.
	store     storeGuest
	ownStore  bool
	sameSite  http.SameSite
	attempts  *throttle.Tracker
	logger    *zap.Logger
	now       func() time.Time
	brand     brand
	templates *template.Template
	pages     *pages
	logo      *asset
	customCSS *asset
	matchers  caddyhttp.MatcherSet
	// gate is the policy built from step_up and recheck; stepUpPaths
	// are the matchers of gate.StepUp, rule by rule, and shortestStepUp
	// their smallest max age; policies says whether any is on.
	gate           policy.Policy
	stepUpPaths    []pathPatterns
	shortestStepUp time.Duration
	policies       bool
	// appTokenPaths are the patterns of app_tokens.
	appTokenPaths pathPatterns
	// notifier sends notices; nil without notify.
	notifier *notifier
}

// Account is a user who may sign in.
type Account struct {
	// The user name.
	Username string `json:"username"`

	// The password hash, from `caddy hash-password` (bcrypt or argon2id,
	// in Modular Crypt Format).
	Password string `json:"password"` //nolint:gosec // a hash, not a password

	// The user's e-mail address, for notices and e-mailed codes.
	// Default: none.
	Email string `json:"email,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (TwoFactor) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.two_factor",
		New: func() caddy.Module { return new(TwoFactor) },
	}
}

// Provision applies defaults, resolves placeholders and opens the database.
func (h *TwoFactor) Provision(ctx caddy.Context) error {
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	if err := h.provisionMatchers(ctx); err != nil {
		return err
	}
	if h.StoreRaw != nil {
		if h.DB != "" {
			return errors.New("db and store are both set: give one (db <path> is store bolt <path>)")
		}
		mod, err := ctx.LoadModule(h, "StoreRaw")
		if err != nil {
			return fmt.Errorf("loading 2FA store: %w", err)
		}
		h.store = mod.(storeGuest)
	}
	if err := h.provision(ctx.Logger()); err != nil {
		return err
	}
	warnLaxTrustedProxies(ctx, h.logger)
	return nil
}

// warnLaxTrustedProxies warns when the server trusts proxies but reads
// X-Forwarded-For from the left: behind a proxy that appends to it, the
// client then chooses the address the attempt limits count by.
func warnLaxTrustedProxies(ctx context.Context, logger *zap.Logger) {
	srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if ok && len(srv.TrustedProxiesRaw) > 0 && srv.TrustedProxiesStrict == 0 {
		logger.Warn("trusted_proxies is set without trusted_proxies_strict: Caddy takes the client address from the left-most X-Forwarded-For entry, which a client writes itself when the proxy appends to the header, so the per-network and per-client attempt limits count the address the client chose; set trusted_proxies_strict (or make the proxy replace the header)")
	}
}

// provision is Provision without a Caddy context, so tests can provision
// a handler with their own logger and clock.
func (h *TwoFactor) provision(logger *zap.Logger) error {
	h.logger = logger
	if h.now == nil {
		h.now = time.Now
	}
	h.applyDefaults()

	repl := caddy.NewReplacer()
	if err := h.provisionAccounts(repl); err != nil {
		return err
	}
	if err := h.provisionSealer(repl); err != nil {
		return err
	}
	if err := h.provisionBranding(repl); err != nil {
		return err
	}
	if err := h.provisionLanguages(repl); err != nil {
		return err
	}
	if err := h.provisionPolicies(); err != nil {
		return err
	}
	passkeys, err := h.provisionPasskeys(repl)
	if err != nil {
		return err
	}

	if h.store == nil {
		path := repl.ReplaceKnown(h.DB, "")
		if path == "" {
			if h.Site == "" {
				return errors.New("set db (the database file), store, or site (the name of the site, which names a file of its own): sites never share a database unless they name the same db")
			}
			path = filepath.Join(caddy.AppDataDir(), "two_factor", siteFileName(h.Site))
		}
		h.store = &BoltStore{Path: path}
	}
	if h.store.opened() == nil {
		if err := h.store.open(h.logger); err != nil {
			return err
		}
		h.ownStore = true
	}
	db := h.store.opened()
	h.db = db
	h.useTestClock(db.path)
	h.attempts = db.attempts
	if err := db.checkKeys(h.sealer); err != nil {
		return err
	}
	if err := h.provisionNotify(repl); err != nil {
		return err
	}
	policy, deps := h.policy(), signin.Deps{
		Store:    db.store,
		Attempts: db.attempts,
		Hashing:  db.hashing,
		Sealer:   h.sealer,
		Passkeys: passkeys,
		// Read at each call: tests set h.now after provisioning.
		Now: func() time.Time { return h.now() },
	}
	h.emailCodes(&policy, &deps)
	h.signin = signin.New(policy, deps)
	// Each observer of sign-in events is one line here.
	h.signin.Observe(h.auditEvent)
	h.signin.Observe(observeSignIn)
	h.signin.Observe(h.noticeEvent)
	// The admin API learns from this which users the config declares.
	return db.register(h)
}

func (h *TwoFactor) applyDefaults() {
	h.PathPrefix = cleanPathPrefix(h.PathPrefix)
	if h.SessionIdle == 0 {
		h.SessionIdle = caddy.Duration(DefaultSessionIdle)
	}
	if h.SessionLifetime == 0 {
		h.SessionLifetime = caddy.Duration(DefaultSessionLifetime)
	}
	if h.PendingLifetime == 0 {
		h.PendingLifetime = caddy.Duration(DefaultPendingLifetime)
	}
	if h.SameSite == "" {
		h.SameSite = "lax"
	}
	if h.RecoveryCodes == 0 {
		h.RecoveryCodes = DefaultRecoveryCodes
	}
	if h.MaxAttempts == 0 {
		h.MaxAttempts = DefaultMaxAttempts
	}
	if h.AttemptWindow == 0 {
		h.AttemptWindow = caddy.Duration(DefaultAttemptWindow)
	}
	if h.Lockout == 0 {
		h.Lockout = caddy.Duration(DefaultLockout)
	}
	if h.MaxIPAttempts == 0 {
		h.MaxIPAttempts = DefaultMaxIPAttempts
	}
	if h.MaxAccountAttempts == 0 {
		h.MaxAccountAttempts = DefaultMaxAccountAttempts
	}
	switch strings.ToLower(h.SameSite) {
	case "strict":
		h.sameSite = http.SameSiteStrictMode
	default:
		h.sameSite = http.SameSiteLaxMode
	}
}

func (h *TwoFactor) provisionAccounts(repl *caddy.Replacer) error {
	h.accounts = make(map[string]signin.Account, len(h.Users))
	for i, u := range h.Users {
		name := normalizeUsername(repl.ReplaceKnown(u.Username, ""))
		if err := checkUsername(name); err != nil {
			return fmt.Errorf("user %d: %w", i, err)
		}
		if _, dup := h.accounts[name]; dup {
			return fmt.Errorf("user %d: %q is declared twice", i, name)
		}
		acct, err := signin.NewAccount(repl.ReplaceKnown(u.Password, ""))
		if err != nil {
			return fmt.Errorf("user %q: %w", name, err)
		}
		if u.Email != "" {
			if acct.Email, err = notify.ParseAddress(repl.ReplaceKnown(u.Email, "")); err != nil {
				return fmt.Errorf("user %q: %w", name, err)
			}
		}
		h.accounts[name] = acct
	}
	// Unknown users are checked against a hash of the same class as a real
	// user's, so the time taken does not tell who exists. Without users in
	// the config, users come from `caddy two-factor add-user`, which hashes
	// with the class the admin API reports: Caddy's argon2id defaults.
	class, err := signin.DefaultHashClass(signin.Argon2id)
	if err != nil {
		return err
	}
	if len(h.Users) > 0 {
		first := normalizeUsername(repl.ReplaceKnown(h.Users[0].Username, ""))
		class = h.accounts[first].Class
		h.warnMixedHashClasses()
	}
	h.fakeAccount, err = signin.FakeAccount(class)
	return err
}

// warnMixedHashClasses logs a warning when the config's users have hashes
// of different classes: a sign-in then takes a time that tells a user of
// one class from a user of another, and from unknown names.
func (h *TwoFactor) warnMixedHashClasses() {
	byClass := make(map[signin.HashClass][]string)
	for name, a := range h.accounts {
		byClass[a.Class] = append(byClass[a.Class], name)
	}
	if len(byClass) < 2 {
		return
	}
	groups := make([]string, 0, len(byClass))
	for class, names := range byClass {
		slices.Sort(names)
		groups = append(groups, class.String()+": "+strings.Join(names, ", "))
	}
	slices.Sort(groups)
	h.logger.Warn("the config's users have password hashes of different algorithms or costs: "+
		"the time a sign-in takes can tell them apart, and from unknown names, which are checked like the first user; "+
		"hash every password alike (same `caddy hash-password` flags)",
		zap.Strings("hash_classes", groups))
}

// Validate checks the config.
func (h *TwoFactor) Validate() error {
	if strings.ContainsAny(h.PathPrefix, " ?#*{}\\") || h.PathPrefix == "/" {
		return fmt.Errorf("path_prefix %q must be a plain path below the root, like /_2fa", h.PathPrefix)
	}
	for name, d := range map[string]caddy.Duration{
		"session_idle":     h.SessionIdle,
		"session_lifetime": h.SessionLifetime,
		"pending_lifetime": h.PendingLifetime,
		"attempt_window":   h.AttemptWindow,
		"lockout":          h.Lockout,
	} {
		if d < 0 {
			return fmt.Errorf("%s must be positive, not %s", name, time.Duration(d))
		}
	}
	if h.AttemptWindow > caddy.Duration(throttle.MaxWindow) || h.Lockout > caddy.Duration(throttle.MaxWindow) {
		return fmt.Errorf("attempt_window and lockout must be at most %s", throttle.MaxWindow)
	}
	if len(h.Issuer) > maxIssuerLength || strings.ContainsFunc(h.Issuer, unicode.IsControl) {
		return fmt.Errorf("issuer must be at most %d bytes with no control characters", maxIssuerLength)
	}
	switch strings.ToLower(h.SameSite) {
	case "lax", "strict":
	default:
		return fmt.Errorf("same_site must be lax or strict, not %q", h.SameSite)
	}
	if h.RecoveryCodes < 0 || h.RecoveryCodes > 100 {
		return fmt.Errorf("recovery_codes must be between 1 and 100, not %d", h.RecoveryCodes)
	}
	if h.MaxAttempts < 0 || h.MaxIPAttempts < 0 || h.MaxAccountAttempts < 0 {
		return errors.New("max_attempts, max_account_attempts and max_ip_attempts must be positive")
	}
	if err := h.validatePolicies(); err != nil {
		return err
	}
	if h.UserFrom != "" {
		if err := checkUserFrom(h.UserFrom); err != nil {
			return err
		}
	}
	for _, p := range h.AppTokens {
		if err := policy.ValidatePattern(p); err != nil {
			return fmt.Errorf("app_tokens: %w", err)
		}
	}
	if err := h.validateFactors(); err != nil {
		return err
	}
	if err := h.validateNotify(); err != nil {
		return err
	}
	return h.validateBranding()
}

// Cleanup releases this config's use of the database.
func (h *TwoFactor) Cleanup() error {
	h.closeNotify()
	if h.db == nil {
		return nil
	}
	h.db.unregister(h)
	if h.ownStore {
		return h.store.Cleanup()
	}
	return nil
}

// siteFileName is the default database file name of a site: its name
// made safe for a file name, and a digest of the exact name, so that no
// two sites map to one file.
func siteFileName(site string) string {
	safe := []byte(site)
	for i, c := range safe {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			safe[i] = '_'
		}
	}
	if len(safe) > 64 {
		safe = safe[:64]
	}
	if len(safe) > 0 && safe[0] == '.' {
		safe[0] = '_' // no hidden file
	}
	sum := sha256.Sum256([]byte(site))
	return string(safe) + "-" + hex.EncodeToString(sum[:4]) + ".db"
}

// cleanPathPrefix returns prefix with one leading slash and no trailing
// one (so "/auth/" serves the pages under /auth), or the default prefix if
// it is empty. A prefix of only slashes stays "/", which Validate refuses.
func cleanPathPrefix(prefix string) string {
	if prefix == "" {
		return DefaultPathPrefix
	}
	return "/" + strings.Trim(prefix, "/")
}

// normalizeUsername puts a user name in Unicode NFKC form, so names that
// look the same (fullwidth letters, composed accents) are the same name.
func normalizeUsername(name string) string {
	return norm.NFKC.String(strings.TrimSpace(name))
}

func checkUsername(name string) error {
	if name == "" {
		return errors.New("user name is empty")
	}
	if len(name) > 128 {
		return fmt.Errorf("user name %q is longer than 128 bytes", name[:32]+"…")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("user name %q has a control character", name)
		}
	}
	return nil
}

// key encodes bytes for a cookie or a form field.
func encodeKey(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// Interface guards
var (
	_ caddy.Provisioner           = (*TwoFactor)(nil)
	_ caddy.Validator             = (*TwoFactor)(nil)
	_ caddy.CleanerUpper          = (*TwoFactor)(nil)
	_ caddyhttp.MiddlewareHandler = (*TwoFactor)(nil)
)
