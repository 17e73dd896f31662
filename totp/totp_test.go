package totp_test

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"

	"github.com/caddy-two-factor/caddy-two-factor/totp"
)

// The seeds of RFC 6238 Appendix B: the ASCII digits repeated to the
// algorithm's output size.
var (
	seedSHA1   = []byte("12345678901234567890")
	seedSHA256 = []byte("12345678901234567890123456789012")
	seedSHA512 = []byte("1234567890123456789012345678901234567890123456789012345678901234")
)

func TestCodeRFC6238Vectors(t *testing.T) {
	tests := []struct {
		unix      int64
		algorithm otp.Algorithm
		secret    []byte
		want      string
	}{
		{59, otp.AlgorithmSHA1, seedSHA1, "94287082"},
		{59, otp.AlgorithmSHA256, seedSHA256, "46119246"},
		{59, otp.AlgorithmSHA512, seedSHA512, "90693936"},
		{1111111109, otp.AlgorithmSHA1, seedSHA1, "07081804"},
		{1111111109, otp.AlgorithmSHA256, seedSHA256, "68084774"},
		{1111111109, otp.AlgorithmSHA512, seedSHA512, "25091201"},
		{1111111111, otp.AlgorithmSHA1, seedSHA1, "14050471"},
		{1111111111, otp.AlgorithmSHA256, seedSHA256, "67062674"},
		{1111111111, otp.AlgorithmSHA512, seedSHA512, "99943326"},
		{1234567890, otp.AlgorithmSHA1, seedSHA1, "89005924"},
		{1234567890, otp.AlgorithmSHA256, seedSHA256, "91819424"},
		{1234567890, otp.AlgorithmSHA512, seedSHA512, "93441116"},
		{2000000000, otp.AlgorithmSHA1, seedSHA1, "69279037"},
		{2000000000, otp.AlgorithmSHA256, seedSHA256, "90698825"},
		{2000000000, otp.AlgorithmSHA512, seedSHA512, "38618901"},
		{20000000000, otp.AlgorithmSHA1, seedSHA1, "65353130"},
		{20000000000, otp.AlgorithmSHA256, seedSHA256, "77737706"},
		{20000000000, otp.AlgorithmSHA512, seedSHA512, "47863826"},
	}
	for _, tt := range tests {
		t.Run(tt.algorithm.String()+"/"+time.Unix(tt.unix, 0).UTC().Format(time.RFC3339), func(t *testing.T) {
			step := totp.Step(time.Unix(tt.unix, 0))
			if want := uint64(tt.unix) / 30; step != want {
				t.Fatalf("Step(%d) = %d, want %d", tt.unix, step, want)
			}
			got, err := totp.Code(tt.secret, step, tt.algorithm, otp.DigitsEight)
			if err != nil {
				t.Fatalf("Code: %v", err)
			}
			if got != tt.want {
				t.Errorf("Code(step %d) = %q, want %q", step, got, tt.want)
			}
			// The six-digit code is the low six digits of the same value.
			six, err := totp.Code(tt.secret, step, tt.algorithm, otp.DigitsSix)
			if err != nil {
				t.Fatalf("Code six digits: %v", err)
			}
			if six != tt.want[2:] {
				t.Errorf("six-digit Code = %q, want %q", six, tt.want[2:])
			}
		})
	}
}

