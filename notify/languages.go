package notify

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"

	"github.com/caddy-two-factor/caddy-two-factor/i18n"
)

// The translations of English, one catalog per language, named by the
// same BCP 47 tags as the sign-in pages' catalogs (package i18n). Each
// has exactly English's keys.
//
//go:embed messages/*.json
var translations embed.FS

// catalogs holds the embedded catalogs, English first, and a matcher
// over their tags.
type catalogs struct {
	tags     []language.Tag
	matcher  language.Matcher
	messages []*Messages // by index in tags
	sources  []map[string]string
}

var loadCatalogs = sync.OnceValue(func() *catalogs {
	c, err := readCatalogs()
	if err != nil {
		panic(err) // the embedded catalogs are checked by the tests
	}
	return c
})

func readCatalogs() (*catalogs, error) {
	names, err := fs.Glob(translations, "messages/*.json")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	bundle, err := i18n.New(i18n.Options{})
	if err != nil {
		return nil, fmt.Errorf("loading the page catalogs for dates: %w", err)
	}
	c := &catalogs{
		tags:     []language.Tag{language.English},
		messages: []*Messages{defaultMessages},
		sources:  []map[string]string{English},
	}
	for _, name := range names {
		tag, err := language.Parse(strings.TrimSuffix(path.Base(name), ".json"))
		if err != nil {
			return nil, fmt.Errorf("notify catalog %s: %w", name, err)
		}
		data, err := translations.ReadFile(name)
		if err != nil {
			return nil, err
		}
		var src map[string]string
		if err := json.Unmarshal(data, &src); err != nil {
			return nil, fmt.Errorf("notify catalog %s: %w", name, err)
		}
		m, err := NewMessages(src)
		if err != nil {
			return nil, fmt.Errorf("notify catalog %s: %w", name, err)
		}
		i := slices.IndexFunc(bundle.Printers(), func(p *i18n.Printer) bool { return p.Tag() == tag })
		if i < 0 {
			return nil, fmt.Errorf("notify catalog %s: the pages have no language %s", name, tag)
		}
		c.tags = append(c.tags, tag)
		c.messages = append(c.messages, m.Localized(bundle.Printers()[i]))
		c.sources = append(c.sources, src)
	}
	c.matcher = language.NewMatcher(c.tags)
	return c, nil
}

// Languages returns the tags of the embedded catalogs ("de", "pt-BR"),
// English first.
func Languages() []string {
	c := loadCatalogs()
	tags := make([]string, len(c.tags))
	for i, t := range c.tags {
		tags[i] = t.String()
	}
	return tags
}

// Catalog returns a copy of the embedded catalog of the language tag names
// exactly ("de", "pt-BR"; "en" is English), for instance to start a
// translation or override from; ok is false when there is none.
func Catalog(tag string) (catalog map[string]string, ok bool) {
	t, err := language.Parse(tag)
	if err != nil {
		return nil, false
	}
	c := loadCatalogs()
	i := slices.Index(c.tags, t)
	if i < 0 {
		return nil, false
	}
	return maps.Clone(c.sources[i]), true
}

// MessagesFor returns the messages of the embedded language that fits
// tag best: tag is a BCP 47 tag ("de", "pt", "zh-CN") or an
// Accept-Language value ("fr-CH, fr;q=0.9, en;q=0.8"), matched the way
// the sign-in pages match it. A language without a catalog, an empty or
// malformed tag gets English (DefaultMessages). The messages write dates,
// durations and plurals as the language does.
func MessagesFor(tag string) *Messages {
	if tag == "" {
		return defaultMessages
	}
	tags, _, err := language.ParseAcceptLanguage(tag)
	if err != nil || len(tags) == 0 {
		return defaultMessages
	}
	c := loadCatalogs()
	_, i, conf := c.matcher.Match(tags...)
	if conf == language.No || i < 0 || i >= len(c.messages) {
		return defaultMessages
	}
	return c.messages[i]
}

// For returns the messages to write a notice in lang with: the built-in
// catalog of that language when m is the built-in English
// (DefaultMessages), and m itself otherwise, so an operator's own texts
// are never replaced.
func (m *Messages) For(lang string) *Messages {
	if m == defaultMessages {
		return MessagesFor(lang)
	}
	return m
}

// Localized returns m writing the notice's time, the code's lifetime and
// the plural category of counts (RecoveryCodesPlural) as p's language
// does. Use it for a catalog in that language, such as an operator's
// override: m itself is not changed.
func (m *Messages) Localized(p *i18n.Printer) *Messages {
	return &Messages{t: m.t, p: p}
}

// localize fills in the parts of v that depend on the language.
func (m *Messages) localize(v *messageView) {
	tag := language.English
	if m.p != nil {
		tag = m.p.Tag()
		v.When = m.p.DateTime(v.Time)
		v.CodeLifetime = m.p.Duration(CodeLifetime)
	}
	v.RecoveryCodesPlural = pluralCategory(tag, v.RecoveryCodesLeft)
}

// pluralCategory returns the CLDR cardinal category of n in the language:
// "zero", "one", "two", "few", "many" or "other".
func pluralCategory(tag language.Tag, n int) string {
	if n < 0 {
		n = -n
	}
	switch plural.Cardinal.MatchPlural(tag, n, 0, 0, 0, 0) {
	case plural.Zero:
		return "zero"
	case plural.One:
		return "one"
	case plural.Two:
		return "two"
	case plural.Few:
		return "few"
	case plural.Many:
		return "many"
	default:
		return "other"
	}
}
