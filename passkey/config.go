package passkey

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"golang.org/x/net/publicsuffix"
)

// Requirement values of Config.UserVerification and Config.ResidentKey, as
// WebAuthn spells them.
const (
	Required    = "required"
	Preferred   = "preferred"
	Discouraged = "discouraged"
)

// DefaultTimeout is how long a ceremony stays open when Config.Timeout is
// zero.
const DefaultTimeout = 5 * time.Minute

// Config is the relying party: who asks for passkeys, from which origins,
// and how much it asks of the authenticator.
type Config struct {
	// The relying party ID: the domain passkeys are bound to. A passkey
	// registered under one RP ID works on that domain and its subdomains
	// only, and never under another ID, so changing it strands every
	// passkey. A domain name, never an IP address, and not a public
	// suffix ("com", "github.io"). Required.
	RPID string `json:"rp_id,omitempty"`

	// The name browsers show while asking for a passkey. Required.
	RPName string `json:"rp_name,omitempty"`

	// The origins pages may run a ceremony from: "https://host[:port]",
	// or "http://localhost[:port]" for local tests. The host of each must
	// be the RP ID or one of its subdomains. At least one is required.
	Origins []string `json:"origins,omitempty"`

	// Whether the authenticator must verify the user (PIN or biometric):
	// "required", "preferred" or "discouraged". Default: "preferred".
	UserVerification string `json:"user_verification,omitempty"`

	// Whether registration asks for a discoverable credential (one the
	// authenticator can offer without being told its ID, which passkey
	// login needs): "required", "preferred" or "discouraged". Default:
	// "preferred"; "required" when PasskeyLogin is set.
	ResidentKey string `json:"resident_key,omitempty"`

	// PasskeyLogin allows a discoverable login that signs a user in with
	// a passkey alone. That ceremony always requires user verification,
	// and PasskeyLogin needs UserVerification "required" as well, so no
	// passkey that was registered without verifying the user is later
	// taken as two factors. Set by the module from its own option.
	PasskeyLogin bool `json:"-"`

	// How long a ceremony stays open, on the server and as the browser's
	// timeout. Default: DefaultTimeout. Set by the module from
	// pending_lifetime.
	Timeout time.Duration `json:"-"`
}

// SetDefaults fills in the fields left empty.
func (c *Config) SetDefaults() {
	if c.UserVerification == "" {
		c.UserVerification = Preferred
	}
	if c.ResidentKey == "" {
		c.ResidentKey = Preferred
		if c.PasskeyLogin {
			c.ResidentKey = Required
		}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
}

// Validate checks a configuration whose defaults are set.
func (c *Config) Validate() error {
	if err := checkRPID(c.RPID); err != nil {
		return err
	}
	if c.RPName == "" {
		return errors.New("webauthn: rp_name is required")
	}
	if len(c.Origins) == 0 {
		return errors.New("webauthn: at least one origin is required")
	}
	for _, o := range c.Origins {
		if _, err := checkOrigin(o, c.RPID); err != nil {
			return err
		}
	}
	if !validRequirement(c.UserVerification) {
		return fmt.Errorf("webauthn: user_verification %q: want required, preferred or discouraged", c.UserVerification)
	}
	if !validRequirement(c.ResidentKey) {
		return fmt.Errorf("webauthn: resident_key %q: want required, preferred or discouraged", c.ResidentKey)
	}
	if c.PasskeyLogin && c.UserVerification != Required {
		return fmt.Errorf("webauthn: passkey_login needs user_verification required (it is %s): a passkey alone signs in only when it verified the user", c.UserVerification)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("webauthn: negative ceremony timeout %v", c.Timeout)
	}
	return nil
}

func validRequirement(v string) bool {
	return v == Required || v == Preferred || v == Discouraged
}

// checkRPID refuses what browsers refuse as an RP ID, with a message that
// says why: an IP address, something that is not a lowercase host name,
// a public suffix.
func checkRPID(id string) error {
	switch {
	case id == "":
		return errors.New("webauthn: rp_id is required")
	case net.ParseIP(strings.Trim(id, "[]")) != nil:
		return fmt.Errorf("webauthn: rp_id %q is an IP address; WebAuthn needs a domain name (use localhost for local tests)", id)
	case id != strings.ToLower(id) || strings.HasPrefix(id, ".") || strings.HasSuffix(id, ".") || strings.ContainsAny(id, ":/?#@[] \t"):
		return fmt.Errorf("webauthn: rp_id %q is not a lowercase domain name (no scheme, port or path)", id)
	}
	if err := protocol.ValidateRPID(id); err != nil {
		return fmt.Errorf("webauthn: rp_id %q: %w (a name of one label must be localhost)", id, err)
	}
	// A listed suffix ("com", "co.uk", "github.io") is shared by unrelated
	// sites.
	if ps, _ := publicsuffix.PublicSuffix(id); ps == id && id != "localhost" {
		return fmt.Errorf("webauthn: rp_id %q is a public suffix; use the site's own domain", id)
	}
	return nil
}

// checkOrigin parses an origin and returns it as scheme://host[:port].
func checkOrigin(origin, rpID string) (string, error) {
	u, err := url.Parse(origin)
	if err != nil {
		return "", fmt.Errorf("webauthn: origin %q: %w", origin, err)
	}
	host := u.Hostname()
	switch {
	case u.Scheme == "https" && host != "":
	case u.Scheme == "http" && host == "localhost":
	default:
		return "", fmt.Errorf("webauthn: origin %q: must be https (or http://localhost)", origin)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", fmt.Errorf("webauthn: origin %q: want scheme://host[:port] and nothing more", origin)
	}
	if host != strings.ToLower(host) {
		return "", fmt.Errorf("webauthn: origin %q: write the host in lowercase", origin)
	}
	if host != rpID && !strings.HasSuffix(host, "."+rpID) {
		return "", fmt.Errorf("webauthn: origin %q: its host is not rp_id %s nor a subdomain of it", origin, rpID)
	}
	return u.Scheme + "://" + u.Host, nil
}