func TestCodeAt(t *testing.T) {
	now := time.Unix(1111111109, 0)
	got, err := totp.CodeAt(seedSHA1, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := "081804"; got != want {
		t.Errorf("CodeAt = %q, want %q", got, want)
	}
}

func TestStep(t *testing.T) {
	tests := []struct {
		t    time.Time
		want uint64
	}{
		{time.Unix(0, 0), 0},
		{time.Unix(29, 999999999), 0},
		{time.Unix(30, 0), 1},
		{time.Unix(59, 0), 1},
		{time.Unix(60, 0), 2},
		{time.Unix(1111111109, 0), 37037036},
		{time.Unix(20000000000, 0), 666666666},
	}
	for _, tt := range tests {
		if got := totp.Step(tt.t); got != tt.want {
			t.Errorf("Step(%v) = %d, want %d", tt.t.UTC(), got, tt.want)
		}
	}
}

func TestParseCode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		ok   bool
	}{
		{"plain", "123456", "123456", true},
		{"leading zeros", "000001", "000001", true},
		{"grouped", "123 456", "123456", true},
		{"surrounding and inner spaces", " 123 456 ", "123456", true},
		{"many spaces", "  1 2 3 4 5 6  ", "123456", true},
		{"exactly 32 bytes", strings.Repeat(" ", 26) + "123456", "123456", true},
		{"33 bytes", strings.Repeat(" ", 27) + "123456", "", false},
		{"empty", "", "", false},
		{"only spaces", "      ", "", false},
		{"five digits", "12345", "", false},
		{"seven digits", "1234567", "", false},
		{"plus sign", "+12345", "", false},
		{"plus sign six digits", "+123456", "", false},
		{"minus sign", "-123456", "", false},
		{"dash grouping", "123-456", "", false},
		{"letters", "12345a", "", false},
		{"hex", "0x1234", "", false},
		{"fullwidth digits", "１２３４５６", "", false},
		{"arabic-indic digits", "١٢٣٤٥٦", "", false},
		{"NUL inside", "123\x00456", "", false},
		{"trailing NUL", "123456\x00", "", false},
		{"tab", "123\t456", "", false},
		{"leading tab", "\t123456", "", false},
		{"newline", "123456\n", "", false},
		{"non-breaking space", "123\u00a0456", "", false},
		{"10 KB of digits", strings.Repeat("1", 10<<10), "", false},
		{"10 KB of spaces around a code", strings.Repeat(" ", 5<<10) + "123456" + strings.Repeat(" ", 5<<10), "", false},
		{"invalid UTF-8", "123\xff456", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := totp.ParseCode(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ParseCode(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// codeAt returns the standard code of secret at step, failing the test on
// error.
func codeAt(t *testing.T, secret []byte, step uint64) string {
	t.Helper()
	code, err := totp.Code(secret, step, otp.AlgorithmSHA1, otp.DigitsSix)
	if err != nil {
		t.Fatalf("Code(step %d): %v", step, err)
	}
	return code
}

// distinctCodes fails the test unless the codes of secret at base+offset
// for every offset are pairwise different, so that a test which expects a
// code to be rejected cannot pass or fail by a coincidental collision.
func distinctCodes(t *testing.T, secret []byte, base uint64, offsets ...int) {
	t.Helper()
	seen := make(map[string]int)
	for _, off := range offsets {
		c := codeAt(t, secret, base+uint64(off))
		if prev, dup := seen[c]; dup {
			t.Fatalf("fixture codes collide at offsets %d and %d; pick another secret", prev, off)
		}
		seen[c] = off
	}
}

func TestVerify(t *testing.T) {
	secret := seedSHA1
	// now is 10 s into its step.
	now := time.Unix(1_700_000_010, 0)
	current := totp.Step(now)
	distinctCodes(t, secret, current, -3, -2, -1, 0, 1, 2, 3)

	tests := []struct {
		name     string
		offset   int    // step of the code, relative to now's step
		notAfter uint64 // last accepted step
		ok       bool
	}{
		{"current step", 0, 0, true},
		{"previous step", -1, 0, true},
		{"next step", 1, 0, true},
		{"two steps back", -2, 0, false},
		{"two steps ahead", 2, 0, false},
		{"three steps back", -3, 0, false},
		{"three steps ahead", 3, 0, false},
		{"replay of current step", 0, current, false},
		{"replay of previous step", -1, current - 1, false},
		{"older than last accepted", -1, current, false},
		{"next step after current accepted", 1, current, true},
		{"current after previous accepted", 0, current - 1, true},
		{"last accepted is in the future", 1, current + 1, false},
		{"notAfter max", 0, ^uint64(0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantStep := current + uint64(tt.offset)
			code := codeAt(t, secret, wantStep)
			step, ok := totp.Verify(secret, code, now, tt.notAfter)
			if ok != tt.ok {
				t.Fatalf("Verify(code of step %+d, notAfter %d) ok = %v, want %v", tt.offset, tt.notAfter, ok, tt.ok)
			}
			if ok && step != wantStep {
				t.Errorf("Verify matched step %d, want %d", step, wantStep)
			}
			if !ok && step != 0 {
				t.Errorf("Verify returned step %d with ok = false, want 0", step)
			}
		})
	}
}

func TestVerifyRejectsMalformedCodes(t *testing.T) {
	secret := seedSHA1
	now := time.Unix(1_700_000_010, 0)
	code := codeAt(t, secret, totp.Step(now))
	for _, bad := range []string{"", code[:5], code + "0", " " + code, code[:3] + " " + code[3:], "000000" + code} {
		if _, ok := totp.Verify(secret, bad, now, 0); ok {
			t.Errorf("Verify(%q) accepted a malformed code (valid code is %q)", bad, code)
		}
	}
	other := []byte("another secret of 20")
	if _, ok := totp.Verify(other, code, now, 0); ok && codeAt(t, other, totp.Step(now)) != code {
		t.Errorf("Verify accepted a code made with another secret")
	}
}

func TestVerifyStepBoundaries(t *testing.T) {
	secret := seedSHA1

	t.Run("the code of a step is valid for its whole period", func(t *testing.T) {
		start := time.Unix(1_700_000_010, 0).Truncate(totp.Period)
		step := totp.Step(start)
		code := codeAt(t, secret, step)
		for _, now := range []time.Time{start, start.Add(totp.Period - time.Nanosecond)} {
			if got, ok := totp.Verify(secret, code, now, 0); !ok || got != step {
				t.Errorf("at %v: Verify = %d, %v; want %d, true", now.UTC(), got, ok, step)
			}
		}
		// Skew keeps it valid for one more step on each side, then no more.
		distinctCodes(t, secret, step, -2, -1, 0, 1, 2)
		for _, tt := range []struct {
			now time.Time
			ok  bool
		}{
			{start.Add(-totp.Period), true},
			{start.Add(-totp.Period - time.Nanosecond), false},
			{start.Add(2*totp.Period - time.Nanosecond), true},
			{start.Add(2 * totp.Period), false},
		} {
			if _, ok := totp.Verify(secret, code, tt.now, 0); ok != tt.ok {
				t.Errorf("at %v: Verify ok = %v, want %v", tt.now.UTC(), ok, tt.ok)
			}
		}
	})

	t.Run("step zero", func(t *testing.T) {
		epoch := time.Unix(0, 0)
		if s := totp.Step(epoch); s != 0 {
			t.Fatalf("Step(epoch) = %d", s)
		}
		wrapped := ^uint64(0) // step 0 - 1, if the skew window underflowed
		distinctCodes(t, secret, 0, 0, 1, 2)
		if codeAt(t, secret, wrapped) == codeAt(t, secret, 0) || codeAt(t, secret, wrapped) == codeAt(t, secret, 1) {
			t.Fatal("fixture codes collide; pick another secret")
		}
		if step, ok := totp.Verify(secret, codeAt(t, secret, 1), epoch, 0); !ok || step != 1 {
			t.Errorf("next step at epoch: Verify = %d, %v; want 1, true", step, ok)
		}
		if _, ok := totp.Verify(secret, codeAt(t, secret, wrapped), epoch, 0); ok {
			t.Error("Verify accepted the code of step 2^64-1 at step 0: the skew window wrapped around")
		}
		if _, ok := totp.Verify(secret, codeAt(t, secret, 2), epoch, 0); ok {
			t.Error("Verify accepted step 2 at step 0")
		}
		// Step 0 itself is at or before every possible notAfter.
		if _, ok := totp.Verify(secret, codeAt(t, secret, 0), epoch, 0); ok {
			t.Error("Verify accepted step 0 although notAfter is 0")
		}
	})
}

func TestVerifyEachCodeOnce(t *testing.T) {
	// The way callers use Verify: feed back the matched step as notAfter.
	secret := seedSHA256[:20]
	now := time.Unix(1_800_000_000, 0)
	code := codeAt(t, secret, totp.Step(now))
	last, ok := totp.Verify(secret, code, now, 0)
	if !ok {
		t.Fatal("first use rejected")
	}
	for _, later := range []time.Time{now, now.Add(totp.Period / 2), now.Add(totp.Period)} {
		if _, ok := totp.Verify(secret, code, later, last); ok {
			t.Errorf("code reused at %v after it was accepted", later.UTC())
		}
	}
}

func TestNewSecret(t *testing.T) {
	const n = 32
	seen := make(map[string]bool, n)
	for range n {
		s, err := totp.NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 20 {
			t.Fatalf("len(NewSecret()) = %d, want 20", len(s))
		}
		if bytes.Equal(s, make([]byte, len(s))) {
			t.Fatal("NewSecret returned all zeros")
		}
		if seen[string(s)] {
			t.Fatalf("NewSecret returned %x twice", s)
		}
		seen[string(s)] = true
	}
}

func TestEncodeSecret(t *testing.T) {
	tests := []struct {
		in   []byte
		want string
	}{
		{nil, ""},
		{[]byte("12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"},
		{[]byte("f"), "MY"}, // unpadded
		{[]byte("foobar"), "MZXW6YTBOI"},
	}
	for _, tt := range tests {
		if got := totp.EncodeSecret(tt.in); got != tt.want {
			t.Errorf("EncodeSecret(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestURI(t *testing.T) {
	secret := []byte("12345678901234567890")
	tests := []struct {
		name, issuer, account string
	}{
		{"simple", "Example", "alice"},
		{"email account", "Example Corp", "alice@example.com"},
		{"reserved characters", "A&B=C?", "bob/x#y"},
		{"ampersand and spaces", "Smith & Sons", "alice"},
		{"plus signs", "C++ Corp", "c+d@example.com"},
		{"percent", "100% Corp", "a%20b"},
		{"unicode", "Ünïcode", "зоя"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := totp.URI(tt.issuer, tt.account, secret)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("url.Parse(%q): %v", raw, err)
			}
			if u.Scheme != "otpauth" || u.Host != "totp" {
				t.Errorf("URI %q: scheme %q host %q, want otpauth://totp", raw, u.Scheme, u.Host)
			}
			if want := "/" + tt.issuer + ":" + tt.account; u.Path != want {
				t.Errorf("URI %q: label %q, want %q", raw, u.Path, want)
			}
			q := u.Query()
			want := map[string]string{
				"secret":    totp.EncodeSecret(secret),
				"issuer":    tt.issuer,
				"algorithm": "SHA1",
				"digits":    "6",
				"period":    "30",
			}
			for k, v := range want {
				if got := q.Get(k); got != v {
					t.Errorf("URI %q: %s = %q, want %q", raw, k, got, v)
				}
			}
			if len(q) != len(want) {
				t.Errorf("URI %q has query parameters %v, want only %v", raw, q, want)
			}
			if strings.Contains(u.RawQuery, "+") {
				t.Errorf("URI %q: query has a +, which some apps show literally; want %%20 for spaces", raw)
			}
			// The library that authenticator-side code uses reads it back.
			key, err := otp.NewKeyFromURL(raw)
			if err != nil {
				t.Fatalf("otp.NewKeyFromURL: %v", err)
			}
			if key.Issuer() != tt.issuer || key.Secret() != totp.EncodeSecret(secret) || key.Period() != 30 ||
				key.Digits() != otp.DigitsSix || key.Algorithm() != otp.AlgorithmSHA1 || key.Type() != "totp" {
				t.Errorf("otp.NewKeyFromURL(%q) = issuer %q secret %q period %d digits %v algorithm %v type %q",
					raw, key.Issuer(), key.Secret(), key.Period(), key.Digits(), key.Algorithm(), key.Type())
			}
		})
	}
}

func TestURIErrors(t *testing.T) {
	secret := []byte("12345678901234567890")
	tests := []struct {
		name, issuer, account string
		secret                []byte
		is                    error
	}{
		{"no issuer", "", "alice", secret, otp.ErrGenerateMissingIssuer},
		{"no account", "Example", "", secret, otp.ErrGenerateMissingAccountName},
		// Without this check the library makes up a random secret, and the
		// QR code would not match the stored one.
		{"nil secret", "Example", "alice", nil, nil},
		{"empty secret", "Example", "alice", []byte{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := totp.URI(tt.issuer, tt.account, tt.secret)
			if err == nil {
				t.Fatalf("URI(%q, %q, %x) = %q, want an error", tt.issuer, tt.account, tt.secret, got)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("URI error %v does not wrap %v", err, tt.is)
			}
		})
	}
}

func TestGroupSecret(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"A", "A"},
		{"ABCD", "ABCD"},
		{"ABCDE", "ABCD E"},
		{"ABCDEFGH", "ABCD EFGH"},
		{"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"},
	}
	for _, tt := range tests {
		if got := totp.GroupSecret(tt.in); got != tt.want {
			t.Errorf("GroupSecret(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if back := strings.ReplaceAll(totp.GroupSecret(tt.in), " ", ""); back != tt.in {
			t.Errorf("GroupSecret(%q) without spaces = %q", tt.in, back)
		}
	}
}

func FuzzParseCode(f *testing.F) {
	for _, seed := range []string{
		"123456", " 123 456 ", "+12345", "12345", "1234567", "１２３４５６",
		"123\x00456", "123\t456", "", "000000", strings.Repeat(" ", 26) + "123456",
		strings.Repeat(" ", 27) + "123456", "12345\u0660",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := totp.ParseCode(s)
		if !ok {
			if got != "" {
				t.Fatalf("ParseCode(%q) = %q, false; want an empty string", s, got)
			}
		} else {
			if len(got) != totp.Digits {
				t.Fatalf("ParseCode(%q) = %q: not %d bytes", s, got, totp.Digits)
			}
			for i := 0; i < len(got); i++ {
				if got[i] < '0' || got[i] > '9' {
					t.Fatalf("ParseCode(%q) = %q: not ASCII digits", s, got)
				}
			}
		}
		// Reference: at most 32 bytes, of ASCII spaces and exactly six
		// ASCII digits, which are the result in order.
		wantOK := len(s) <= 32 && strings.Trim(s, " 0123456789") == "" &&
			len(strings.ReplaceAll(s, " ", "")) == totp.Digits && !strings.ContainsFunc(s, func(r rune) bool {
			return r != ' ' && (r < '0' || r > '9')
		})
		if ok != wantOK {
			t.Fatalf("ParseCode(%q) ok = %v, want %v", s, ok, wantOK)
		}
		if ok && got != strings.ReplaceAll(s, " ", "") {
			t.Fatalf("ParseCode(%q) = %q, want the digits of the input", s, got)
		}
	})
}
