package totp_test

import (
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/totp"
)

// BenchmarkVerify is the cost of checking one code at confirm: three
// HMAC-SHA1 steps, all computed whatever matches.
func BenchmarkVerify(b *testing.B) {
	secret, err := totp.NewSecret()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	code, err := totp.CodeAt(secret, now)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, ok := totp.Verify(secret, code, now, 0); !ok {
			b.Fatal("code refused")
		}
	}
}
