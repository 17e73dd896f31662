package twofactor

import (
	"reflect"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/caddy-two-factor/caddy-two-factor/notify"
	"github.com/caddy-two-factor/caddy-two-factor/policy"
	"github.com/caddy-two-factor/caddy-two-factor/signin"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
)

func init() {
	httpcaddyfile.RegisterDirective("two_factor", parseCaddyfile)
	// After basic_auth, like any authentication, and before the handlers
	// that serve content, so no global order option is needed.
	httpcaddyfile.RegisterDirectiveOrder("two_factor", httpcaddyfile.After, "basic_auth")
}

// parseCaddyfile makes the route of a two_factor directive. The user's
// matcher goes into the handler's match field, not onto the route: the
// gate then also sees the request as the client sent it (a rewrite ordered
// before it cannot move a request out of its matcher), and the unmatched
// route reaches the sign-in pages under path_prefix whatever the matcher.
func parseCaddyfile(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	h.Next() // directive name
	matcherSet, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}
	tf := new(TwoFactor)
	if err := tf.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	// The site names the default database file, and the default WebAuthn
	// relying party.
	tf.Site = siteAddresses(h)
	tf.MatchersRaw = matcherSet
	return h.NewRoute(nil, tf), nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	two_factor [<matcher>] {
//	    user <name> <hash>          # repeatable; hash from `caddy hash-password`
//	    db <path>                   # the same as store bolt <path>
//	    store bolt <path>
//	    store redis [<address>] {   # see RedisStore.UnmarshalCaddyfile
//	        ...
//	    }
//	    issuer <name>
//	    encryption_key {env.NAME}|{file.path}  # base64 of 32 bytes; never the key itself
//	    previous_encryption_key {env.NAME}|{file.path}  # repeatable; during a rotation
//	    path_prefix <path>
//	    session_idle <duration>
//	    session_lifetime <duration>
//	    pending_lifetime <duration>
//	    concurrent_sessions
//	    same_site lax|strict
//	    recovery_codes <count>
//	    max_attempts <count>
//	    max_account_attempts <count>
//	    attempt_window <duration>
//	    lockout <duration>
//	    max_ip_attempts <count>
//	    title <site name>
//	    logo_url <path on this site or data:image/ URL>
//	    logo_file <image file>
//	    css_file <style sheet file>
//	    templates_dir <directory>
//	    webauthn {                  # passkeys; see docs/passkeys.md
//	        rp_id <domain>
//	        rp_name <name>
//	        origins <origin...>
//	        user_verification required|preferred|discouraged
//	        resident_key required|preferred|discouraged
//	    }
//	    factors totp|webauthn...    # which second factors users may enroll
//	    passkey_login               # a passkey alone may sign in
//	    language <tag>              # force one language, like de
//	    languages <tag>...          # offer only these; the first is the default
//	    messages_dir <directory>    # catalogs <tag>.json over the embedded ones
//	    step_up <max age> <path pattern>...  # repeatable; see docs/policies.md
//	    recheck <min> <max>
//	    user_from <placeholder>     # like {http.auth.user.id}: the second factor after another login
//	    app_tokens <path pattern>...  # where app tokens from the account page are accepted
//	    remember_device <duration>  # offer "don't ask for a code on this browser" for that long
//	    notify {                    # see unmarshalNotify
//	        ...
//	    }
//	    notify_events <event>...    # default: all
//	    email_codes [step_up]        # step_up: step-up and re-checks take them too
//	}
//
// The matcher says which requests the gate guards. It is matched against
// the request as the client sent it and as rewritten by rewrite, uri or
// try_files (which run before two_factor): a request is guarded if either
// matches. Without a matcher, every request that reaches it is guarded.
func (h *TwoFactor) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		sub := d.Val()
		if sub != "user" && sub != "previous_encryption_key" && sub != "step_up" {
			if seen[sub] {
				return d.Errf("%s is set twice", sub)
			}
			seen[sub] = true
		}
		switch sub {
		case "user":
			var name, hash, email string
			if !d.Args(&name, &hash) {
				return d.Errf("user needs a name and a password hash from `caddy hash-password`: user <name> <hash> [<email>]")
			}
			if d.NextArg() {
				email = d.Val()
				if _, err := notify.ParseAddress(email); err != nil && !isPlaceholder(email) {
					return d.Errf("user %s: %v", name, err)
				}
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			if _, err := signin.NewAccount(hash); err != nil && !isPlaceholder(hash) {
				return d.Errf("user %s: %v", name, err)
			}
			h.Users = append(h.Users, Account{Username: name, Password: hash, Email: email})
		case "db":
			if err := oneArg(d, &h.DB); err != nil {
				return err
			}
		case "store":
			if err := h.unmarshalStore(d); err != nil {
				return err
			}
		case "issuer":
			if err := oneArg(d, &h.Issuer); err != nil {
				return err
			}
		case "encryption_key":
			if err := oneArg(d, &h.EncryptionKey); err != nil {
				return err
			}
		case "previous_encryption_key":
			var key string
			if err := oneArg(d, &key); err != nil {
				return err
			}
			h.PreviousEncryptionKeys = append(h.PreviousEncryptionKeys, key)
		case "path_prefix":
			if err := oneArg(d, &h.PathPrefix); err != nil {
				return err
			}
			if h.PathPrefix == "" || h.PathPrefix[0] != '/' || h.PathPrefix == "/" {
				return d.Errf("path_prefix must be a path below the root, like /_2fa")
			}
		case "same_site":
			if err := oneArg(d, &h.SameSite); err != nil {
				return err
			}
			h.SameSite = strings.ToLower(h.SameSite)
			if h.SameSite != "lax" && h.SameSite != "strict" {
				return d.Errf("same_site must be lax or strict, not %q", h.SameSite)
			}
		case "concurrent_sessions":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.ConcurrentSessions = true
		case "session_idle":
			if err := durationArg(d, &h.SessionIdle); err != nil {
				return err
			}
		case "session_lifetime":
			if err := durationArg(d, &h.SessionLifetime); err != nil {
				return err
			}
		case "pending_lifetime":
			if err := durationArg(d, &h.PendingLifetime); err != nil {
				return err
			}
		case "attempt_window":
			if err := durationArg(d, &h.AttemptWindow); err != nil {
				return err
			}
		case "lockout":
			if err := durationArg(d, &h.Lockout); err != nil {
				return err
			}
		case "recovery_codes":
			if err := countArg(d, &h.RecoveryCodes); err != nil {
				return err
			}
		case "max_attempts":
			if err := countArg(d, &h.MaxAttempts); err != nil {
				return err
			}
		case "max_account_attempts":
			if err := countArg(d, &h.MaxAccountAttempts); err != nil {
				return err
			}
		case "max_ip_attempts":
			if err := countArg(d, &h.MaxIPAttempts); err != nil {
				return err
			}
		case "title":
			if err := oneArg(d, &h.Title); err != nil {
				return err
			}
		case "logo_url":
			if err := oneArg(d, &h.LogoURL); err != nil {
				return err
			}
			if err := checkLogoURL(h.LogoURL); err != nil && !isPlaceholder(h.LogoURL) {
				return d.Errf("%v", err)
			}
		case "logo_file":
			if err := oneArg(d, &h.LogoFile); err != nil {
				return err
			}
		case "css_file":
			if err := oneArg(d, &h.CSSFile); err != nil {
				return err
			}
		case "templates_dir":
			if err := oneArg(d, &h.TemplatesDir); err != nil {
				return err
			}
		case "language":
			if err := oneArg(d, &h.Language); err != nil {
				return err
			}
			if err := checkLanguageTag(h.Language); err != nil {
				return d.Errf("language: %v", err)
			}
		case "languages":
			h.Languages = d.RemainingArgs()
			if len(h.Languages) == 0 {
				return d.ArgErr()
			}
			for _, l := range h.Languages {
				if err := checkLanguageTag(l); err != nil {
					return d.Errf("languages: %v", err)
				}
			}
		case "messages_dir":
			if err := oneArg(d, &h.MessagesDir); err != nil {
				return err
			}
		case "user_from":
			if err := oneArg(d, &h.UserFrom); err != nil {
				return err
			}
			if err := checkUserFrom(h.UserFrom); err != nil {
				return d.Errf("%v", err)
			}
		case "remember_device":
			if err := durationArg(d, &h.RememberDevice); err != nil {
				return err
			}
		case "app_tokens":
			h.AppTokens = d.RemainingArgs()
			if len(h.AppTokens) == 0 {
				return d.Errf("app_tokens needs at least one path pattern: app_tokens <path pattern>...")
			}
			for _, p := range h.AppTokens {
				if err := policy.ValidatePattern(p); err != nil {
					return d.Errf("app_tokens: %v", err)
				}
			}
		case "step_up", "recheck":
			if err := h.unmarshalPolicy(d); err != nil {
				return err
			}
		case "notify":
			if err := h.unmarshalNotify(d); err != nil {
				return err
			}
		case "notify_events":
			names := d.RemainingArgs()
			if len(names) == 0 {
				return d.ArgErr()
			}
			if _, err := notify.ParseEvents(names); err != nil {
				return d.Errf("notify_events: %v", err)
			}
			h.notifyConfig().Events = names
		case "email_codes":
			if d.NextArg() {
				if d.Val() != "step_up" || d.NextArg() {
					return d.ArgErr()
				}
				h.EmailCodesStepUp = true
			}
			h.EmailCodes = true
		default:
			ok, err := h.unmarshalPasskeyOption(d)
			if err != nil {
				return err
			}
			if !ok {
				return d.Errf("unrecognized two_factor subdirective %q", sub)
			}
		}
		if seen["logo_url"] && seen["logo_file"] {
			return d.Errf("logo_url and logo_file are both set: give one")
		}
		if seen["db"] && seen["store"] {
			return d.Errf("db and store are both set: give one (db <path> is store bolt <path>)")
		}
	}
	return nil
}

