package twofactor

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-two-factor/caddy-two-factor/policy"
)

// unmarshalPolicy reads one of the policy subdirectives, checking it as
// Validate would, so that a bad value names its file and line:
//
//	step_up <max age> <path pattern>...
//	recheck <min> <max>
func (h *TwoFactor) unmarshalPolicy(d *caddyfile.Dispenser) error {
	switch sub := d.Val(); sub {
	case "step_up":
		args := d.RemainingArgs()
		if len(args) < 2 {
			return d.Errf("step_up needs a max age and at least one path pattern: step_up <max age> <path pattern>...")
		}
		maxAge, err := caddy.ParseDuration(args[0])
		if err != nil {
			return d.Errf("step_up max age: %v", err)
		}
		rule := policy.StepUp{MaxAge: maxAge, Patterns: args[1:]}
		if err := rule.Validate(); err != nil {
			return d.Errf("%v", err)
		}
		h.StepUp = append(h.StepUp, StepUpRule{MaxAge: caddy.Duration(maxAge), Paths: rule.Patterns})
	case "recheck":
		var minRaw, maxRaw string
		if !d.Args(&minRaw, &maxRaw) || d.NextArg() {
			return d.Errf("recheck needs a minimum and a maximum: recheck <min> <max>")
		}
		lo, err := caddy.ParseDuration(minRaw)
		if err != nil {
			return d.Errf("recheck minimum: %v", err)
		}
		hi, err := caddy.ParseDuration(maxRaw)
		if err != nil {
			return d.Errf("recheck maximum: %v", err)
		}
		if err := (policy.Recheck{Min: lo, Max: hi}).Validate(); err != nil {
			return d.Errf("%v", err)
		}
		h.Recheck = &RecheckRule{Min: caddy.Duration(lo), Max: caddy.Duration(hi)}
	}
	return nil
}
