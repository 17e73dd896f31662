package notify_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-two-factor/caddy-two-factor/i18n"
	"github.com/caddy-two-factor/caddy-two-factor/internal/mailtest"
	"github.com/caddy-two-factor/caddy-two-factor/notify"
)

// pagePrinters returns the sign-in pages' printers by language tag.
func pagePrinters(t testing.TB) map[string]*i18n.Printer {
	t.Helper()
	b, err := i18n.New(i18n.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ps := map[string]*i18n.Printer{}
	for _, p := range b.Printers() {
		ps[p.Lang()] = p
	}
	return ps
}

func TestLanguagesAreThePagesLanguages(t *testing.T) {
	got := notify.Languages()
	if got[0] != "en" {
		t.Errorf("Languages()[0] = %q, want en", got[0])
	}
	want := slices.Sorted(maps.Keys(pagePrinters(t)))
	if slices.Sort(got); !slices.Equal(got, want) {
		t.Errorf("notice languages %v, page languages %v", got, want)
	}
}

func TestCatalogsHaveEnglishKeys(t *testing.T) {
	want := slices.Sorted(maps.Keys(notify.English))
	for _, lang := range notify.Languages() {
		t.Run(lang, func(t *testing.T) {
			c, ok := notify.Catalog(lang)
			if !ok {
				t.Fatal("no catalog")
			}
			if got := slices.Sorted(maps.Keys(c)); !slices.Equal(got, want) {
				t.Errorf("keys differ from English:\n got %v\nwant %v", got, want)
			}
			if _, err := notify.NewMessages(c); err != nil {
				t.Error(err)
			}
		})
	}
	if _, ok := notify.Catalog("sv"); ok {
		t.Error("Catalog(sv) found a catalog")
	}
}

// noticeVariants returns n with each combination of the optional fields
// and, for the recovery code events, each count.
func noticeVariants(e notify.Event) []notify.Notice {
	var out []notify.Notice
	counts := []*int{nil}
	if e == notify.RecoveryCodeUsed || e == notify.RecoveryCodesLow {
		counts = []*int{nil, intp(0), intp(1), intp(2), intp(5)}
	}
	for mask := range 1 << 5 {
		for _, left := range counts {
			n := aliceNotice(e)
			n.RecoveryCodesLeft = left
			if mask&1 != 0 {
				n.Item = "YubiKey 5"
			}
			if mask&2 == 0 {
				n.AccountURL = ""
			}
			if mask&4 == 0 {
				n.ClientIP = ""
			}
			if mask&8 == 0 {
				n.Browser = ""
			}
			if mask&16 != 0 {
				n.Code = "01234567"
			}
			out = append(out, n)
		}
	}
	return out
}

func TestEveryLanguageRendersEveryNotice(t *testing.T) {
	printers := pagePrinters(t)
	for _, lang := range notify.Languages() {
		m := notify.MessagesFor(lang)
		when := printers[lang].DateTime(epoch)
		if lang == "en" {
			when = "Sun, 29 Nov 2026 12:00:00 UTC"
		}
		for _, e := range notify.AllEvents {
			t.Run(lang+"/"+string(e), func(t *testing.T) {
				for _, n := range noticeVariants(e) {
					subject, body, err := m.Render(n)
					if err != nil {
						t.Fatalf("Render(%+v): %v", n, err)
					}
					if lang != "en" {
						enSubject, enBody, _ := notify.DefaultMessages().Render(n)
						if subject == enSubject || body == enBody {
							t.Errorf("not translated:\n%s\n%s", subject, body)
						}
					}
					if subject == "" || strings.ContainsAny(subject, "\r\n") || !strings.Contains(subject, "alice") {
						t.Errorf("subject %q", subject)
					}
					if strings.Contains(subject+body, "<no value>") {
						t.Errorf("a missing value:\n%s\n%s", subject, body)
					}
					want := []string{"`caddy two-factor revoke alice`", "alice", when}
					if n.AccountURL != "" {
						want = append(want, n.AccountURL)
					}
					if n.ClientIP != "" {
						want = append(want, n.ClientIP)
					}
					if n.Browser != "" {
						want = append(want, n.Browser)
					}
					if n.RecoveryCodesLeft != nil {
						want = append(want, " "+strconv.Itoa(*n.RecoveryCodesLeft)+" ")
					}
					if n.Item != "" && (strings.HasSuffix(string(e), "_added") || strings.HasSuffix(string(e), "_removed")) {
						want = append(want, n.Item)
					}
					if e == notify.EmailCode && n.Code != "" {
						want = append(want, n.Code, printers[lang].Duration(notify.CodeLifetime))
					}
					containsAll(t, "body", body, want...)
				}
			})
		}
	}
}

func TestPolishPluralForms(t *testing.T) {
	m := notify.MessagesFor("pl")
	tests := []struct {
		left      int
		used, low string
	}{
		{0, "Pozostało 0 kodów odzyskiwania.", "pozostało tylko 0 kodów odzyskiwania."},
		{1, "Pozostał 1 kod odzyskiwania.", "pozostał tylko 1 kod odzyskiwania."},
		{2, "Pozostały 2 kody odzyskiwania.", "pozostały tylko 2 kody odzyskiwania."},
		{5, "Pozostało 5 kodów odzyskiwania.", "pozostało tylko 5 kodów odzyskiwania."},
		{12, "Pozostało 12 kodów odzyskiwania.", "pozostało tylko 12 kodów odzyskiwania."},
		{22, "Pozostały 22 kody odzyskiwania.", "pozostały tylko 22 kody odzyskiwania."},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.left), func(t *testing.T) {
			for e, want := range map[notify.Event]string{notify.RecoveryCodeUsed: tt.used, notify.RecoveryCodesLow: tt.low} {
				n := aliceNotice(e)
				n.RecoveryCodesLeft = intp(tt.left)
				_, body, err := m.Render(n)
				if err != nil {
					t.Fatal(err)
				}
				containsAll(t, string(e), body, want)
			}
		})
	}
}

