// Package i18n holds the messages of the sign-in pages in several
// languages and picks one for each request.
//
// The catalogs are JSON files, one per language, named by the language's
// BCP 47 tag (messages/de.json, messages/pt-BR.json). Each maps a key to a
// message in fmt syntax ("Try again in %s."), or, for a message that
// shows a count, to its plural forms by CLDR category:
//
//	"duration.minutes": {"one": "%d minute", "other": "%d minutes"}
//
// English is the reference: every catalog has exactly its keys, with the
// same verbs. An operator's directory of catalogs (messages_dir) adds
// languages or overrides messages of the embedded ones; a key it leaves
// out is taken from English.
//
// Messages are formatted and plural forms chosen by golang.org/x/text
// (message, catalog, plural); languages are negotiated from
// Accept-Language with its language.Matcher.
package i18n

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/message/catalog"
)

//go:embed messages/*.json
var embedded embed.FS

// English is the reference language and the default.
var English = language.English

// maxAcceptLanguage bounds the part of an Accept-Language header that is
// parsed: a browser sends a few dozen bytes.
const maxAcceptLanguage = 512

// Options are the operator's choices.
type Options struct {
	// Language, when set, is the only language the pages speak,
	// whatever the browser asks for.
	Language string
	// Languages, when set, limits the languages offered to these; the
	// first is the one used when none of them fits the browser.
	Languages []string
	// MessagesDir is a directory of catalogs (<tag>.json) that add
	// languages or override messages of the embedded ones.
	MessagesDir string
}

// Bundle is a set of catalogs and the languages offered from them. It is
// safe for concurrent use.
type Bundle struct {
	printers []*Printer // offered, the default first
	matcher  language.Matcher
	forced   bool
	english  map[string]entry
	byText   map[string]string // English text to key
	patterns []pattern
}

// entry is one message of a catalog: a text, or plural forms.
type entry struct {
	Text  string
	Forms map[string]string
}

// catalogFile is a parsed catalog with where it came from, for errors.
type catalogFile struct {
	tag      language.Tag
	name     string
	messages map[string]entry
}

// New loads the embedded catalogs and those of opts.MessagesDir, and
// applies the operator's choice of languages. Every problem of an
// operator's catalog is an error naming its file.
func New(opts Options) (*Bundle, error) {
	cats, err := loadEmbedded()
	if err != nil {
		return nil, err
	}
	english := cats[0].messages
	if opts.MessagesDir != "" {
		extra, err := loadDir(opts.MessagesDir)
		if err != nil {
			return nil, err
		}
		for _, c := range extra {
			if err := check(c, english); err != nil {
				return nil, err
			}
			i := slices.IndexFunc(cats, func(e catalogFile) bool { return e.tag == c.tag })
			if i < 0 {
				cats = append(cats, catalogFile{tag: c.tag, name: c.name, messages: map[string]entry{}})
				i = len(cats) - 1
			}
			for k, m := range c.messages {
				cats[i].messages[k] = m
			}
		}
	}

	builder := catalog.NewBuilder(catalog.Fallback(English))
	available := make([]language.Tag, len(cats))
	for i, c := range cats {
		available[i] = c.tag
		for key, en := range english {
			m, ok := c.messages[key]
			if !ok {
				m = en
			}
			if err := builder.Set(c.tag, key, m.catalogMessage()); err != nil {
				return nil, fmt.Errorf("catalog %s: key %q: %w", c.name, key, err)
			}
		}
	}

	b := &Bundle{english: english, byText: make(map[string]string, len(english)), patterns: compilePatterns(english)}
	for key, m := range english {
		if m.Forms == nil {
			if other, ok := b.byText[m.Text]; !ok || goSideFirst(key, other) {
				b.byText[m.Text] = key
			}
		}
	}
	offered := available
	if len(opts.Languages) > 0 {
		offered = nil
		for _, s := range opts.Languages {
			t, err := pick(s, available, "languages")
			if err != nil {
				return nil, err
			}
			if !slices.Contains(offered, t) {
				offered = append(offered, t)
			}
		}
	}
	if opts.Language != "" {
		t, err := pick(opts.Language, offered, "language")
		if err != nil {
			return nil, err
		}
		offered, b.forced = []language.Tag{t}, true
	}
	for _, t := range offered {
		b.printers = append(b.printers, &Printer{
			p:      message.NewPrinter(t, message.Catalog(builder)),
			tag:    t,
			bundle: b,
		})
	}
	b.matcher = language.NewMatcher(offered)
	return b, nil
}

