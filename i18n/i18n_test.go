package i18n

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/language"
)

// shipped are the languages the module must ship, complete.
var shipped = []string{"en", "de", "fr", "es", "it", "nl", "pt-BR", "pl", "ja", "zh-Hans"}

func mustNew(t *testing.T, opts Options) *Bundle {
	t.Helper()
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCatalogsComplete: every embedded catalog has exactly English's keys,
// the same verbs in each message, and the plural forms its language's
// rules use (plus "other"), no more.
func TestCatalogsComplete(t *testing.T) {
	cats, err := loadEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cats {
		names = append(names, c.tag.String())
	}
	for _, want := range shipped {
		if !slices.Contains(names, want) {
			t.Errorf("no catalog for %s (have %v)", want, names)
		}
	}
	english := cats[0].messages
	for _, c := range cats {
		t.Run(c.tag.String(), func(t *testing.T) {
			for key := range english {
				if _, ok := c.messages[key]; !ok {
					t.Errorf("missing key %q", key)
				}
			}
			if err := check(c, english); err != nil {
				t.Error(err)
			}
			forms := PluralForms(c.tag)
			for key, m := range c.messages {
				if m.Forms == nil {
					if strings.TrimSpace(m.Text) == "" {
						t.Errorf("key %q is empty", key)
					}
					continue
				}
				for _, f := range forms {
					if _, ok := m.Forms[f]; !ok {
						t.Errorf("key %q lacks the plural form %q that %s uses", key, f, c.tag)
					}
				}
				for f := range m.Forms {
					if f != "other" && !slices.Contains(forms, f) {
						t.Errorf("key %q has the plural form %q that %s never uses (it uses %v)", key, f, c.tag, forms)
					}
				}
			}
		})
	}
}

// TestCheckRejects: the catalog check catches each kind of mistake.
func TestCheckRejects(t *testing.T) {
	english := map[string]entry{
		"a":   {Text: "Try again in %s."},
		"n":   {Forms: map[string]string{"one": "%d minute", "other": "%d minutes"}},
		"two": {Text: "%s at %s"},
	}
	tests := []struct {
		name string
		m    map[string]entry
		want string
	}{
		{"unknown key", map[string]entry{"b": {Text: "x"}}, `unknown key "b"`},
		{"lost verb", map[string]entry{"a": {Text: "Bitte warten."}}, "placeholders"},
		{"other verb", map[string]entry{"a": {Text: "In %d."}}, "placeholders"},
		{"extra verb", map[string]entry{"a": {Text: "%s %s"}}, "placeholders"},
		{"plural lost verb", map[string]entry{"n": {Forms: map[string]string{"one": "eine Minute", "other": "%d Minuten"}}}, "placeholders"},
		{"plural without other", map[string]entry{"n": {Forms: map[string]string{"one": "%d Minute"}}}, `"other"`},
		{"unknown form", map[string]entry{"n": {Forms: map[string]string{"single": "%d", "other": "%d"}}}, "unknown plural form"},
		{"text for plural", map[string]entry{"n": {Text: "%d Minuten"}}, "plural forms"},
		{"plural for text", map[string]entry{"a": {Forms: map[string]string{"other": "%s"}}}, "single message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := check(catalogFile{name: "x.json", messages: tt.m}, english)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "x.json") {
				t.Fatalf("check = %v, want an error naming x.json with %q", err, tt.want)
			}
		})
	}
	ok := map[string]entry{"two": {Text: "%[2]s: %[1]s"}, "n": {Forms: map[string]string{"other": "%d 分"}}}
	if err := check(catalogFile{name: "x.json", messages: ok}, english); err != nil {
		t.Fatalf("reordered verbs and one plural form: %v", err)
	}
}