func TestPluralFormsOfOtherLanguages(t *testing.T) {
	tests := []struct {
		lang string
		left int
		want string
	}{
		{"de", 1, "Ihnen bleibt 1 Wiederherstellungscode."},
		{"de", 2, "Ihnen bleiben 2 Wiederherstellungscodes."},
		{"fr", 0, "Il vous reste 0 code de secours."}, // French counts 0 as one
		{"fr", 1, "Il vous reste 1 code de secours."},
		{"fr", 2, "Il vous reste 2 codes de secours."},
		{"es", 1, "Le queda 1 código de recuperación."},
		{"es", 5, "Le quedan 5 códigos de recuperación."},
		{"it", 1, "Le resta 1 codice di recupero."},
		{"it", 0, "Le restano 0 codici di recupero."},
		{"nl", 1, "U heeft nog 1 herstelcode."},
		{"nl", 2, "U heeft nog 2 herstelcodes."},
		{"pt-BR", 1, "Resta 1 código de recuperação."},
		{"pt-BR", 0, "Restam 0 códigos de recuperação."},
		{"ja", 1, "残りのリカバリーコードは 1 個です。"},
		{"zh-Hans", 5, "您还剩 5 个恢复码。"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.lang, tt.left), func(t *testing.T) {
			n := aliceNotice(notify.RecoveryCodeUsed)
			n.RecoveryCodesLeft = intp(tt.left)
			_, body, err := notify.MessagesFor(tt.lang).Render(n)
			if err != nil {
				t.Fatal(err)
			}
			containsAll(t, "body", body, tt.want)
		})
	}
}

func TestMessagesForMatchesLikeThePages(t *testing.T) {
	tests := []struct{ tag, want string }{
		{"de", "de"},
		{"de-AT", "de"},
		{"pt", "pt-BR"},
		{"pt-PT", "pt-BR"},
		{"zh-CN", "zh-Hans"},
		{"zh", "zh-Hans"},
		{"fr-CH, fr;q=0.9, en;q=0.8", "fr"},
		{"sw, pl;q=0.5", "pl"},
		{"en-GB", "en"},
		{"sw", "en"},
		{"", "en"},
		{"%%;q=x,,", "en"},
		{strings.Repeat("x", 10000), "en"},
	}
	for _, tt := range tests {
		t.Run(tt.tag, func(t *testing.T) {
			got := notify.MessagesFor(tt.tag)
			if tt.want == "en" {
				if got != notify.DefaultMessages() {
					t.Errorf("MessagesFor(%q) is not English", tt.tag)
				}
				return
			}
			if got != notify.MessagesFor(tt.want) || got == notify.DefaultMessages() {
				t.Errorf("MessagesFor(%q) is not %s", tt.tag, tt.want)
			}
		})
	}
}