// unmarshalNotify reads the notify block:
//
//	notify {
//	    smtp <host:port> [starttls|tls|insecure]
//	    smtp_username <name>
//	    smtp_password <password>   # a placeholder: {env.SMTP_PASSWORD}
//	    from <address>             # "Example Admin <admin@example.com>"
//	    webhook <url>              # repeatable
//	    account_url <url>          # linked from every notice
//	}
//
// Addresses and URLs are checked when the config loads (at provisioning,
// once placeholders are resolved).
func (h *TwoFactor) unmarshalNotify(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	n := h.notifyConfig()
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if sub != "webhook" {
			if seen[sub] {
				return d.Errf("notify: %s is set twice", sub)
			}
			seen[sub] = true
		}
		switch sub {
		case "smtp":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n.SMTP = d.Val()
			if d.NextArg() {
				n.SMTPSecurity = d.Val()
				switch notify.Security(n.SMTPSecurity) {
				case notify.StartTLS, notify.ImplicitTLS, notify.Insecure:
				default:
					return d.Errf("notify: smtp security must be starttls, tls or insecure, not %q", n.SMTPSecurity)
				}
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		case "smtp_username":
			if err := oneArg(d, &n.SMTPUsername); err != nil {
				return err
			}
		case "smtp_password":
			if err := oneArg(d, &n.SMTPPassword); err != nil {
				return err
			}
		case "from":
			if err := oneArg(d, &n.From); err != nil {
				return err
			}
		case "webhook":
			var u string
			if err := oneArg(d, &u); err != nil {
				return err
			}
			n.Webhooks = append(n.Webhooks, u)
		case "account_url":
			if err := oneArg(d, &n.AccountURL); err != nil {
				return err
			}
		default:
			return d.Errf("unrecognized notify subdirective %q", sub)
		}
	}
	if n.SMTP == "" && len(n.Webhooks) == 0 {
		return d.Errf("notify needs smtp or a webhook")
	}
	if n.SMTP != "" && n.From == "" {
		return d.Errf("notify: smtp needs from")
	}
	return nil
}

