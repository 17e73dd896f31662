package notify

import (
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/i18n"
)

// English is the message catalog: text/template sources by key. For each
// event there is "<event>.subject" and "<event>.body"; "details" and
// "not_you" follow every body. A translation is another catalog with the
// same keys (see NewMessages). Templates see a messageView.
var English = map[string]string{
	"details": `When: {{.When}}
{{- with .ClientIP}}
IP address: {{.}}{{end}}
{{- with .Browser}}
Browser: {{.}}{{end}}`,
	"not_you": `If this was not you, someone may know your password. {{with .AccountURL -}}
Review your account at {{.}} and remove what you do not recognise. {{end -}}
Then ask your administrator to run ` + "`caddy two-factor revoke {{.User}}`" + ` to sign out every session, and change your password.`,

	"sign_in_new_browser.subject": `New sign-in to your account {{.User}}`,
	"sign_in_new_browser.body":    `Your account {{.User}} was signed in to from a browser it has not used before.`,

	"recovery_code_used.subject": `A recovery code was used for {{.User}}`,
	"recovery_code_used.body": `A recovery code was used to sign in to your account {{.User}}.
{{- if .CountsRecoveryCodes}} You have {{.RecoveryCodesLeft}} recovery code{{if ne .RecoveryCodesLeft 1}}s{{end}} left.{{end}}`,

	"recovery_codes_low.subject": `Few recovery codes left for {{.User}}`,
	"recovery_codes_low.body": `Your account {{.User}} has {{if .CountsRecoveryCodes}}only {{.RecoveryCodesLeft}}{{else}}few{{end}} recovery code{{if ne .RecoveryCodesLeft 1}}s{{end}} left.
Make new ones on your account page before you run out.`,

	"authenticator_added.subject":   `An authenticator was added to {{.User}}`,
	"authenticator_added.body":      `An authenticator{{with .Item}} ("{{.}}"){{end}} was added to your account {{.User}}. It can now sign in with your password.`,
	"authenticator_removed.subject": `An authenticator was removed from {{.User}}`,
	"authenticator_removed.body":    `An authenticator{{with .Item}} ("{{.}}"){{end}} was removed from your account {{.User}}.`,

	"passkey_added.subject":   `A passkey was added to {{.User}}`,
	"passkey_added.body":      `A passkey{{with .Item}} ("{{.}}"){{end}} was added to your account {{.User}}.`,
	"passkey_removed.subject": `A passkey was removed from {{.User}}`,
	"passkey_removed.body":    `A passkey{{with .Item}} ("{{.}}"){{end}} was removed from your account {{.User}}.`,

	"app_token_added.subject":   `An app token was created for {{.User}}`,
	"app_token_added.body":      `An app token{{with .Item}} ("{{.}}"){{end}} was created for your account {{.User}}. Whoever holds it can use your account from an app.`,
	"app_token_removed.subject": `An app token was removed from {{.User}}`,
	"app_token_removed.body":    `An app token{{with .Item}} ("{{.}}"){{end}} was removed from your account {{.User}}.`,

	"remembered_browser_added.subject":   `A browser was remembered for {{.User}}`,
	"remembered_browser_added.body":      `A browser{{with .Item}} ("{{.}}"){{end}} will now skip the code step when signing in to your account {{.User}}.`,
	"remembered_browser_removed.subject": `A remembered browser was removed from {{.User}}`,
	"remembered_browser_removed.body":    `A browser{{with .Item}} ("{{.}}"){{end}} is no longer remembered for your account {{.User}}.`,

	"account_locked.subject": `Your account {{.User}} is locked for now`,
	"account_locked.body":    `Too many failed sign-in attempts locked your account {{.User}} for a while. Someone may be guessing your password or codes.`,

	"operator_reset.subject":           `Your two-factor sign-in for {{.User}} was reset`,
	"operator_reset.body":              `An administrator reset the two-factor sign-in of your account {{.User}}. You will set up an authenticator again at your next sign-in.`,
	"operator_revoke.subject":          `Your sessions for {{.User}} were signed out`,
	"operator_revoke.body":             `An administrator signed out every session of your account {{.User}}.`,
	"operator_password_change.subject": `The password of {{.User}} was changed`,
	"operator_password_change.body":    `An administrator changed the password of your account {{.User}}.`,

	"email_code.subject": `Your sign-in code for {{.User}}`,
	"email_code.body": `{{if .Code}}Your sign-in code is {{.Code}}
It works once and expires in {{.CodeLifetime}}. Nobody will ever ask you for it.
{{- else}}A sign-in code was e-mailed to {{.MaskedTo}} for the account {{.User}}.{{end}}`,
}