func TestNegotiate(t *testing.T) {
	all := mustNew(t, Options{})
	limited := mustNew(t, Options{Languages: []string{"fr", "de"}})
	forced := mustNew(t, Options{Language: "ja"})
	tests := []struct {
		name   string
		b      *Bundle
		header string
		want   string
	}{
		{"empty", all, "", "en"},
		{"german", all, "de", "de"},
		{"german region", all, "de-AT,de;q=0.9", "de"},
		{"q-values order", all, "fr;q=0.4, ja;q=0.9, en;q=0.1", "ja"},
		{"q zero refused", all, "de;q=0, it;q=0.5", "it"},
		{"first of equals", all, "nl, pl", "nl"},
		{"portuguese to brazil", all, "pt", "pt-BR"},
		{"portuguese brazil", all, "pt-BR", "pt-BR"},
		{"portuguese portugal", all, "pt-PT", "pt-BR"},
		{"chinese simplified script", all, "zh-Hans", "zh-Hans"},
		{"chinese china", all, "zh-CN", "zh-Hans"},
		{"chinese bare", all, "zh", "zh-Hans"},
		{"unknown", all, "sw", "en"},
		{"unknown then known", all, "sw, es;q=0.5", "es"},
		{"english us", all, "en-US,en;q=0.9", "en"},
		{"malformed", all, "de;q=x;;", "en"},
		{"wildcard", all, "*", "en"},
		{"limit keeps offered", limited, "de", "de"},
		{"limit drops others", limited, "ja, de;q=0.1", "de"},
		{"limit default is first", limited, "ja", "fr"},
		{"forced", forced, "de, en", "ja"},
		{"forced empty", forced, "", "ja"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Negotiate(tt.header).Lang(); got != tt.want {
				t.Errorf("Negotiate(%q) = %s, want %s", tt.header, got, tt.want)
			}
		})
	}
	if limited.Negotiates() != true || forced.Negotiates() != false {
		t.Error("Negotiates: a limit still negotiates, a forced language does not")
	}
}

func TestOptionsRejected(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"unknown language", Options{Language: "sw"}, `language "sw": no catalog`},
		{"malformed language", Options{Language: "not a tag"}, `language "not a tag"`},
		{"unknown in languages", Options{Languages: []string{"de", "tlh"}}, `languages "tlh"`},
		{"language outside languages", Options{Language: "ja", Languages: []string{"de", "fr"}}, `language "ja": no catalog`},
		{"missing dir", Options{MessagesDir: "/nonexistent/messages"}, "messages_dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error with %q", err, tt.want)
			}
		})
	}
	// A region names the catalog of its language.
	b := mustNew(t, Options{Language: "zh-CN"})
	if got := b.Default().Lang(); got != "zh-Hans" {
		t.Errorf("language zh-CN = %s, want zh-Hans", got)
	}
}

func TestMessagesDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Override one German message, add Swedish with one message.
	write("de.json", `{"login.submit": "Einloggen"}`)
	write("sv.json", `{"login.submit": "Logga in", "duration.minutes": {"one": "%d minut", "other": "%d minuter"}}`)
	b := mustNew(t, Options{MessagesDir: dir})

	de := b.Negotiate("de")
	if got := de.T("login.submit"); got != "Einloggen" {
		t.Errorf("overridden de login.submit = %q", got)
	}
	if got := de.T("login.password"); got != "Passwort" {
		t.Errorf("de login.password kept from the embedded catalog = %q", got)
	}
	sv := b.Negotiate("sv-SE")
	if sv.Lang() != "sv" {
		t.Fatalf("sv-SE negotiated %s, want the added sv", sv.Lang())
	}
	if got := sv.T("login.submit"); got != "Logga in" {
		t.Errorf("sv login.submit = %q", got)
	}
	if got := sv.T("login.password"); got != "Password" {
		t.Errorf("sv login.password falls back to English, got %q", got)
	}
	if got := sv.Duration(5 * time.Minute); got != "5 minuter" {
		t.Errorf("sv 5 minutes = %q", got)
	}

	broken := []struct{ name, body, want string }{
		{"fr.json", `{"locked.intro": "Réessayez plus tard."}`, "placeholders"},
		{"it.json", `{"login.sumbit": "Entra"}`, `unknown key "login.sumbit"`},
		{"es.json", `{"login.submit": `, "unexpected end"},
		{"english.json", `{}`, "language tag"},
	}
	for _, tt := range broken {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, tt.name), []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := New(Options{MessagesDir: dir})
			if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, tt.name)) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error naming %s with %q", err, tt.name, tt.want)
			}
		})
	}
	empty := t.TempDir()
	if _, err := New(Options{MessagesDir: empty}); err == nil || !strings.Contains(err.Error(), "no .json") {
		t.Fatalf("empty messages_dir: %v", err)
	}
}

