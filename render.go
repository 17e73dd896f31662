package twofactor

import (
	"bytes"
	"crypto/rand"
	"embed"
	"html/template"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/caddy-two-factor/caddy-two-factor/signin"
)

//go:embed templates
var templatesFS embed.FS

// pageData is what every page template gets.
type pageData struct {
	// Lang is the page's language, a BCP 47 tag for <html lang>, set by
	// render.
	Lang string
	// Title is the page's heading.
	Title  string
	Prefix string
	CSRF   string
	Next   string
	// Error is a message for the user, shown as an alert.
	Error    string
	Username string

	// Setup page.
	Secret        string
	SecretGrouped string
	QR            template.URL
	Issuer        string

	// Recovery codes page.
	RecoveryCodes []string
	CodesFile     template.URL

	// Locked page.
	RetryAfter string

	// SignedIn tells the logout page whether there is a session to end.
	SignedIn bool

	// AccountLink offers a signed-in user the account page.
	AccountLink bool
	// Reenroll makes the setup page replace a signed-in user's
	// authenticator, from the account page.
	Reenroll bool
	// Notice is a message for the user, shown as a status line.
	Notice string
	// Account is the account page's content.
	Account *accountView

	// PasskeyScript loads templates/passkey.js, for pages with a passkey
	// button.
	PasskeyScript bool
	// Factors are the second factors the user has (confirm page).
	Factors factorsView
	// Offers are what the config offers, set by render.
	Offers signin.Offers
	// EmailCodeTo offers an e-mailed code on the confirm page, to this
	// masked address (email_codes); "" offers none.
	EmailCodeTo string

	// Brand is the site's branding, set by render.
	Brand brand
	// Nonce is the page's script nonce, set by render: the pages'
	// Content-Security-Policy runs only scripts that carry it, so no other
	// script of the same site (the application's own) runs on them.
	Nonce string

	// StepUp makes the confirm page ask a signed-in session for a fresh
	// second factor (a step-up rule or a re-check), to return to Next.
	StepUp bool
	// RememberDays offers, on the confirm page, not to ask this browser
	// for a code for that many days (remember_device); 0: not offered.
	RememberDays int
}

// factorsView says which second factors a user has.
type factorsView struct {
	TOTP, Passkeys bool
}

// render writes a page with the module's security headers. Templates run
// into a buffer first, so a template error never leaves half a page.
func (h *TwoFactor) render(w http.ResponseWriter, status int, name string, data pageData) error {
	data.Prefix = h.PathPrefix
	data.Brand = h.brand
	if h.signin != nil {
		data.Offers = h.signin.Offers()
	}
	data.Nonce = rand.Text()
	templates, printer := h.pageTemplates(w) // of templates_dir, if set
	translateData(printer, &data)
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name+".html", data); err != nil {
		h.logger.Error("rendering 2FA page", eventField(eventPageRenderFailed), zap.String("page", name), zap.Error(err))
		return caddyhttpError(err)
	}
	hdr := w.Header()
	setPageHeaders(hdr, data.Nonce)
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Language", data.Lang)
	if h.languagePages().bundle.Negotiates() {
		hdr.Add("Vary", "Accept-Language")
	}
	hdr.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}
