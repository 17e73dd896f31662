package twofactor

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/caddyfile")

const goldenSeparator = "----------\n"

// TestCaddyfileAdapt pins what Caddyfiles adapt to. Each file in
// testdata/caddyfile holds a Caddyfile, a separator line and the JSON it
// adapts to; go test -run TestCaddyfileAdapt -update rewrites the JSON.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, _ := strings.Cut(string(raw), goldenSeparator)
			got := adapt(t, input)
			if *update {
				if err := os.WriteFile(file, []byte(input+goldenSeparator+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("adapted JSON differs from %s (run with -update if the change is intended):\n%s", file, got)
			}
		})
	}
}

func adapt(t *testing.T, caddyfile string) string {
	t.Helper()
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("warning: %s", w.String())
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "\t"); err != nil {
		t.Fatal(err)
	}
	return buf.String() + "\n"
}

func TestCaddyfileErrorsNameFileAndLine(t *testing.T) {
	const hash = "$2a$04$7yZl6mGwH6Y5d1T8a4bKJeo2mD7m2YxXh0m8b0wE3oQm2m2bKk5bW"
	for _, tc := range []struct {
		name, block string
		line        int
		want        string
	}{
		{"unknown subdirective", "user alice " + hash + "\n\t\tcolour blue", 4, `unrecognized two_factor subdirective "colour"`},
		{"repeated subdirective", "issuer A\n\t\tissuer B", 4, "issuer is set twice"},
		{"user without hash", "user alice", 3, "user needs a name and a password hash"},
		{"plain password", "user alice hunter2", 3, "user alice: password must be a bcrypt or argon2id hash"},
		{"broken bcrypt hash", "user alice $2a$14$short", 3, "user alice: invalid bcrypt hash"},
		{"bad duration", "session_idle soon", 3, "session_idle:"},
		{"zero duration", "lockout 0s", 3, "lockout must be positive"},
		{"huge window", "attempt_window 48h", 3, "attempt_window must be at most 24h0m0s"},
		{"bad same_site", "same_site none", 3, `same_site must be lax or strict, not "none"`},
		{"bad count", "max_attempts many", 3, `max_attempts must be a whole number of at least 1, not "many"`},
		{"prefix not a path", "path_prefix auth", 3, "path_prefix must be a path below the root"},
		{"extra argument", "concurrent_sessions yes", 3, "wrong argument count or unexpected line ending after 'yes'"},
		{"store without backend", "store", 3, "store needs a backend"},
		{"unknown backend", "store etcd", 3, "store etcd: module not registered: two_factor.stores.etcd (backends: bolt, redis)"},
		{"bolt without path", "store bolt", 3, "store bolt needs the database file"},
		{"db and store", "db /a.db\n\t\tstore bolt /b.db", 4, "db and store are both set"},
		{"unknown redis option", "store redis {\n\t\t\tcluster yes\n\t\t}", 4, `unrecognized store redis option "cluster"`},
		{"repeated redis option", "store redis {\n\t\t\tdb 1\n\t\t\tdb 2\n\t\t}", 5, "db is set twice"},
		{"bad redis db", "store redis {\n\t\t\tdb two\n\t\t}", 4, `db must be a database number (0 or more), not "two"`},
		{"step_up without a path", "step_up 5m", 3, "step_up needs a max age and at least one path pattern"},
		{"step_up bad max age", "step_up soon /admin/*", 3, "step_up max age:"},
		{"step_up zero max age", "step_up 0s /admin/*", 3, "step_up max age 0s must be positive"},
		{"step_up not a pattern", "user alice " + hash + "\n\t\tstep_up 5m /admin/* admin/*", 4, `path pattern "admin/*" must start with / or *`},
		{"step_up query in pattern", "step_up 5m /admin?x=1", 3, "holds ? or #"},
		{"step_up broken glob", "step_up 5m /a/[b*/c", 3, "is not a valid glob"},
		{"recheck min above max", "recheck 6h 3h", 3, "the minimum is above the maximum"},
		{"recheck one value", "recheck 3h", 3, "recheck needs a minimum and a maximum"},
		{"recheck three values", "recheck 1h 2h 3h", 3, "recheck needs a minimum and a maximum"},
		{"recheck bad duration", "recheck 1h later", 3, "recheck maximum:"},
		{"user_from without a placeholder", "user_from alice", 3, `user_from needs one placeholder that names the user an earlier handler authenticated, like {http.auth.user.id}, not "alice"`},
		{"user_from two placeholders", "user_from {a}{b}", 3, "user_from needs one placeholder"},
		{"user_from without a value", "user_from", 3, "wrong argument count"},
		{"app_tokens without a path", "app_tokens", 3, "app_tokens needs at least one path pattern"},
		{"app_tokens not a pattern", "app_tokens /api/* api", 3, `app_tokens: path pattern "api" must start with / or *`},
		{"app_tokens twice", "app_tokens /a/*\n\t\tapp_tokens /b/*", 4, "app_tokens is set twice"},
		{"remember_device zero", "remember_device 0s", 3, "remember_device must be positive"},
		{"remember_device not a duration", "remember_device month", 3, "remember_device:"},
		{"recheck twice", "recheck 1h 2h\n\t\trecheck 1h 2h", 4, "recheck is set twice"},
		{"unknown factor", "factors totp sms", 3, `factors: unknown factor "sms"`},
		{"factors without any", "factors", 3, "wrong argument count"},
		{"passkey_login with argument", "passkey_login yes", 3, "wrong argument count"},
		{"unknown webauthn option", "webauthn {\n\t\t\tattestation direct\n\t\t}", 4, `unrecognized webauthn option "attestation"`},
		{"bad user_verification", "webauthn {\n\t\t\tuser_verification always\n\t\t}", 4, `user_verification must be required, preferred or discouraged, not "always"`},
		{"repeated webauthn option", "webauthn {\n\t\t\trp_id a.example\n\t\t\trp_id b.example\n\t\t}", 5, "rp_id is set twice"},
		{"webauthn twice", "webauthn\n\t\twebauthn", 4, "webauthn is set twice"},
		{"bad user address", "user alice " + hash + " alice@", 3, "user alice: invalid e-mail address"},
		{"address with a line break", "user alice " + hash + " \"a@b.c\nBcc: x@y.z\"", 3, "user alice: e-mail address contains a control character"},
		{"unknown notify option", "notify {\n\t\t\tsms +123\n\t\t}", 4, `unrecognized notify subdirective "sms"`},
		{"bad smtp security", "notify {\n\t\t\tsmtp localhost:25 plain\n\t\t}", 4, `smtp security must be starttls, tls or insecure, not "plain"`},
		{"smtp without from", "notify {\n\t\t\tsmtp localhost:25\n\t\t}", 5, "notify: smtp needs from"},
		{"empty notify", "notify {\n\t\t}", 4, "notify needs smtp or a webhook"},
		{"unknown event", "notify_events sign_in", 3, `notify_events: unknown notify event "sign_in"`},
		{"email_codes other argument", "email_codes always", 3, "wrong argument count"},
		{"email_codes step_up and more", "email_codes step_up now", 3, "wrong argument count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caddyfile := "example.com {\n\ttwo_factor {\n\t\t" + tc.block + "\n\t}\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
			at := fmt.Sprintf("at Caddyfile:%d", tc.line)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasSuffix(err.Error(), at) {
				t.Fatalf("got error %v\nwant one containing %q, %s", err, tc.want, at)
			}
		})
	}
}

