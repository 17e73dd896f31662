package i18n

import (
	"time"

	"golang.org/x/text/language"
)

// dateTimeLayouts are the layouts (Go's reference time) of a date and time
// in each embedded language, in UTC as the pages show it. x/text formats
// no dates, and the pages need only this one form. A language without a
// layout gets ISO 8601's.
var dateTimeLayouts = map[string]string{
	"en":      "2 Jan 2006 15:04 UTC",
	"de":      "2.1.2006, 15:04 UTC",
	"fr":      "02/01/2006 15:04 UTC",
	"es":      "2/1/2006, 15:04 UTC",
	"it":      "2/1/2006, 15:04 UTC",
	"nl":      "2-1-2006 15:04 UTC",
	"pt-BR":   "02/01/2006, 15:04 UTC",
	"pl":      "2.01.2006, 15:04 UTC",
	"ja":      "2006年1月2日 15:04 UTC",
	"zh-Hans": "2006年1月2日 15:04 UTC",
}

// isoLayout is the layout of a language without its own.
const isoLayout = "2006-01-02 15:04 UTC"

// layoutFor returns the date and time layout of t or of its base language.
func layoutFor(t language.Tag) string {
	if l, ok := dateTimeLayouts[t.String()]; ok {
		return l
	}
	base, _ := t.Base()
	if l, ok := dateTimeLayouts[base.String()]; ok {
		return l
	}
	return isoLayout
}

// DateTime formats a moment, in UTC, as the language writes it.
func (p *Printer) DateTime(t time.Time) string {
	return t.UTC().Format(layoutFor(p.tag))
}

// Duration says how long a wait is: in seconds below a minute, else in
// whole minutes, rounded up.
func (p *Printer) Duration(d time.Duration) string {
	if d < time.Minute {
		return p.T("duration.seconds", int(d/time.Second))
	}
	return p.T("duration.minutes", int((d+time.Minute-1)/time.Minute))
}