func TestPluralAndFormats(t *testing.T) {
	b := mustNew(t, Options{})
	tests := []struct {
		lang string
		d    time.Duration
		want string
	}{
		{"en", time.Minute, "1 minute"},
		{"en", 15 * time.Minute, "15 minutes"},
		{"en", 5 * time.Second, "5 seconds"},
		{"de", time.Minute, "1 Minute"},
		{"de", 90 * time.Second, "2 Minuten"},
		{"pl", time.Minute, "1 minutę"},
		{"pl", 3 * time.Minute, "3 minuty"},
		{"pl", 5 * time.Minute, "5 minut"},
		{"pl", 22 * time.Minute, "22 minuty"},
		{"pl", 12 * time.Minute, "12 minut"},
		{"ja", 15 * time.Minute, "15 分"},
		{"fr", time.Minute, "1 minute"},
		{"fr", 2 * time.Minute, "2 minutes"},
	}
	for _, tt := range tests {
		if got := b.Negotiate(tt.lang).Duration(tt.d); got != tt.want {
			t.Errorf("%s Duration(%s) = %q, want %q", tt.lang, tt.d, got, tt.want)
		}
	}
	at := time.Date(2026, 3, 1, 9, 5, 0, 0, time.FixedZone("CET", 3600))
	dates := map[string]string{
		"en":      "1 Mar 2026 08:05 UTC",
		"de":      "1.3.2026, 08:05 UTC",
		"ja":      "2026年3月1日 08:05 UTC",
		"zh-Hans": "2026年3月1日 08:05 UTC",
		"pt-BR":   "01/03/2026, 08:05 UTC",
	}
	for lang, want := range dates {
		if got := b.Negotiate(lang).DateTime(at); got != want {
			t.Errorf("%s DateTime = %q, want %q", lang, got, want)
		}
	}
	for _, lang := range shipped {
		tag := language.MustParse(lang)
		if layoutFor(tag) == isoLayout {
			t.Errorf("%s has no date layout of its own", lang)
		}
	}
}

// TestEnglish: a message the code writes in English is found by its text,
// with its arguments, and text no catalog knows stays as it is.
func TestEnglish(t *testing.T) {
	b := mustNew(t, Options{})
	de := b.Negotiate("de")
	tests := []struct{ in, want string }{
		{"The user name or password is not right.", "Benutzername oder Passwort ist falsch."},
		{"Sign in", "Anmelden"},
		{"This page does not accept PUT requests.", "Diese Seite nimmt keine PUT-Anfragen an."},
		{"15 minutes", "15 Minuten"},
		{"1 minute", "1 Minute"},
		{"Firefox on Linux", "Firefox auf Linux"},
		// A duration inside a sentence is translated with it; an address is not.
		{"You have asked for several codes already. Please wait 15 minutes, or use your authenticator or a recovery code.",
			"Sie haben bereits mehrere Codes angefordert. Bitte warten Sie 15 Minuten oder verwenden Sie Ihren Authenticator oder einen Wiederherstellungscode."},
		{"If the address is right, a code is on its way to a***@example.com. It works once, for 10 minutes.",
			"Wenn die Adresse stimmt, ist ein Code an a***@example.com unterwegs. Er gilt einmal, 10 Minuten lang."},
		{"Something else entirely.", "Something else entirely."},
		{"", ""},
	}
	for _, tt := range tests {
		if got := de.English(tt.in); got != tt.want {
			t.Errorf("English(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if key, ok := b.Key("Too many attempts"); !ok || key != "title.locked" {
		t.Errorf("Key = %q, %v", key, ok)
	}
	en := b.Default()
	for key, m := range b.english {
		if m.Forms == nil && !strings.Contains(m.Text, "%") {
			if got := en.English(m.Text); got != m.Text {
				t.Errorf("English round trip of %s: %q", key, got)
			}
		}
	}
}

func FuzzNegotiate(f *testing.F) {
	b, err := New(Options{})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"", "de", "fr-CH, fr;q=0.9, en;q=0.8, *;q=0.5", "zh-Hant-TW", "pt;q=1.0", "x-klingon", ";;;q=", strings.Repeat("de-DE-x-aaaaaaaa,", 100)} {
		f.Add(s)
	}
	offered := b.Languages()
	f.Fuzz(func(t *testing.T, header string) {
		p := b.Negotiate(header)
		if !slices.Contains(offered, p.Tag()) {
			t.Fatalf("Negotiate(%q) = %s, not an offered language", header, p.Tag())
		}
		if p.T("login.submit") == "login.submit" {
			t.Fatalf("Negotiate(%q) = %s has no message for login.submit", header, p.Tag())
		}
	})
}

// An English text that several keys share is always looked up to the same
// key: the Go side's (a page title) before a template's, whatever the map
// order of the bundle that was built.
func TestKeyOfASharedTextIsStable(t *testing.T) {
	for range 20 {
		b, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		if key, ok := b.Key("Sign in"); !ok || key != "title.sign_in" {
			t.Fatalf(`Key("Sign in") = %q, %v; want title.sign_in`, key, ok)
		}
	}
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"title.sign_in", "login.submit", true},
		{"login.submit", "title.sign_in", false},
		{"login.submit", "logout.sign_in", true},
		{"msg.a", "title.b", true},
	} {
		if got := goSideFirst(tc.a, tc.b); got != tc.want {
			t.Errorf("goSideFirst(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}
