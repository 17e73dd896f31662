package recovery_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-two-factor/caddy-two-factor/recovery"
)

const alphabet = "abcdefghijklmnopqrstuvwxyz234567"

var displayFormat = regexp.MustCompile(`^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$`)

func generate(t *testing.T, n int) ([]string, [][]byte) {
	t.Helper()
	codes, digests, err := recovery.Generate(n)
	if err != nil {
		t.Fatalf("Generate(%d): %v", n, err)
	}
	if len(codes) != n || len(digests) != n {
		t.Fatalf("Generate(%d) returned %d codes and %d digests", n, len(codes), len(digests))
	}
	return codes, digests
}

func mustParse(t *testing.T, s string) string {
	t.Helper()
	p, ok := recovery.Parse(s)
	if !ok {
		t.Fatalf("Parse(%q) failed", s)
	}
	return p
}

func TestGenerate(t *testing.T) {
	for _, n := range []int{0, 1, 10, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			codes, digests := generate(t, n)
			seen := make(map[string]bool, n)
			seenDigest := make(map[string]bool, n)
			for i, code := range codes {
				if !displayFormat.MatchString(code) {
					t.Fatalf("code %q is not in the form xxxx-xxxx-xxxx-xxxx", code)
				}
				if seen[code] {
					t.Fatalf("code %q generated twice", code)
				}
				seen[code] = true
				if seenDigest[string(digests[i])] {
					t.Fatalf("digest %x repeated", digests[i])
				}
				seenDigest[string(digests[i])] = true

				parsed := mustParse(t, code)
				if parsed != strings.ReplaceAll(code, "-", "") {
					t.Errorf("Parse(%q) = %q", code, parsed)
				}
				sum := sha256.Sum256([]byte(parsed))
				if !bytes.Equal(digests[i], sum[:]) {
					t.Errorf("digest %d = %x, want SHA-256 of %q = %x", i, digests[i], parsed, sum)
				}
				if got := recovery.Match(parsed, digests); got != i {
					t.Errorf("Match(code %d) = %d", i, got)
				}
			}
		})
	}
}

func TestGenerateUsesWholeAlphabet(t *testing.T) {
	// 100 codes hold 1600 characters; each of the 32 letters is missing from
	// them with probability (31/32)^1600, about 1e-22.
	codes, _ := generate(t, 100)
	all := strings.Join(codes, "")
	for _, c := range alphabet {
		if !strings.ContainsRune(all, c) {
			t.Errorf("character %q never appears in 100 codes", c)
		}
	}
}

