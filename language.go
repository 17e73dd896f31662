package twofactor

import (
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/language"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-two-factor/caddy-two-factor/i18n"
)

// The pages' language: the embedded catalogs of package i18n, chosen per
// request from Accept-Language (or forced by language), with the
// operator's catalogs of messages_dir over them. The templates call
// {{t "key" args...}}; each offered language has its own copy of the
// templates, made at provisioning, whose t prints in that language.

// pages is the page templates of each offered language.
type pages struct {
	bundle *i18n.Bundle
	sets   map[*i18n.Printer]*template.Template
}

// baseTemplates are the embedded templates. They are only cloned, never
// executed: html/template cannot clone a template once it has run.
var baseTemplates = template.Must(template.New("").Funcs(pageFuncs(nil)).ParseFS(templatesFS, "templates/*.html"))

// defaultPages are the pages of a handler with no language option and
// no templates_dir, and of one that was not provisioned (as some unit
// tests build one): every embedded language, negotiated.
var defaultPages = sync.OnceValue(func() *pages {
	b, err := i18n.New(i18n.Options{})
	if err != nil {
		panic(err) // the embedded catalogs are tested
	}
	p, err := newPages(b, baseTemplates)
	if err != nil {
		panic(err)
	}
	return p
})

// newPages clones base once per offered language, with t bound to it.
func newPages(b *i18n.Bundle, base *template.Template) (*pages, error) {
	p := &pages{bundle: b, sets: make(map[*i18n.Printer]*template.Template)}
	for _, printer := range b.Printers() {
		set, err := base.Clone()
		if err != nil {
			return nil, err
		}
		p.sets[printer] = set.Funcs(pageFuncs(printer))
	}
	return p, nil
}

// provisionLanguages loads the catalogs, checks the operator's, and makes
// the page templates of each offered language. It runs after
// provisionBranding, whose templates_dir it translates too.
func (h *TwoFactor) provisionLanguages(repl *caddy.Replacer) error {
	opts := i18n.Options{
		Language:    repl.ReplaceKnown(h.Language, ""),
		MessagesDir: repl.ReplaceKnown(h.MessagesDir, ""),
	}
	for _, l := range h.Languages {
		opts.Languages = append(opts.Languages, repl.ReplaceKnown(l, ""))
	}
	if opts.Language == "" && len(opts.Languages) == 0 && opts.MessagesDir == "" && h.templates == nil {
		// The usual case: the embedded pages, shared by every handler and
		// config generation rather than built again at each (about 8 ms).
		h.pages = defaultPages()
		return nil
	}
	b, err := i18n.New(opts)
	if err != nil {
		return err
	}
	base := baseTemplates
	if h.templates != nil {
		base = h.templates
	}
	p, err := newPages(b, base)
	if err != nil {
		return fmt.Errorf("page templates: %w", err)
	}
	h.pages = p
	return nil
}

// checkLanguageTag tells a tag that cannot name a language, at parsing;
// whether a catalog has it is known only at provisioning.
func checkLanguageTag(s string) error {
	if isPlaceholder(s) {
		return nil
	}
	if _, err := language.Parse(s); err != nil {
		return fmt.Errorf("%q is not a language tag (like de or pt-BR): %w", s, err)
	}
	return nil
}

