package twofactor

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// Branding: a site name, a logo and a style sheet added to the embedded
// design, or the page templates replaced from a directory. Files are read
// once, at provisioning; a config reload picks up their changes.

// maxBrandFile bounds a logo or style sheet read from disk.
const maxBrandFile = 1 << 20

// brand is what the page templates know of the site's branding.
type brand struct {
	// Title is the site's name, shown above the card and in the tab title.
	Title string
	// Logo is the URL of the logo image; empty for none.
	Logo template.URL
	// CustomCSS tells whether a custom style sheet follows the module's own.
	CustomCSS bool
	// Version changes whenever a served asset does, so links to the
	// assets are never answered from a stale cache.
	Version string
}

// asset is a file the module serves under {path_prefix}/static/.
type asset struct {
	body        []byte
	contentType string
}

// logoTypes are the image types logo_file may have, by file extension.
var logoTypes = map[string]string{
	".png":  "image/png",
	".jpg":  "image/jpeg",
	".jpeg": "image/jpeg",
	".gif":  "image/gif",
	".webp": "image/webp",
	".svg":  "image/svg+xml",
	".ico":  "image/x-icon",
}

// provisionBranding applies the branding defaults, reads the logo and style
// sheet files and parses the templates of templates_dir.
func (h *TwoFactor) provisionBranding(repl *caddy.Replacer) error {
	h.Title = repl.ReplaceKnown(h.Title, "")
	h.LogoURL = repl.ReplaceKnown(h.LogoURL, "")
	if h.Title == "" {
		h.Title = h.Issuer
	}
	h.brand = brand{Title: h.Title}
	version := sha256.New()
	for _, name := range []string{"style.css", "app.js", "passkey.js"} {
		body, err := templatesFS.ReadFile("templates/" + name)
		if err != nil {
			return err
		}
		version.Write(body)
	}

	h.logo, h.customCSS = nil, nil
	if h.LogoFile != "" {
		path := repl.ReplaceKnown(h.LogoFile, "")
		contentType, ok := logoTypes[strings.ToLower(filepath.Ext(path))]
		if !ok {
			return fmt.Errorf("logo_file %s: the name must end in .png, .jpg, .gif, .webp, .svg or .ico", path)
		}
		body, err := readBrandFile(path)
		if err != nil {
			return fmt.Errorf("logo_file: %w", err)
		}
		h.logo = &asset{body: body, contentType: contentType}
		version.Write(body)
	}
	if h.CSSFile != "" {
		body, err := readBrandFile(repl.ReplaceKnown(h.CSSFile, ""))
		if err != nil {
			return fmt.Errorf("css_file: %w", err)
		}
		h.customCSS = &asset{body: body, contentType: "text/css; charset=utf-8"}
		h.brand.CustomCSS = true
		version.Write(body)
	}
	h.brand.Version = hex.EncodeToString(version.Sum(nil)[:6])
	switch {
	case h.logo != nil:
		h.brand.Logo = template.URL(h.PathPrefix + "/static/logo?v=" + h.brand.Version)
	case checkLogoURL(h.LogoURL) == nil:
		h.brand.Logo = template.URL(h.LogoURL)
	}

	h.templates = nil
	if h.TemplatesDir != "" {
		t, err := parseTemplates(repl.ReplaceKnown(h.TemplatesDir, ""), h.brand)
		if err != nil {
			return err
		}
		h.templates = t
	}
	return nil
}

// validateBranding checks the branding fields.
func (h *TwoFactor) validateBranding() error {
	if h.LogoURL != "" && h.LogoFile != "" {
		return errors.New("logo_url and logo_file are both set: give one")
	}
	return checkLogoURL(h.LogoURL)
}

// checkLogoURL accepts what the pages' Content-Security-Policy lets an
// image load from: a path on the site itself, or a data:image/ URL.
func checkLogoURL(u string) error {
	if u == "" || strings.HasPrefix(u, "data:image/") {
		return nil
	}
	if u[0] == '/' && !strings.HasPrefix(u, "//") && !strings.ContainsAny(u, "\\ \t\r\n\"'<>") {
		return nil
	}
	return fmt.Errorf("logo_url %q must be a path on this site (like /logo.svg) or a data:image/ URL: the sign-in pages load images only from their own site; use logo_file to have the module serve an image file", u)
}

// readBrandFile reads a logo or style sheet of at most maxBrandFile bytes.
func readBrandFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, maxBrandFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(body) > maxBrandFile {
		return nil, fmt.Errorf("%s is larger than %d KiB", path, maxBrandFile>>10)
	}
	return body, nil
}

