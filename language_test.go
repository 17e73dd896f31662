package twofactor

import (
	"encoding/base64"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"html/template"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddy-two-factor/caddy-two-factor/i18n"
)

// TestPagesInTheBrowsersLanguage runs a real Caddy and asks for the login
// page as German, Japanese and other browsers do.
func TestPagesInTheBrowsersLanguage(t *testing.T) {
	startSite(t, siteConfig{})
	b := newBrowser(t)
	tests := []struct {
		acceptLanguage string
		lang           string
		want           []string
	}{
		{"de-DE,de;q=0.9,en;q=0.8", "de", []string{"<title>Anmelden</title>", `>Benutzername</label>`, `>Passwort</label>`, `<button type="submit">Anmelden</button>`}},
		{"ja,en-US;q=0.7", "ja", []string{"<title>サインイン</title>", `>ユーザー名</label>`, `>パスワード</label>`}},
		{"pt", "pt-BR", []string{`>Senha</label>`}},
		{"zh-CN", "zh-Hans", []string{`>密码</label>`}},
		{"sw", "en", []string{"<title>Sign in</title>", `>User name</label>`}},
		{"", "en", []string{"<title>Sign in</title>", `>Password</label>`}},
	}
	for _, tt := range tests {
		t.Run(tt.lang+"/"+tt.acceptLanguage, func(t *testing.T) {
			page := b.get("/_2fa/login", "Accept-Language: "+tt.acceptLanguage)
			if page.status != http.StatusOK {
				t.Fatalf("status %d", page.status)
			}
			if want := fmt.Sprintf(`<html lang="%s">`, tt.lang); !strings.Contains(page.body, want) {
				t.Errorf("page lacks %s", want)
			}
			if got := page.header.Get("Content-Language"); got != tt.lang {
				t.Errorf("Content-Language %q, want %q", got, tt.lang)
			}
			if !strings.Contains(page.header.Get("Vary"), "Accept-Language") {
				t.Errorf("Vary %q lacks Accept-Language", page.header.Get("Vary"))
			}
			for _, want := range tt.want {
				if !strings.Contains(page.body, want) {
					t.Errorf("page lacks %q:\n%s", want, page.body)
				}
			}
		})
	}

	// An error the code writes in English reaches the user in German.
	login := b.get("/_2fa/login", "Accept-Language: de")
	bad := b.post("/_2fa/login", formWith(b, login, "alice", "wrong"), "Accept-Language: de")
	if !strings.Contains(bad.body, "Benutzername oder Passwort ist falsch.") {
		t.Errorf("wrong password in German:\n%s", bad.body)
	}
}

// formWith is the login form of page filled in.
func formWith(b *browser, page response, user, password string) map[string][]string {
	return map[string][]string{"csrf": {b.csrfFrom(page)}, "username": {user}, "password": {password}}
}

// TestLanguageOptions: language forces one language, languages limits
// the choice, and messages_dir overrides and adds catalogs.
// The recovery codes' download file speaks the page's language too.
func TestRecoveryCodesFileInTheBrowsersLanguage(t *testing.T) {
	startSite(t, siteConfig{})
	b := newBrowser(t)
	b.client.Transport = withHeader{http.DefaultTransport, "Accept-Language", "de"}
	resp := b.login("alice", testPassword, "/admin/")
	page := b.get("/_2fa/setup")
	m := secretPattern.FindStringSubmatch(page.body)
	if resp.status != http.StatusSeeOther || m == nil {
		t.Fatalf("login: %d; setup page:\n%s", resp.status, page.body)
	}
	secret, err := totpDecode(m[1])
	if err != nil {
		t.Fatal(err)
	}
	done := b.post("/_2fa/setup", url.Values{"csrf": {b.csrfFrom(page)}, "code": {b.code("alice", secret)}})
	file := regexp.MustCompile(`href="data:text/plain;charset=utf-8;base64,([^"]+)"`).FindStringSubmatch(done.body)
	if file == nil {
		t.Fatalf("no codes file on the recovery page:\n%s", done.body)
	}
	text, err := base64.StdEncoding.DecodeString(file[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Wiederherstellungscodes für alice bei ", "Jeder Code gilt einmal"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("codes file lacks %q:\n%s", want, text)
		}
	}
}

