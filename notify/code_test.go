package notify_test

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddy-two-factor/caddy-two-factor/notify"
)

var eightDigits = regexp.MustCompile(`^[0-9]{8}$`)

func TestNewCode(t *testing.T) {
	seen := map[string]bool{}
	var firstDigits [10]int
	for range 500 {
		c, err := notify.NewCode()
		if err != nil {
			t.Fatal(err)
		}
		if !eightDigits.MatchString(c) {
			t.Fatalf("code %q is not 8 digits", c)
		}
		seen[c] = true
		firstDigits[c[0]-'0']++
	}
	if len(seen) < 495 {
		t.Errorf("500 codes have only %d distinct values", len(seen))
	}
	// Leading zeros are kept: each first digit turns up (the chance that
	// one does not in 500 draws is below 10^-20).
	for d, n := range firstDigits {
		if n == 0 {
			t.Errorf("no code starts with %d", d)
		}
	}
}

func TestCheckCode(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	digest := notify.CodeDigest(key, "alice", "01234567")
	tests := []struct {
		name  string
		key   []byte
		user  string
		input string
		want  bool
	}{
		{"right", key, "alice", "01234567", true},
		{"grouped", key, "alice", "0123 4567", true},
		{"dashed", key, "alice", "0123-4567", true},
		{"wrong", key, "alice", "01234568", false},
		{"other user", key, "bob", "01234567", false},
		{"other key", []byte("another key"), "alice", "01234567", false},
		{"short", key, "alice", "1234567", false},
		{"long", key, "alice", "012345678", false},
		{"letters", key, "alice", "0123456a", false},
		{"empty", key, "alice", "", false},
		{"full-width digits", key, "alice", "０１２３４５６７", false},
	}
	for _, tt := range tests {
		if got := notify.CheckCode(tt.key, tt.user, tt.input, digest); got != tt.want {
			t.Errorf("%s: CheckCode(%q, %q) = %v, want %v", tt.name, tt.user, tt.input, got, tt.want)
		}
	}
	if notify.CheckCode(key, "alice", "01234567", nil) {
		t.Error("CheckCode accepted a missing digest")
	}
}

func TestParseAndMaskAddress(t *testing.T) {
	tests := []struct {
		in     string
		want   string // "" for invalid
		masked string
	}{
		{"alice@example.com", "alice@example.com", "a***@example.com"},
		{"Alice Liddell <alice@example.com>", "alice@example.com", "a***@example.com"},
		{"a@example.com", "a@example.com", "a***@example.com"},
		{"élodie@exemple.fr", "élodie@exemple.fr", "é***@exemple.fr"},
		{"alice@localhost", "alice@localhost", "a***@localhost"},
		{"", "", ""},
		{"alice", "", ""},
		{"@example.com", "", ""},
		{"alice@", "", ""},
		{"alice@example.com\r\nBcc: evil@example.net", "", ""},
		{"alice@example.com\n", "", ""},
		{"ali\x00ce@example.com", "", ""},
		{`"a b"@example.com`, "", ""},
		{`"a@b"@example.com`, "", ""},
		{"alice@example.com, bob@example.com", "", ""},
		{strings.Repeat("a", 250) + "@example.com", "", ""},
	}
	for _, tt := range tests {
		got, err := notify.ParseAddress(tt.in)
		if (err == nil) != (tt.want != "") || got != tt.want {
			t.Errorf("ParseAddress(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if m := notify.MaskAddress(tt.in); m != tt.masked {
			t.Errorf("MaskAddress(%q) = %q, want %q", tt.in, m, tt.masked)
		}
	}
}

func FuzzAddress(f *testing.F) {
	for _, s := range []string{
		"alice@example.com", "Alice <alice@example.com>", "élodie@exemple.fr",
		"a@b", `"a b"@example.com`, "alice@example.com\r\nBcc: x@y", "=?utf-8?q?x?= <a@b.c>",
		"<a@b.c>", "a@[127.0.0.1]", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addr, err := notify.ParseAddress(s)
		masked := notify.MaskAddress(s)
		if err != nil {
			if masked != "" {
				t.Fatalf("MaskAddress(%q) = %q for an invalid address", s, masked)
			}
			return
		}
		if strings.ContainsAny(addr, "\r\n\x00") || strings.Count(addr, "@") != 1 || len(addr) > 254 {
			t.Fatalf("ParseAddress(%q) = %q", s, addr)
		}
		if again, err := notify.ParseAddress(addr); err != nil || again != addr {
			t.Fatalf("ParseAddress(%q) = %q, but that parses to %q, %v", s, addr, again, err)
		}
		local, domain, _ := strings.Cut(addr, "@")
		first, _ := utf8.DecodeRuneInString(local)
		// Of the local part, only its first character shows.
		if want := string(first) + "***@" + domain; masked != want {
			t.Fatalf("MaskAddress(%q) = %q, want %q", s, masked, want)
		}
	})
}
