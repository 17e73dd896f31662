package twofactor

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/caddy-two-factor/caddy-two-factor/passkey"
)

// The second factors users may enroll (the factors option).
const (
	factorTOTP     = "totp"
	factorWebAuthn = "webauthn"
)

// provisionPasskeys builds the WebAuthn relying party of the config, or
// none. Unset, rp_id is the host of the site's first address that can
// have passkeys (a domain name, served over HTTPS or on localhost), and
// origins are the site's addresses on that domain: never the request's
// Host or X-Forwarded-Host. A site whose addresses name no such host has
// no passkeys unless the config asks for them, which is then an error.
// With factors totp, users enroll no passkeys (see policy), but those
// they have keep working.
func (h *TwoFactor) provisionPasskeys(repl *caddy.Replacer) (*passkey.Service, error) {
	wanted := h.WebAuthn != nil || h.PasskeyLogin || slices.Contains(h.Factors, factorWebAuthn)
	var cfg passkey.Config
	if h.WebAuthn != nil {
		cfg = *h.WebAuthn
		cfg.Origins = slices.Clone(cfg.Origins)
	}
	cfg.RPID = repl.ReplaceKnown(cfg.RPID, "")
	for i, o := range cfg.Origins {
		cfg.Origins[i] = repl.ReplaceKnown(o, "")
	}
	configured := cfg.RPID != "" // passkey.New says what is wrong with it
	rpID, origins := siteRelyingParty(h.Site, cfg.RPID)
	if cfg.RPID == "" {
		cfg.RPID = rpID
	}
	if len(cfg.Origins) == 0 {
		cfg.Origins = origins
	}
	if !configured && (cfg.RPID == "" || len(cfg.Origins) == 0) {
		if wanted {
			return nil, fmt.Errorf("webauthn: set rp_id and origins: the site's addresses (%q) name no domain that can have passkeys", h.Site)
		}
		h.logger.Info("passkeys are off: the site's addresses name no domain that can have them; set webauthn { rp_id ... origins ... } to offer them", zap.String("site", h.Site))
		return nil, nil
	}
	if cfg.RPName == "" {
		cfg.RPName = cmp.Or(h.Issuer, h.Title, cfg.RPID)
	}
	cfg.PasskeyLogin = h.PasskeyLogin
	cfg.Timeout = time.Duration(h.PendingLifetime)
	svc, err := passkey.New(cfg)
	if err != nil {
		return nil, err
	}
	svc.Now = func() time.Time { return h.now() }
	return svc, nil
}

// siteRelyingParty returns the RP ID (rpID, or the first host that can
// be one) and the origins on it of a site's addresses.
func siteRelyingParty(site, rpID string) (string, []string) {
	var origins []string
	for _, field := range strings.FieldsFunc(site, func(r rune) bool { return r == ' ' || r == ',' }) {
		addr, err := httpcaddyfile.ParseAddress(field)
		host := strings.ToLower(addr.Host)
		if err != nil || host == "" || strings.ContainsAny(host, "*{}") || net.ParseIP(host) != nil || (!strings.Contains(host, ".") && host != "localhost") {
			continue
		}
		scheme := addr.Scheme
		if scheme == "" {
			scheme = "https"
			if addr.Port == "80" || (host == "localhost" && addr.Port != "" && addr.Port != "443") {
				scheme = "http"
			}
		}
		if scheme != "https" && host != "localhost" {
			continue // WebAuthn needs a secure context
		}
		if rpID == "" {
			rpID = host
		}
		if host != rpID && !strings.HasSuffix(host, "."+rpID) {
			continue
		}
		origin := scheme + "://" + host
		if addr.Port != "" && !(scheme == "https" && addr.Port == "443") && !(scheme == "http" && addr.Port == "80") {
			origin += ":" + addr.Port
		}
		if !slices.Contains(origins, origin) {
			origins = append(origins, origin)
		}
	}
	return rpID, origins
}

// validateFactors checks the factors option.
func (h *TwoFactor) validateFactors() error {
	for _, f := range h.Factors {
		if f != factorTOTP && f != factorWebAuthn {
			return fmt.Errorf("factors: unknown factor %q: want totp or webauthn", f)
		}
	}
	if h.PasskeyLogin && len(h.Factors) > 0 && !slices.Contains(h.Factors, factorWebAuthn) {
		return fmt.Errorf("passkey_login needs webauthn among the factors")
	}
	return nil
}

// unmarshalPasskeyOption reads the passkey options of the two_factor
// block (webauthn, factors, passkey_login); it reports false for any other.
func (h *TwoFactor) unmarshalPasskeyOption(d *caddyfile.Dispenser) (bool, error) {
	switch d.Val() {
	case "webauthn":
		return true, h.unmarshalWebAuthn(d)
	case "factors":
		h.Factors = d.RemainingArgs()
		if len(h.Factors) == 0 {
			return true, d.ArgErr()
		}
		for _, f := range h.Factors {
			if f != factorTOTP && f != factorWebAuthn {
				return true, d.Errf("factors: unknown factor %q: want totp or webauthn", f)
			}
		}
	case "passkey_login":
		if d.NextArg() {
			return true, d.ArgErr()
		}
		h.PasskeyLogin = true
	default:
		return false, nil
	}
	return true, nil
}

// unmarshalWebAuthn reads
//
//	webauthn {
//	    rp_id <domain>
//	    rp_name <name>
//	    origins <origin...>
//	    user_verification required|preferred|discouraged
//	    resident_key required|preferred|discouraged
//	}
func (h *TwoFactor) unmarshalWebAuthn(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	cfg := &passkey.Config{}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return d.Errf("webauthn: %s is set twice", sub)
		}
		seen[sub] = true
		switch sub {
		case "rp_id":
			if err := oneArg(d, &cfg.RPID); err != nil {
				return err
			}
		case "rp_name":
			if err := oneArg(d, &cfg.RPName); err != nil {
				return err
			}
		case "origins":
			cfg.Origins = d.RemainingArgs()
			if len(cfg.Origins) == 0 {
				return d.ArgErr()
			}
		case "user_verification", "resident_key":
			var v string
			if err := oneArg(d, &v); err != nil {
				return err
			}
			if v != passkey.Required && v != passkey.Preferred && v != passkey.Discouraged {
				return d.Errf("webauthn: %s must be required, preferred or discouraged, not %q", sub, v)
			}
			if sub == "user_verification" {
				cfg.UserVerification = v
			} else {
				cfg.ResidentKey = v
			}
		default:
			return d.Errf("unrecognized webauthn option %q", sub)
		}
	}
	h.WebAuthn = cfg
	return nil
}