// pick finds the tag s names among tags: exactly, or as the same language
// (zh-CN for zh-Hans, pt for pt-BR).
func pick(s string, tags []language.Tag, option string) (language.Tag, error) {
	t, err := language.Parse(s)
	if err != nil {
		return language.Und, fmt.Errorf("%s %q: %w", option, s, err)
	}
	if i := slices.Index(tags, t); i >= 0 {
		return tags[i], nil
	}
	// The matcher also offers English to, say, a Swahili reader; an
	// operator who names a language means that language.
	if _, i, conf := language.NewMatcher(tags).Match(t); conf >= language.High && sameBase(t, tags[i]) {
		return tags[i], nil
	}
	names := make([]string, len(tags))
	for i, t := range tags {
		names[i] = t.String()
	}
	return language.Und, fmt.Errorf("%s %q: no catalog for it; available: %s", option, s, strings.Join(names, ", "))
}

func sameBase(a, b language.Tag) bool {
	ab, _ := a.Base()
	bb, _ := b.Base()
	return ab == bb
}

// Languages returns the tags offered, the default first.
func (b *Bundle) Languages() []language.Tag {
	tags := make([]language.Tag, len(b.printers))
	for i, p := range b.printers {
		tags[i] = p.tag
	}
	return tags
}

// Printers returns the printers of the offered languages, the default
// first.
func (b *Bundle) Printers() []*Printer { return slices.Clone(b.printers) }

// Default returns the printer of the default language.
func (b *Bundle) Default() *Printer { return b.printers[0] }

// Negotiates tells whether the language depends on the request (and so a
// response should say Vary: Accept-Language).
func (b *Bundle) Negotiates() bool { return !b.forced && len(b.printers) > 1 }

// Negotiate returns the printer for a request with this Accept-Language
// header: the offered language that fits it best, or the default. A
// malformed header gets the default.
func (b *Bundle) Negotiate(acceptLanguage string) *Printer {
	if !b.Negotiates() || acceptLanguage == "" {
		return b.printers[0]
	}
	if len(acceptLanguage) > maxAcceptLanguage {
		// Cut at the last complete entry.
		acceptLanguage = acceptLanguage[:maxAcceptLanguage]
		if i := strings.LastIndexByte(acceptLanguage, ','); i >= 0 {
			acceptLanguage = acceptLanguage[:i]
		}
	}
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return b.printers[0]
	}
	_, i, conf := b.matcher.Match(tags...)
	if conf == language.No || i < 0 || i >= len(b.printers) {
		return b.printers[0]
	}
	return b.printers[i]
}

// Has tells whether key names a message.
func (b *Bundle) Has(key string) bool {
	_, ok := b.english[key]
	return ok
}

// goSideFirst reports whether key a is chosen over key b for an English
// text they share: the messages the Go code passes as text (titles,
// messages, device names) before the pages' own keys, then the first by
// name, so the choice never depends on map order.
func goSideFirst(a, b string) bool {
	goSide := func(k string) bool {
		return strings.HasPrefix(k, "title.") || strings.HasPrefix(k, "msg.") || strings.HasPrefix(k, "device.")
	}
	if goSide(a) != goSide(b) {
		return goSide(a)
	}
	return a < b
}

// Key returns the key of the message whose English text is text.
func (b *Bundle) Key(text string) (string, bool) {
	key, ok := b.byText[text]
	return key, ok
}

// Printer formats the messages of one language. It is safe for
// concurrent use.
type Printer struct {
	p      *message.Printer
	tag    language.Tag
	bundle *Bundle
}

// T returns the message of key with args put in. An unknown key is
// returned as it is.
func (p *Printer) T(key string, args ...any) string {
	return p.p.Sprintf(key, args...)
}

// Tag returns the printer's language.
func (p *Printer) Tag() language.Tag { return p.tag }

// Lang returns the language's BCP 47 tag, for <html lang>.
func (p *Printer) Lang() string { return p.tag.String() }