func TestParse(t *testing.T) {
	const want = "k7qm2xva3cdehrtw"
	tests := []struct {
		name string
		in   string
		want string
		ok   bool
	}{
		{"display form", "k7qm-2xva-3cde-hrtw", want, true},
		{"bare", want, want, true},
		{"upper case", "K7QM-2XVA-3CDE-HRTW", want, true},
		{"mixed case", "K7qm-2XvA-3cDe-hRtW", want, true},
		{"spaces", "k7qm 2xva 3cde hrtw", want, true},
		{"surrounding spaces", "  k7qm-2xva-3cde-hrtw  ", want, true},
		{"odd dashes", "-k7-qm2x--va3cdeh-rtw-", want, true},
		{"all letters", "abcdefghijklmnop", "abcdefghijklmnop", true},
		{"all digits", "2345672345672345", "2345672345672345", true},
		{"64 bytes", strings.Repeat("-", 48) + want, want, true},
		{"65 bytes", strings.Repeat("-", 49) + want, "", false},
		{"empty", "", "", false},
		{"only dashes", "----", "", false},
		{"15 characters", "k7qm-2xva-3cde-hrt", "", false},
		{"17 characters", "k7qm-2xva-3cde-hrtwa", "", false},
		{"two codes", "k7qm-2xva-3cde-hrtw k7qm-2xva-3cde-hrtw", "", false},
		{"digit 0", "k7qm-2xva-3cde-hrt0", "", false},
		{"digit 1", "k7qm-2xva-3cde-hrt1", "", false},
		{"digit 8", "k7qm-2xva-3cde-hrt8", "", false},
		{"digit 9", "k7qm-2xva-3cde-hrt9", "", false},
		{"padding", "k7qm2xva3cdehrtw=", "", false},
		{"underscore", "k7qm_2xva_3cde_hrtw", "", false},
		{"tab", "k7qm\t2xva3cdehrtw", "", false},
		{"newline", "k7qm2xva3cdehrtw\n", "", false},
		{"NUL", "k7qm2xva3cdehrtw\x00", "", false},
		{"fullwidth letters", "ｋ７ｑｍ２ｘｖａ３ｃｄｅｈｒｔｗ", "", false},
		{"fullwidth dash", "k7qm－2xva－3cde－hrtw", "", false},
		{"en dash", "k7qm–2xva–3cde–hrtw", "", false},
		{"non-breaking space", "k7qm\u00a02xva3cdehrtw", "", false},
		{"dotless i upper-cases to I", "ık7qm2xva3cdehrt", "", false},
		{"Kelvin sign folds to k", "\u212a7qm2xva3cdehrtw", "", false},
		{"invalid UTF-8", "k7qm2xva3cdehrt\xff", "", false},
		{"10 KB", strings.Repeat("a", 10<<10), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := recovery.Parse(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Parse(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	codes, digests := generate(t, 5)
	parsed := make([]string, len(codes))
	for i, c := range codes {
		parsed[i] = mustParse(t, c)
	}
	unknown := mustParse(t, "aaaa-aaaa-aaaa-aaaa")
	if recovery.Match(unknown, digests) != -1 {
		t.Fatal("fixture collision: pick another unknown code")
	}
	short := make([][]byte, len(digests))
	for i, d := range digests {
		short[i] = d[:16]
	}
	tests := []struct {
		name    string
		code    string
		digests [][]byte
		want    int
	}{
		{"first", parsed[0], digests, 0},
		{"middle", parsed[2], digests, 2},
		{"last", parsed[4], digests, 4},
		{"unknown", unknown, digests, -1},
		{"no digests", parsed[0], nil, -1},
		{"empty digests", parsed[0], [][]byte{}, -1},
		{"nil entries", parsed[0], [][]byte{nil, nil}, -1},
		{"truncated digests", parsed[1], short, -1},
		{"after a used code was removed", parsed[3], append(append([][]byte{}, digests[:2]...), digests[3:]...), 2},
		{"duplicate digests give the first", parsed[1], [][]byte{digests[0], digests[1], digests[1]}, 1},
		// The display form is not what is hashed: callers must Parse first.
		{"unparsed display form", codes[0], digests, -1},
		{"upper case is not parsed", strings.ToUpper(parsed[0]), digests, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := recovery.Match(tt.code, tt.digests); got != tt.want {
				t.Errorf("Match(%q) = %d, want %d", tt.code, got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"k7qm-2xva-3cde-hrtw", "K7QM 2XVA 3CDE HRTW", "k7qm-2xva-3cde-hrt0", "k7qm-2xva-3cde-hrt",
		"ｋ７ｑｍ２ｘｖａ３ｃｄｅｈｒｔｗ", "", strings.Repeat("-", 48) + "abcdefghijklmnop",
		strings.Repeat("-", 49) + "abcdefghijklmnop", "\u212a7qm2xva3cdehrtw", "abcdefghijklmnop\x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := recovery.Parse(s)
		if !ok {
			if got != "" {
				t.Fatalf("Parse(%q) = %q, false", s, got)
			}
			return
		}
		if len(got) != recovery.Length {
			t.Fatalf("Parse(%q) = %q: %d characters, want %d", s, got, len(got), recovery.Length)
		}
		for i := 0; i < len(got); i++ {
			if !strings.ContainsRune(alphabet, rune(got[i])) {
				t.Fatalf("Parse(%q) = %q: %q is not in the alphabet", s, got, got[i])
			}
		}
		// Reference: the input is the result, in any case, with dashes and
		// spaces anywhere, and no longer than 64 bytes.
		if len(s) > 64 {
			t.Fatalf("Parse accepted %d bytes", len(s))
		}
		if stripped := strings.NewReplacer("-", "", " ", "").Replace(s); strings.ToLower(stripped) != got || !isASCII(stripped) {
			t.Fatalf("Parse(%q) = %q, which is not the input without dashes and spaces", s, got)
		}
		// Parsing is idempotent and the result is what Generate hashes.
		if again, ok := recovery.Parse(got); !ok || again != got {
			t.Fatalf("Parse(Parse(%q)) = %q, %v", s, again, ok)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
