package twofactor

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"
)

// writeFiles writes name → content files into a new directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const testLogo = `<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><circle cx="20" cy="20" r="18" fill="#0a7c58"/></svg>`

func TestBrandingTitleLogoAndStyleSheet(t *testing.T) {
	dir := writeFiles(t, map[string]string{"logo.svg": testLogo, "brand.css": ":root { --accent: #0a7c58; }"})
	site := newClockSite(t, func(h *TwoFactor) {
		h.Title = "Example <Intranet>"
		h.LogoFile = filepath.Join(dir, "logo.svg")
		h.CSSFile = filepath.Join(dir, "brand.css")
	})
	b := site.browser(t)
	v := site.h.brand.Version

	page := b.get("/_2fa/login")
	for _, want := range []string{
		"<title>Sign in · Example &lt;Intranet&gt;</title>",
		`<p class="site-title">Example &lt;Intranet&gt;</p>`,
		`<img class="logo" src="/_2fa/static/logo?v=` + v + `" alt="">`,
		`<link rel="stylesheet" href="/_2fa/static/custom.css?v=` + v + `">`,
		`<link rel="stylesheet" href="/_2fa/static/style.css?v=` + v + `">`,
	} {
		if !strings.Contains(page.body, want) {
			t.Errorf("login page lacks %s:\n%s", want, page.body)
		}
	}
	for path, want := range map[string]string{
		"/_2fa/static/logo":       "image/svg+xml",
		"/_2fa/static/custom.css": "text/css; charset=utf-8",
	} {
		r := b.get(path)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != want || r.header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: %d %q, CSP %q", path, r.status, r.header.Get("Content-Type"), r.header.Get("Content-Security-Policy"))
		}
	}
	if r := b.get("/_2fa/static/logo"); r.body != testLogo {
		t.Errorf("logo is %q", r.body)
	}

	// Another style sheet is another version, so no cache serves the old one.
	other := writeFiles(t, map[string]string{"brand.css": ":root { --accent: #a00; }"})
	h := &TwoFactor{CSSFile: filepath.Join(other, "brand.css")}
	if err := h.provisionBranding(caddy.NewReplacer()); err != nil {
		t.Fatal(err)
	}
	if h.brand.Version == v {
		t.Error("a changed style sheet kept the assets' version")
	}
}

func TestBrandingDefaults(t *testing.T) {
	site := newClockSite(t, func(h *TwoFactor) { h.Issuer = "Example" })
	b := site.browser(t)
	page := b.get("/_2fa/login")
	if !strings.Contains(page.body, "<title>Sign in · Example</title>") || strings.Contains(page.body, "custom.css") || strings.Contains(page.body, `class="logo"`) {
		t.Errorf("login page with issuer only:\n%s", page.body)
	}
	for _, path := range []string{"/_2fa/static/logo", "/_2fa/static/custom.css"} {
		if r := b.get(path); r.status != http.StatusNotFound {
			t.Errorf("%s without branding: status %d, want 404", path, r.status)
		}
	}

	plain := newClockSite(t, nil).browser(t).get("/_2fa/login")
	if !strings.Contains(plain.body, "<title>Sign in</title>") || strings.Contains(plain.body, `class="brand"`) {
		t.Errorf("login page without title or issuer:\n%s", plain.body)
	}
}

func TestTemplatesDirReplacesPages(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"login.html": `{{template "head" .}}<p class="custom">Welcome to {{.Brand.Title}}</p>
<form method="post" action="{{.Prefix}}/login"><input type="hidden" name="csrf" value="{{.CSRF}}">
<input name="username"><input name="password" type="password"><button>Go</button></form>{{template "foot" .}}`,
	})
	site := newClockSite(t, func(h *TwoFactor) {
		h.Title = "Acme"
		h.TemplatesDir = dir
	})
	b := site.browser(t)
	if page := b.get("/_2fa/login"); !strings.Contains(page.body, `<p class="custom">Welcome to Acme</p>`) {
		t.Errorf("login page is not the directory's:\n%s", page.body)
	}
	// The pages the directory does not replace are the embedded ones, and
	// the replaced login page still signs in.
	secret, _ := b.enroll("alice")
	if len(secret) == 0 {
		t.Fatal("no secret")
	}
	if page := b.get("/_2fa/logout"); !strings.Contains(page.body, "You are signed in as <strong>alice</strong>") {
		t.Errorf("logout page is not the embedded one:\n%s", page.body)
	}
}