func TestLanguageOptions(t *testing.T) {
	messages := writeFiles(t, map[string]string{
		"de.json": `{"login.submit": "Einloggen"}`,
		"sv.json": `{"login.username": "Användarnamn", "login.password": "Lösenord", "login.submit": "Logga in"}`,
	})
	tests := []struct {
		name, extra, acceptLanguage, lang string
		want                              []string
	}{
		{"forced", "language ja", "de", "ja", []string{`>パスワード</label>`}},
		{"limited, offered", "languages fr de", "de", "de", []string{`>Passwort</label>`}},
		{"limited, not offered", "languages fr de", "ja", "fr", []string{`>Mot de passe</label>`}},
		{"override", "messages_dir " + messages, "de", "de", []string{`<button type="submit">Einloggen</button>`, `>Passwort</label>`}},
		{"added", "messages_dir " + messages, "sv-SE", "sv", []string{`>Lösenord</label>`, "<title>Sign in</title>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			startSite(t, siteConfig{extra: tt.extra})
			page := newBrowser(t).get("/_2fa/login", "Accept-Language: "+tt.acceptLanguage)
			if want := fmt.Sprintf(`<html lang="%s">`, tt.lang); !strings.Contains(page.body, want) {
				t.Errorf("page lacks %s", want)
			}
			for _, want := range tt.want {
				if !strings.Contains(page.body, want) {
					t.Errorf("page lacks %q:\n%s", want, page.body)
				}
			}
		})
	}
}