// An operator's override catalog, localized with a page printer, writes
// dates and durations in its language; unlocalized it writes English's.
func TestLocalizedOverride(t *testing.T) {
	c, _ := notify.Catalog("de")
	c["email_code.subject"] = "Code für {{.User}}"
	m, err := notify.NewMessages(c)
	if err != nil {
		t.Fatal(err)
	}
	n := aliceNotice(notify.EmailCode)
	n.Code = "01234567"
	_, body, err := m.Render(n)
	if err != nil {
		t.Fatal(err)
	}
	containsAll(t, "unlocalized body", body, "Sun, 29 Nov 2026 12:00:00 UTC", "10 minutes")
	subject, body, err := m.Localized(pagePrinters(t)["de"]).Render(n)
	if err != nil {
		t.Fatal(err)
	}
	if subject != "Code für alice" {
		t.Errorf("subject %q", subject)
	}
	containsAll(t, "localized body", body, "Zeitpunkt: 29.11.2026, 12:00 UTC", "läuft in 10 Minuten ab")
}

// subjectUsers are user names that try to start a header of their own.
var subjectUsers = []string{
	"alice\r\nBcc: evil@example.net",
	"alice\nBcc: evil@example.net",
	"alice\rBcc: evil@example.net",
	"\r\n\r\nbody",
	"alice\u2028Bcc: evil@example.net",
	"=?utf-8?q?a=0D=0ABcc:_evil@example.net?=",
}

// checkSubjectOneLine checks, in every language, that the user name is
// the only part of a subject that varies with it, and that the rest has no
// line break: a translation adds none, so the only ones are the name's,
// which the SMTP sender refuses (TestEveryLanguageRefusesHeaderInjection).
func checkSubjectOneLine(t *testing.T, user string) {
	t.Helper()
	const marker = "USER-NAME-MARKER"
	for _, lang := range notify.Languages() {
		m := notify.MessagesFor(lang)
		for _, e := range notify.AllEvents {
			render := func(user string) string {
				n := aliceNotice(e)
				n.User = user
				n.Item = "key\r\nBcc: evil@example.net"
				n.RecoveryCodesLeft = intp(2)
				subject, _, err := m.Render(n)
				if err != nil {
					t.Fatalf("%s %s: %v", lang, e, err)
				}
				return subject
			}
			frame := render(marker)
			if strings.Count(frame, marker) != 1 || strings.ContainsAny(frame, "\r\n") {
				t.Fatalf("%s %s: subject %q", lang, e, frame)
			}
			if got, want := render(user), strings.TrimSpace(strings.Replace(frame, marker, user, 1)); got != want {
				t.Errorf("%s %s: subject %q, want %q", lang, e, got, want)
			}
		}
	}
}

func TestSubjectOneLine(t *testing.T) {
	for _, u := range subjectUsers {
		checkSubjectOneLine(t, u)
	}
}

func FuzzSubjectOneLine(f *testing.F) {
	for _, u := range subjectUsers {
		f.Add(u)
	}
	f.Fuzz(func(t *testing.T, user string) {
		checkSubjectOneLine(t, user)
	})
}

// In every language, a user name with a line break does not reach a mail
// header: the message is refused, for good.
func TestEveryLanguageRefusesHeaderInjection(t *testing.T) {
	ms := mailtest.Start(t, mailtest.OfferSTARTTLS, nil)
	for _, lang := range notify.Languages() {
		s := newSMTP(t, ms, func(c *notify.SMTPConfig) { c.Messages = notify.MessagesFor(lang) })
		for _, user := range subjectUsers[:4] {
			n := aliceNotice(notify.SignInNewBrowser)
			n.User = user
			if err := s.Send(context.Background(), n); !notify.IsPermanent(err) {
				t.Errorf("%s: Send for user %q: %v, want a permanent error", lang, user, err)
			}
		}
	}
	if got := ms.Received(); len(got) != 0 {
		t.Errorf("%d messages reached the server", len(got))
	}
}