// messageView is what the templates see.
type messageView struct {
	Notice
	When                string // Notice.Time in UTC, RFC 1123
	MaskedTo            string // a***@example.com
	CountsRecoveryCodes bool   // RecoveryCodesLeft was given (0 included)
	RecoveryCodesLeft   int
	RecoveryCodesPlural string // RecoveryCodesLeft's CLDR plural category in the language: "one", "few", "many", "other"
	CodeLifetime        string // "10 minutes"
}

// Messages renders notices from a catalog.
type Messages struct {
	t *template.Template
	p *i18n.Printer // formats dates, durations and plurals; nil: English (RFC 1123, "10 minutes")
}

// NewMessages parses a catalog; it must have a subject and a body for
// every event, and "details" and "not_you".
func NewMessages(catalog map[string]string) (*Messages, error) {
	root := template.New("").Option("missingkey=error")
	keys := []string{"details", "not_you"}
	for _, e := range AllEvents {
		keys = append(keys, string(e)+".subject", string(e)+".body")
	}
	for _, k := range keys {
		src, ok := catalog[k]
		if !ok {
			return nil, fmt.Errorf("message catalog has no %q", k)
		}
		if _, err := root.New(k).Parse(src); err != nil {
			return nil, fmt.Errorf("parsing message %q: %w", k, err)
		}
	}
	return &Messages{t: root}, nil
}

var defaultMessages = must(NewMessages(English))

// DefaultMessages renders the English catalog.
func DefaultMessages() *Messages { return defaultMessages }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// CodeLifetime is how long an e-mailed code works, as the message says;
// the sign-in service enforces it through Notice.Expires and its store.
const CodeLifetime = 10 * time.Minute

// Render returns the subject and plain-text body of n. The body is the
// event's text, the details (time, IP, browser) and what to do if it was
// not the user. Only the code e-mail carries
// the code, and only when n.Code is set.
func (m *Messages) Render(n Notice) (subject, body string, err error) {
	// Free text from the client (a browser's description, a label) is one
	// line: a line break in it must not start a paragraph that looks like
	// ours.
	n.Browser, n.Item, n.ClientIP = oneLine(n.Browser), oneLine(n.Item), oneLine(n.ClientIP)
	v := messageView{
		Notice:       n,
		When:         n.Time.UTC().Format(time.RFC1123),
		MaskedTo:     MaskAddress(n.To),
		CodeLifetime: fmt.Sprintf("%d minutes", int(CodeLifetime/time.Minute)),
	}
	if n.RecoveryCodesLeft != nil {
		v.CountsRecoveryCodes, v.RecoveryCodesLeft = true, *n.RecoveryCodesLeft
	}
	m.localize(&v)
	exec := func(key string) (string, error) {
		var b strings.Builder
		if err := m.t.ExecuteTemplate(&b, key, v); err != nil {
			return "", fmt.Errorf("rendering message %q: %w", key, err)
		}
		return strings.TrimSpace(b.String()), nil
	}
	if subject, err = exec(string(n.Event) + ".subject"); err != nil {
		return "", "", err
	}
	var texts []string
	for _, k := range []string{string(n.Event) + ".body", "details", "not_you"} {
		t, err := exec(k)
		if err != nil {
			return "", "", err
		}
		texts = append(texts, t)
	}
	return subject, strings.Join(texts, "\n\n") + "\n", nil
}

// oneLine replaces control characters with spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s)
}