// notifyConfig returns h.Notify, made if needed: notify_events may come
// before or after the notify block.
func (h *TwoFactor) notifyConfig() *Notify {
	if h.Notify == nil {
		h.Notify = new(Notify)
	}
	return h.Notify
}

// unmarshalStore reads `store <backend> ...` into the store module of
// that backend (two_factor.stores.<backend>).
func (h *TwoFactor) unmarshalStore(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.Errf("store needs a backend: store bolt <path>, or store redis { ... }")
	}
	backend := d.Val()
	if _, err := caddy.GetModule("two_factor.stores." + backend); err != nil {
		return d.Errf("store %s: %v (backends: bolt, redis)", backend, err)
	}
	mod, err := caddyfile.UnmarshalModule(d, "two_factor.stores."+backend)
	if err != nil {
		return err // the guest's error names file and line
	}
	h.StoreRaw = caddyconfig.JSONModuleObject(mod, "backend", backend, nil)
	return nil
}

// siteAddresses returns the addresses of the site block the directive is
// in, which name the site's own database file. httpcaddyfile keeps the
// block in an unexported field of Helper and offers no accessor, so it is
// read with reflect; should a Caddy release move it, this returns "" and
// Provision asks for db or site rather than letting sites share a file.
func siteAddresses(h httpcaddyfile.Helper) string {
	block := reflect.ValueOf(h).FieldByName("parentBlock")
	if block.Kind() != reflect.Struct {
		return ""
	}
	keys := block.FieldByName("Keys")
	if keys.Kind() != reflect.Slice || keys.Type().Elem().Kind() != reflect.Struct {
		return ""
	}
	addrs := make([]string, 0, keys.Len())
	for i := range keys.Len() {
		if text := keys.Index(i).FieldByName("Text"); text.Kind() == reflect.String {
			addrs = append(addrs, text.String())
		}
	}
	return strings.Join(addrs, " ")
}

func isPlaceholder(s string) bool {
	return len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}'
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	var raw string
	if err := oneArg(d, &raw); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(raw)
	if err != nil {
		return d.Errf("%s: %v", name, err)
	}
	if dur <= 0 {
		return d.Errf("%s must be positive, not %s", name, raw)
	}
	if (name == "attempt_window" || name == "lockout") && dur > throttle.MaxWindow {
		return d.Errf("%s must be at most %s", name, throttle.MaxWindow)
	}
	*dst = caddy.Duration(dur)
	return nil
}

func countArg(d *caddyfile.Dispenser, dst *int) error {
	name := d.Val()
	var raw string
	if err := oneArg(d, &raw); err != nil {
		return err
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 {
		return d.Errf("%s must be a whole number of at least 1, not %q", name, raw)
	}
	*dst = n
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*TwoFactor)(nil)