// languageWriter carries the language negotiated for a page request to
// render, which the page handlers call with the writer only.
type languageWriter struct {
	http.ResponseWriter
	printer *i18n.Printer
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *languageWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// withLanguage returns w carrying the language r asks for.
func (h *TwoFactor) withLanguage(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	return &languageWriter{ResponseWriter: w, printer: h.languagePages().bundle.Negotiate(r.Header.Get("Accept-Language"))}
}

func (h *TwoFactor) languagePages() *pages {
	if h.pages != nil {
		return h.pages
	}
	return defaultPages()
}

// pageTemplates returns the templates and printer for a page written to w.
func (h *TwoFactor) pageTemplates(w http.ResponseWriter) (*template.Template, *i18n.Printer) {
	p := h.languagePages()
	printer := p.bundle.Default()
	if lw, ok := w.(*languageWriter); ok && p.sets[lw.printer] != nil {
		printer = lw.printer
	}
	return p.sets[printer], printer
}

// translated is msg, a message the code hands over in English, in the
// language of the page written to w: for answers that are no page, like
// the passkey options' JSON errors.
func (h *TwoFactor) translated(w http.ResponseWriter, msg string) string {
	_, printer := h.pageTemplates(w)
	return printer.English(msg)
}

// pageFuncs are the template functions of the pages in printer's language.
// With a nil printer (for parsing only) t prints the key.
//
//	{{t "login.submit"}}                    a message
//	{{t "confirm.intro" (strong .Username)}} a message with a bold argument
func pageFuncs(printer *i18n.Printer) template.FuncMap {
	return template.FuncMap{
		"t": func(key string, args ...any) template.HTML {
			if printer == nil {
				return template.HTML(escapeText(key))
			}
			return translateHTML(printer, key, args)
		},
		"strong": func(s string) template.HTML {
			return template.HTML("<strong>" + escapeText(s) + "</strong>")
		},
	}
}

// checkingFuncs are pageFuncs for the test rendering of templates_dir: a
// message key no catalog has is an error, not a key shown to users.
func checkingFuncs(b *i18n.Bundle) template.FuncMap {
	funcs := pageFuncs(b.Default())
	t := funcs["t"].(func(string, ...any) template.HTML)
	funcs["t"] = func(key string, args ...any) (template.HTML, error) {
		if !b.Has(key) {
			return "", fmt.Errorf("no message %q in the catalogs (see i18n/messages/en.json)", key)
		}
		return t(key, args...), nil
	}
	return funcs
}

// Markers around the index of an HTML argument while a message is
// formatted: private-use characters no message contains.
const (
	markOpen  = "\ue000"
	markClose = "\ue001"
)

// translateHTML formats key with args and escapes the result as HTML
// text, except for the arguments that are already HTML (from strong).
func translateHTML(printer *i18n.Printer, key string, args []any) template.HTML {
	var htmlArgs []template.HTML
	for i, a := range args {
		switch a := a.(type) {
		case template.HTML:
			args[i] = markOpen + strconv.Itoa(len(htmlArgs)) + markClose
			htmlArgs = append(htmlArgs, a)
		case string:
			args[i] = markStripper.Replace(a) // no argument fakes a marker
		}
	}
	out := textEscaper.Replace(printer.T(key, args...))
	for i, h := range htmlArgs {
		out = strings.Replace(out, markOpen+strconv.Itoa(i)+markClose, string(h), 1)
	}
	return template.HTML(out)
}

// textEscaper escapes what HTML text must not hold. Quotes stay as they
// are, as in the templates' own text; html/template escapes them again
// where a message goes into an attribute.
var (
	textEscaper  = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	markStripper = strings.NewReplacer(markOpen, "", markClose, "")
)

func escapeText(s string) string { return textEscaper.Replace(markStripper.Replace(s)) }

// translateData puts the messages the code hands over in English (titles,
// errors, notices, waits, dates, device names) into the page's language.
// The page handlers still write English; once they give keys, this shrinks
// to nothing.
func translateData(p *i18n.Printer, data *pageData) {
	data.Lang = p.Lang()
	data.Title = p.English(data.Title)
	data.Error = p.English(data.Error)
	data.Notice = p.English(data.Notice)
	data.RetryAfter = p.English(data.RetryAfter)
	if data.Account == nil {
		return
	}
	view := *data.Account
	view.EnrolledAt = translateTime(p, view.EnrolledAt)
	view.Sessions = make([]sessionView, len(data.Account.Sessions))
	for i, s := range data.Account.Sessions {
		s.Created = translateTime(p, s.Created)
		s.LastSeen = translateTime(p, s.LastSeen)
		s.Device = p.English(s.Device)
		view.Sessions[i] = s
	}
	view.Passkeys = make([]passkeyView, len(data.Account.Passkeys))
	for i, pk := range data.Account.Passkeys {
		pk.Created = translateTime(p, pk.Created)
		pk.LastUsed = translateTime(p, pk.LastUsed)
		view.Passkeys[i] = pk
	}
	data.Account = &view
}

// englishTimeLayout is how account.go formats times.
const englishTimeLayout = "2 Jan 2006 15:04 UTC"

func translateTime(p *i18n.Printer, s string) string {
	t, err := time.Parse(englishTimeLayout, s)
	if err != nil {
		return s
	}
	return p.DateTime(t)
}