// English returns text, an English message as the module's code writes it
// (with its arguments already put in), in the printer's language: the
// message with the same English text, or whose English pattern matches it
// ("This page does not accept %s requests."). Text no catalog knows is
// returned as it is.
func (p *Printer) English(text string) string {
	if text == "" {
		return ""
	}
	if key, ok := p.bundle.Key(text); ok {
		return p.T(key)
	}
	for _, pat := range p.bundle.patterns {
		if args, ok := pat.match(text); ok {
			// An argument that is itself a message (a duration put into a
			// sentence) is translated too; any other (a name, an address)
			// stays as it is.
			for i, a := range args {
				if s, ok := a.(string); ok {
					args[i] = p.English(s)
				}
			}
			return p.T(pat.key, args...)
		}
	}
	return text
}

// pattern matches an English message with verbs against a text.
type pattern struct {
	key   string
	re    *regexp.Regexp
	verbs []byte
	// literal is how much of the message is fixed text: the more, the
	// more specific the pattern.
	literal int
}

var verbRE = regexp.MustCompile(`%(?:\[\d+\])?[-+# 0]*\d*(?:\.\d+)?[a-zA-Z%]`)

// compilePatterns makes a pattern of each English message with %s or %d.
func compilePatterns(english map[string]entry) []pattern {
	var pats []pattern
	add := func(key, text string) {
		locs := verbRE.FindAllStringIndex(text, -1)
		if len(locs) == 0 {
			return
		}
		var re strings.Builder
		var verbs []byte
		re.WriteString("^")
		last := 0
		for _, l := range locs {
			re.WriteString(regexp.QuoteMeta(text[last:l[0]]))
			switch v := text[l[1]-1]; v {
			case 'd':
				re.WriteString(`(\d{1,9})`)
				verbs = append(verbs, v)
			case 's':
				re.WriteString(`(.+?)`)
				verbs = append(verbs, v)
			default:
				return // no pattern for other verbs
			}
			last = l[1]
		}
		re.WriteString(regexp.QuoteMeta(text[last:]) + "$")
		literal := len(text) - len(verbs)*2
		pats = append(pats, pattern{key: key, re: regexp.MustCompile(re.String()), verbs: verbs, literal: literal})
	}
	keys := make([]string, 0, len(english))
	for k := range english {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		m := english[k]
		if m.Forms == nil {
			add(k, m.Text)
			continue
		}
		forms := make([]string, 0, len(m.Forms))
		for f := range m.Forms {
			forms = append(forms, f)
		}
		sort.Strings(forms)
		for _, f := range forms {
			add(k, m.Forms[f])
		}
	}
	// The most specific pattern first: a short one ("%s on %s", a device)
	// also matches a sentence that merely contains its words.
	sort.SliceStable(pats, func(i, j int) bool { return pats[i].literal > pats[j].literal })
	return pats
}

func (pat pattern) match(text string) ([]any, bool) {
	m := pat.re.FindStringSubmatch(text)
	if m == nil {
		return nil, false
	}
	args := make([]any, len(pat.verbs))
	for i, v := range pat.verbs {
		if v == 'd' {
			n, err := strconv.Atoi(m[i+1])
			if err != nil {
				return nil, false
			}
			args[i] = n
		} else {
			args[i] = m[i+1]
		}
	}
	return args, true
}

// UnmarshalJSON reads a message: a string, or an object of plural forms.
func (e *entry) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '{' {
		return json.Unmarshal(data, &e.Forms)
	}
	return json.Unmarshal(data, &e.Text)
}

// pluralForms are the CLDR plural categories, in x/text's names.
var pluralForms = map[string]plural.Form{
	"zero": plural.Zero, "one": plural.One, "two": plural.Two,
	"few": plural.Few, "many": plural.Many, "other": plural.Other,
}

// catalogMessage returns the message for x/text's catalog. Plural forms
// select on the first argument.
func (e entry) catalogMessage() catalog.Message {
	if e.Forms == nil {
		return catalog.String(e.Text)
	}
	var cases []any
	for _, f := range []string{"zero", "one", "two", "few", "many", "other"} {
		if m, ok := e.Forms[f]; ok {
			cases = append(cases, f, m)
		}
	}
	return plural.Selectf(1, "%d", cases...)
}

// texts returns the message's texts: its text, or each plural form.
func (e entry) texts() map[string]string {
	if e.Forms == nil {
		return map[string]string{"": e.Text}
	}
	return e.Forms
}

func loadEmbedded() ([]catalogFile, error) {
	cats, err := loadFS(embedded, "messages", "")
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(cats, func(c catalogFile) bool { return c.tag == English })
	if i < 0 {
		return nil, errors.New("no English catalog")
	}
	cats[0], cats[i] = cats[i], cats[0]
	return cats, nil
}