// parseTemplates returns the embedded page templates with those of dir
// parsed over them: a file replaces the embedded file of the same name, and
// a {{define}} the template of the same name. Each page is then rendered
// once with sample data, so a template that names an unknown field or
// calls an unknown template fails here, at provisioning, not in front of
// a user.
func parseTemplates(dir string, b brand) (*template.Template, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.html"))
	if err != nil {
		return nil, fmt.Errorf("templates_dir %s: %w", dir, err)
	}
	if len(files) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("templates_dir: %w", err)
		}
		return nil, fmt.Errorf("templates_dir %s has no .html files; copy the ones to change from the module's templates/ folder", dir)
	}
	t, err := baseTemplates.Clone()
	if err != nil {
		return nil, err
	}
	if _, err := t.ParseFiles(files...); err != nil {
		return nil, fmt.Errorf("templates_dir %s: %w", dir, err)
	}
	// The check runs a copy: html/template clones (one per language)
	// only what has not run.
	check, err := t.Clone()
	if err != nil {
		return nil, err
	}
	check.Funcs(checkingFuncs(defaultPages().bundle))
	for _, sample := range samplePages(b) {
		for _, page := range check.Templates() {
			if !strings.HasSuffix(page.Name(), ".html") {
				continue
			}
			if err := page.Execute(io.Discard, sample); err != nil {
				return nil, fmt.Errorf("templates_dir %s: rendering %s: %w", dir, page.Name(), err)
			}
		}
	}
	return t, nil
}

// samplePages are page data with every field set, and with every switch
// of the pages turned the other way (and the optional parts left out), for
// checking templates: a template fails only in the branches it runs.
func samplePages(b brand) []pageData {
	full := samplePage(b)
	other := full
	other.Error, other.Notice, other.QR, other.Next = "", "", "", ""
	other.SignedIn, other.AccountLink, other.Reenroll = false, false, true
	other.Account = &accountView{}
	return []pageData{full, other}
}

// samplePage is page data with every field set.
func samplePage(b brand) pageData {
	return pageData{
		Lang:          "en",
		Title:         "Sign in",
		Prefix:        DefaultPathPrefix,
		CSRF:          "csrf",
		Next:          "/",
		Error:         msgBadLogin,
		Username:      "alice",
		Secret:        "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
		SecretGrouped: "JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP",
		QR:            "data:image/png;base64,",
		Issuer:        "example.com",
		RecoveryCodes: []string{"abcd-efgh-ijkl-mnop"},
		CodesFile:     "data:text/plain;charset=utf-8;base64,",
		RetryAfter:    "1 minute",
		SignedIn:      true,
		AccountLink:   true,
		Notice:        accountNotices["ended"],
		Account: &accountView{
			EnrolledAt: "1 Mar 2026 09:00 UTC",
			CodesLeft:  9,
			Sessions: []sessionView{
				{Ref: "ref", Current: true, Device: "Firefox on Linux", UserAgent: "Mozilla/5.0", ClientIP: "192.0.2.1", Created: "1 Mar 2026 09:00 UTC", LastSeen: "1 Mar 2026 09:05 UTC"},
				{Ref: "ref2", Pending: true, Device: "Safari on iPhone", UserAgent: "Mozilla/5.0", ClientIP: "2001:db8::1", Created: "1 Mar 2026 09:01 UTC", LastSeen: "1 Mar 2026 09:01 UTC"},
			},
			Others:      1,
			AppTokensOn: true,
			AppTokens: []appTokenView{
				{ID: "id1", Name: "DAV", Created: "1 Mar 2026 09:00 UTC", LastUsed: "1 Mar 2026 09:05 UTC", Expires: "30 May 2026 09:00 UTC"},
				{ID: "id2", Name: "script", Created: "1 Mar 2026 09:00 UTC"},
			},
			NewAppToken: "tfa_token",
			RememberOn:  true,
			Browsers: []browserView{
				{ID: "b1", Browser: "Firefox on Linux", Created: "1 Mar 2026 09:00 UTC", LastUsed: "2 Mar 2026 09:00 UTC", Expires: "31 Mar 2026 09:00 UTC"},
				{ID: "b2", Browser: "Safari on iPhone", Created: "1 Mar 2026 09:00 UTC", Expires: "31 Mar 2026 09:00 UTC"},
			},
		},
		Brand:        b,
		Nonce:        "nonce",
		RememberDays: 30,
	}
}

// serveBrandAsset serves the logo or the custom style sheet.
func (h *TwoFactor) serveBrandAsset(w http.ResponseWriter, r *http.Request) error {
	a := h.customCSS
	if strings.HasSuffix(r.URL.Path, "/logo") {
		a = h.logo
	}
	if a == nil {
		return h.render(w, http.StatusNotFound, "error", pageData{Title: "Page not found", Error: "There is no such page."})
	}
	return writeAsset(w, a.body, a.contentType)
}

// writeAsset writes a static file of the module. An SVG logo opened on its
// own is a document: the policy keeps any script in it from running.
func writeAsset(w http.ResponseWriter, body []byte, contentType string) error {
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
	hdr.Set("Cache-Control", "public, max-age=3600")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	_, err := w.Write(body)
	return err
}