// TestBrokenCatalogIsAConfigError: Caddy refuses a config whose catalog
// would show users a message without its value, and names the file.
func TestBrokenCatalogIsAConfigError(t *testing.T) {
	startSite(t, siteConfig{}) // a running Caddy to refuse the config
	messages := writeFiles(t, map[string]string{"fr.json": `{"locked.intro": "Réessayez plus tard."}`})
	msg := loadFails(t, caddyfileFor(siteConfig{extra: "messages_dir " + messages, db: filepath.Join(t.TempDir(), "two_factor.db")}))
	for _, want := range []string{filepath.Join(messages, "fr.json"), "locked.intro", "placeholders"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}

	for _, tc := range []struct {
		name      string
		configure func(*TwoFactor)
		want      string
	}{
		{"unknown key", func(h *TwoFactor) {
			h.MessagesDir = writeFiles(t, map[string]string{"it.json": `{"login.sumbit": "Entra"}`})
		}, `it.json: unknown key "login.sumbit"`},
		{"unknown language", func(h *TwoFactor) { h.Language = "tlh" }, `language "tlh": no catalog`},
		{"limit outside catalogs", func(h *TwoFactor) { h.Languages = []string{"de", "sw"} }, `languages "sw"`},
		{"template with an unknown message", func(h *TwoFactor) {
			h.TemplatesDir = writeFiles(t, map[string]string{"login.html": `{{template "head" .}}{{t "login.sumbit"}}{{template "foot" .}}`})
		}, `rendering login.html: template: login.html:1:23: executing "login.html" at <t "login.sumbit">: error calling t: no message "login.sumbit"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &TwoFactor{DB: filepath.Join(t.TempDir(), "two_factor.db")}
			tc.configure(h)
			err := h.provision(zap.NewNop())
			if err == nil {
				_ = h.Cleanup()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLanguageCaddyfile(t *testing.T) {
	tests := []struct {
		input string
		check func(*TwoFactor) bool
		err   string
	}{
		{"two_factor {\n language de\n}", func(h *TwoFactor) bool { return h.Language == "de" }, ""},
		{"two_factor {\n languages fr de ja\n}", func(h *TwoFactor) bool { return strings.Join(h.Languages, " ") == "fr de ja" }, ""},
		{"two_factor {\n messages_dir /etc/caddy/messages\n}", func(h *TwoFactor) bool { return h.MessagesDir == "/etc/caddy/messages" }, ""},
		{"two_factor {\n languages\n}", nil, "wrong argument count"},
		{"two_factor {\n language de fr\n}", nil, "wrong argument count"},
		{"two_factor {\n language de\n language fr\n}", nil, "language is set twice"},
		{"two_factor {\n language deutsch!\n}", nil, `language: "deutsch!" is not a language tag`},
		{"two_factor {\n languages de 12\n}", nil, `languages: "12" is not a language tag`},
		{"two_factor {\n language {env.LANG}\n}", func(h *TwoFactor) bool { return h.Language == "{env.LANG}" }, ""},
	}
	for _, tt := range tests {
		h := new(TwoFactor)
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: error %v, want %q", tt.input, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("%q: %v", tt.input, err)
		case tt.err == "" && !tt.check(h):
			t.Errorf("%q: parsed %+v", tt.input, h)
		}
	}
	// Placeholders in the options are resolved at provisioning.
	t.Setenv("TWO_FACTOR_TEST_LANG", "ja")
	h := &TwoFactor{DB: filepath.Join(t.TempDir(), "two_factor.db"), Language: "{env.TWO_FACTOR_TEST_LANG}"}
	if err := h.provision(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	if got := h.pages.bundle.Default().Lang(); got != "ja" {
		t.Errorf("language {env...} = %s", got)
	}
}

// TestTranslateEscapes: a message and its arguments are HTML text, only
// what strong makes is markup, and no argument can forge strong's marker.
func TestTranslateEscapes(t *testing.T) {
	dir := writeFiles(t, map[string]string{"en.json": `{"logout.signed_in_as": "<b>You</b> & %s."}`})
	b, err := i18n.New(i18n.Options{MessagesDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	funcs := pageFuncs(b.Default())
	tr := funcs["t"].(func(string, ...any) template.HTML)
	strong := funcs["strong"].(func(string) template.HTML)
	tests := []struct {
		name string
		arg  any
		want template.HTML
	}{
		{"plain name", "alice", "&lt;b&gt;You&lt;/b&gt; &amp; alice."},
		{"markup in a name", "<script>x</script>", "&lt;b&gt;You&lt;/b&gt; &amp; &lt;script&gt;x&lt;/script&gt;."},
		{"strong name", strong("a<b"), "&lt;b&gt;You&lt;/b&gt; &amp; <strong>a&lt;b</strong>."},
		{"forged marker", markOpen + "0" + markClose, "&lt;b&gt;You&lt;/b&gt; &amp; 0."},
	}
	for _, tt := range tests {
		if got := tr("logout.signed_in_as", tt.arg); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestGoSideMessagesHaveKeys reads the package's Go source for the English
// the page handlers hand to render (pageData's Title, Error and Notice,
// the msg… constants, accountNotices) and checks each has a catalog
// message, so an edited English text cannot silently stay English in
// every other language. A part computed at run time (r.Method) stands in
// as "X".
func TestGoSideMessagesHaveKeys(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	de := defaultPages().bundle.Negotiate("de")
	fset := token.NewFileSet()
	var texts []string
	pos := map[string]string{}
	add := func(e ast.Expr) {
		if s, ok := englishOf(e); ok {
			texts = append(texts, s)
			pos[s] = fset.Position(e.Pos()).String()
		}
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				if id, ok := n.Type.(*ast.Ident); ok && id.Name == "pageData" {
					for _, el := range n.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok {
							if k, ok := kv.Key.(*ast.Ident); ok && (k.Name == "Title" || k.Name == "Error" || k.Name == "Notice") {
								add(kv.Value)
							}
						}
					}
				}
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if i >= len(n.Values) {
						break
					}
					switch {
					case strings.HasPrefix(id.Name, "msg"):
						add(n.Values[i])
					case id.Name == "accountNotices":
						if lit, ok := n.Values[i].(*ast.CompositeLit); ok {
							for _, el := range lit.Elts {
								add(el.(*ast.KeyValueExpr).Value)
							}
						}
					}
				}
			case *ast.AssignStmt:
				// data.Title, data.Reenroll = "Replace your authenticator", true
				for i, l := range n.Lhs {
					if sel, ok := l.(*ast.SelectorExpr); ok && sel.Sel.Name == "Title" && i < len(n.Rhs) {
						add(n.Rhs[i])
					}
				}
			}
			return true
		})
	}
	if len(texts) < 20 {
		t.Fatalf("found only %d messages in the source: %q", len(texts), texts)
	}
	for _, s := range texts {
		if de.English(s) == s {
			t.Errorf("%s: %q has no catalog message (add it to i18n/messages/*.json)", pos[s], s)
		}
	}
}

// englishOf returns the text of a string literal, or of a sum of string
// literals and other values (each "X").
func englishOf(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil && s != ""
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		l, lok := englishOf(e.X)
		r, rok := englishOf(e.Y)
		if !lok && !rok {
			return "", false
		}
		if !lok {
			l = "X"
		}
		if !rok {
			r = "X"
		}
		return l + r, true
	}
	return "", false
}