// TestCaddyfileMatcherGoesToTheGate: the directive's matcher is the
// handler's own, which also sees the request as the client sent it, and
// the route is unmatched, so the pages under path_prefix are reachable.
func TestCaddyfileMatcherGoesToTheGate(t *testing.T) {
	out := adapt(t, "example.com {\n\ttry_files {path} /index.php\n\ttwo_factor /admin/* {\n\t\tpath_prefix /auth/\n\t}\n}\n")
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []struct {
							Routes []struct {
								Match  []map[string]any `json:"match"`
								Handle []map[string]any `json:"handle"`
							} `json:"routes"`
						} `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, route := range cfg.Apps.HTTP.Servers["srv0"].Routes[0].Handle[0].Routes {
		for _, handler := range route.Handle {
			if handler["handler"] != "two_factor" {
				continue
			}
			found = true
			if route.Match != nil {
				t.Errorf("the gate's route has matchers %v: the pages would need their own", route.Match)
			}
			if match, _ := json.Marshal(handler["match"]); string(match) != `{"path":["/admin/*"]}` {
				t.Errorf("the gate's own match is %s", match)
			}
		}
	}
	if !found {
		t.Fatalf("no two_factor handler in:\n%s", out)
	}
}

func TestPathPrefixWithTrailingSlashNamesThePages(t *testing.T) {
	h := &TwoFactor{PathPrefix: "/auth/"}
	h.applyDefaults()
	for path, want := range map[string]string{"/auth": "", "/auth/": "", "/auth/login": "login", "/AUTH/login": "login"} {
		if page, ok := h.pageName(path); !ok || page != want {
			t.Errorf("pageName(%s) = %q, %v; want %q", path, page, ok, want)
		}
	}
	if _, ok := h.pageName("/authx/login"); ok {
		t.Error("/authx/login is not below /auth")
	}
}

func TestJSONLimitsAreCheckedToo(t *testing.T) {
	h := &TwoFactor{AttemptWindow: caddy.Duration(48 * time.Hour)}
	h.applyDefaults()
	if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "at most 24h") {
		t.Fatalf("attempt_window 48h in JSON: %v", err)
	}
}