func loadDir(dir string) ([]catalogFile, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("messages_dir: %w", err)
	}
	cats, err := loadFS(os.DirFS(dir), ".", dir)
	if err != nil {
		return nil, err
	}
	if len(cats) == 0 {
		return nil, fmt.Errorf("messages_dir %s has no .json catalogs; name them by language, like de.json or pt-BR.json", dir)
	}
	return cats, nil
}

// loadFS reads the catalogs *.json of dir in fsys; base is the directory
// as the operator named it, for errors.
func loadFS(fsys fs.FS, dir, base string) ([]catalogFile, error) {
	names, err := fs.Glob(fsys, dir+"/*.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var cats []catalogFile
	for _, name := range names {
		shown := name
		if base != "" {
			shown = filepath.Join(base, filepath.Base(name))
		}
		c, err := loadFile(fsys, name, shown)
		if err != nil {
			return nil, err
		}
		cats = append(cats, c)
	}
	return cats, nil
}

// maxCatalog bounds a catalog file.
const maxCatalog = 1 << 20

func loadFile(fsys fs.FS, name, shown string) (catalogFile, error) {
	tagName := strings.TrimSuffix(filepath.Base(name), ".json")
	tag, err := language.Parse(tagName)
	if err != nil {
		return catalogFile{}, fmt.Errorf("catalog %s: the name must be a language tag, like de.json or pt-BR.json: %w", shown, err)
	}
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return catalogFile{}, fmt.Errorf("catalog %s: %w", shown, err)
	}
	if len(data) > maxCatalog {
		return catalogFile{}, fmt.Errorf("catalog %s is larger than %d KiB", shown, maxCatalog>>10)
	}
	c := catalogFile{tag: tag, name: shown}
	if err := json.Unmarshal(data, &c.messages); err != nil {
		return catalogFile{}, fmt.Errorf("catalog %s: %w", shown, err)
	}
	return c, nil
}

// check compares a catalog with English: it may leave keys out, but it
// may not have keys English lacks, and each message must have English's
// verbs and known plural forms (with "other").
func check(c catalogFile, english map[string]entry) error {
	keys := make([]string, 0, len(c.messages))
	for k := range c.messages {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		en, ok := english[key]
		if !ok {
			return fmt.Errorf("catalog %s: unknown key %q", c.name, key)
		}
		if err := checkMessage(c.messages[key], en); err != nil {
			return fmt.Errorf("catalog %s: key %q: %w", c.name, key, err)
		}
	}
	return nil
}

func checkMessage(m, en entry) error {
	if (m.Forms == nil) != (en.Forms == nil) {
		if en.Forms != nil {
			return errors.New("needs plural forms, like {\"one\": ..., \"other\": ...}")
		}
		return errors.New("is a single message in English, not plural forms")
	}
	if m.Forms != nil {
		if _, ok := m.Forms["other"]; !ok {
			return errors.New(`plural forms need "other"`)
		}
		for f := range m.Forms {
			if _, ok := pluralForms[f]; !ok {
				return fmt.Errorf("unknown plural form %q (zero, one, two, few, many, other)", f)
			}
		}
	}
	want := Verbs(en.texts()["other"] + en.Text)
	for _, text := range m.texts() {
		if got := Verbs(text); got != want {
			return fmt.Errorf("placeholders %q differ from English %q", got, want)
		}
	}
	return nil
}

// Verbs returns the fmt verbs of a message, sorted, as a string ("%d %s"):
// a translation may reorder them but must keep each.
func Verbs(text string) string {
	vs := verbRE.FindAllString(text, -1)
	vs = slices.DeleteFunc(vs, func(v string) bool { return v == "%%" })
	for i, v := range vs {
		// %[2]s is %s in another place.
		if j := strings.IndexByte(v, ']'); j > 0 {
			vs[i] = "%" + v[j+1:]
		}
	}
	sort.Strings(vs)
	return strings.Join(vs, " ")
}

// PluralForms returns the plural categories the language's rules give
// whole numbers, as CLDR names ("one", "other").
func PluralForms(t language.Tag) []string {
	seen := map[plural.Form]bool{}
	for n := range 1000 {
		seen[plural.Cardinal.MatchPlural(t, n, 0, 0, 0, 0)] = true
	}
	var forms []string
	for name, f := range pluralForms {
		if seen[f] {
			forms = append(forms, name)
		}
	}
	sort.Strings(forms)
	return forms
}