func TestBrandingConfigErrors(t *testing.T) {
	files := writeFiles(t, map[string]string{"logo.bmp": "BM", "logo.svg": testLogo})
	templates := func(content string) string {
		return writeFiles(t, map[string]string{"login.html": content})
	}
	for _, tc := range []struct {
		name      string
		configure func(*TwoFactor)
		want      string
	}{
		{"logo of another site", func(h *TwoFactor) { h.LogoURL = "https://cdn.example.com/logo.png" },
			`logo_url "https://cdn.example.com/logo.png" must be a path on this site`},
		{"protocol-relative logo", func(h *TwoFactor) { h.LogoURL = "//cdn.example.com/logo.png" }, "must be a path on this site"},
		{"two logos", func(h *TwoFactor) {
			h.LogoURL = "/logo.svg"
			h.LogoFile = filepath.Join(files, "logo.svg")
		}, "logo_url and logo_file are both set"},
		{"logo of no image type", func(h *TwoFactor) { h.LogoFile = filepath.Join(files, "logo.bmp") }, "the name must end in .png"},
		{"missing logo", func(h *TwoFactor) { h.LogoFile = filepath.Join(files, "none.png") }, "logo_file: open"},
		{"missing style sheet", func(h *TwoFactor) { h.CSSFile = filepath.Join(files, "none.css") }, "css_file: open"},
		{"missing templates_dir", func(h *TwoFactor) { h.TemplatesDir = filepath.Join(files, "none") }, "templates_dir: stat"},
		{"templates_dir without templates", func(h *TwoFactor) { h.TemplatesDir = files }, "has no .html files"},
		{"template syntax", func(h *TwoFactor) { h.TemplatesDir = templates(`{{template "head" .}}{{if .Error}}`) },
			"login.html:1: unexpected EOF"},
		{"unknown field", func(h *TwoFactor) { h.TemplatesDir = templates(`{{template "head" .}}{{.Nmae}}{{template "foot" .}}`) },
			"rendering login.html: template: login.html:1:23: executing \"login.html\" at <.Nmae>: can't evaluate field Nmae"},
		{"unknown template", func(h *TwoFactor) { h.TemplatesDir = templates(`{{template "header" .}}`) },
			`no such template "header"`},
		{"unknown field of the account page", func(h *TwoFactor) {
			h.TemplatesDir = writeFiles(t, map[string]string{"account.html": `{{template "head" .}}{{with .Account}}{{range .Sessions}}{{.Browser}}{{end}}{{end}}{{template "foot" .}}`})
		}, "can't evaluate field Browser"},
		{"unknown field in a branch the full sample skips", func(h *TwoFactor) {
			h.TemplatesDir = writeFiles(t, map[string]string{"setup.html": `{{template "head" .}}{{if not .QR}}{{.QRFallback}}{{end}}{{template "foot" .}}`})
		}, "can't evaluate field QRFallback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &TwoFactor{DB: filepath.Join(t.TempDir(), "two_factor.db")}
			tc.configure(h)
			err := h.provision(zap.NewNop())
			if err == nil {
				t.Cleanup(func() { _ = h.Cleanup() })
				err = h.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestEmbeddedTemplatesPassTheTemplateCheck(t *testing.T) {
	// templates_dir renders every page with sample data; the embedded
	// templates must pass, or no directory could.
	dir := writeFiles(t, map[string]string{"extra.html": `{{define "unused"}}{{end}}`})
	if _, err := parseTemplates(dir, brand{Title: "Acme", Logo: "/logo.svg", CustomCSS: true}); err != nil {
		t.Fatal(err)
	}
}

func TestBrandingCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, block string
		want        string
	}{
		{"logo of another site", "logo_url https://cdn.example.com/logo.png", `logo_url "https://cdn.example.com/logo.png" must be a path on this site`},
		{"two logos", "logo_url /logo.svg\nlogo_file logo.png", "logo_url and logo_file are both set: give one, at Testfile:3"},
		{"title twice", "title A\ntitle B", "title is set twice, at Testfile:3"},
		{"title without text", "title", "wrong argument count"},
		{"two template dirs", "templates_dir a b", "wrong argument count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h TwoFactor
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("two_factor {\n" + tc.block + "\n}"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
