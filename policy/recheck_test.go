package policy

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

func TestRecheckValidate(t *testing.T) {
	for _, tt := range []struct {
		r  Recheck
		ok bool
	}{
		{Recheck{}, true},
		{Recheck{Min: 3 * time.Hour, Max: 6 * time.Hour}, true},
		{Recheck{Min: time.Hour, Max: time.Hour}, true},
		{Recheck{Min: 6 * time.Hour, Max: 3 * time.Hour}, false},
		{Recheck{Min: 0, Max: time.Hour}, false},
		{Recheck{Min: -time.Hour, Max: time.Hour}, false},
		{Recheck{Min: time.Hour, Max: 0}, false},
	} {
		if err := tt.r.Validate(); (err == nil) != tt.ok {
			t.Errorf("%v: Validate = %v, want ok %v", tt.r, err, tt.ok)
		}
	}
}

// TestRecheckDrawIsUniform draws deadlines from a seeded source: all lie
// within [min, max], both ends are approached, and each tenth of the range
// gets its share (the seed makes the counts the same at every run; the
// bounds would fail a draw biased by a tenth).
func TestRecheckDrawIsUniform(t *testing.T) {
	r := Recheck{Min: 3 * time.Hour, Max: 6 * time.Hour}
	rnd := seeded(3)
	const draws, buckets = 20000, 10
	var counts [buckets]int
	lo, hi := r.Max, r.Min
	var sum float64
	for range draws {
		at, err := r.Draw(now, rnd)
		if err != nil {
			t.Fatal(err)
		}
		d := at.Sub(now)
		if d < r.Min || d > r.Max {
			t.Fatalf("drew %v, outside [%v, %v]", d, r.Min, r.Max)
		}
		lo, hi = min(lo, d), max(hi, d)
		sum += float64(d)
		counts[min(int(float64(d-r.Min)/float64(r.Max-r.Min)*buckets), buckets-1)]++
	}
	if lo > r.Min+time.Minute || hi < r.Max-time.Minute {
		t.Errorf("draws spanned [%v, %v], want close to both ends", lo, hi)
	}
	if mean := time.Duration(sum / draws); math.Abs(float64(mean-4*time.Hour-30*time.Minute)) > float64(2*time.Minute) {
		t.Errorf("mean draw %v, want about 4h30m", mean)
	}
	for i, n := range counts {
		if want := draws / buckets; n < want*9/10 || n > want*11/10 {
			t.Errorf("tenth %d got %d draws, want about %d", i, n, want)
		}
	}
}

func TestRecheckDrawEdges(t *testing.T) {
	fixed := Recheck{Min: time.Hour, Max: time.Hour}
	if at, err := fixed.Draw(now, seeded(4)); err != nil || !at.Equal(now.Add(time.Hour)) {
		t.Errorf("min = max: %v, %v", at, err)
	}
	if _, err := (Recheck{Min: time.Hour, Max: 2 * time.Hour}).Draw(now, failing{}); !errors.Is(err, errNoRandom) {
		t.Errorf("failing source: %v", err)
	}
	if _, err := (Recheck{Min: time.Hour, Max: 2 * time.Hour}).Draw(now, bytes.NewReader([]byte{1, 2, 3})); err == nil {
		t.Error("a source that ran dry gave a deadline")
	}
	// A nil source is crypto/rand's.
	if at, err := (Recheck{Min: time.Hour, Max: 2 * time.Hour}).Draw(now, nil); err != nil || at.Before(now.Add(time.Hour)) || at.After(now.Add(2*time.Hour)) {
		t.Errorf("crypto/rand: %v, %v", at, err)
	}
}

func TestUniformRejectsTheSurplus(t *testing.T) {
	// In [0, 2]: m = 3, and 2^64 mod 3 = 1, so a draw of 0 is rejected
	// and the next one, 4, gives 4 mod 3 = 1.
	src := bytes.NewReader([]byte{0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0})
	if v, err := uniform(src, 2); err != nil || v != 1 {
		t.Errorf("uniform = %d, %v; want 1", v, err)
	}
	all := bytes.NewReader(bytes.Repeat([]byte{0xff}, 8))
	if v, err := uniform(all, math.MaxUint64); err != nil || v != math.MaxUint64 {
		t.Errorf("the whole range: %d, %v", v, err)
	}
	if v, err := uniform(bytes.NewReader(make([]byte, 8)), 0); err != nil || v != 0 {
		t.Errorf("[0, 0]: %d, %v", v, err)
	}
}

func TestRecheckDue(t *testing.T) {
	r := Recheck{Min: 3 * time.Hour, Max: 6 * time.Hour}
	for _, tt := range []struct {
		name string
		r    Recheck
		s    store.Session
		want bool
	}{
		{"off", Recheck{}, store.Session{}, false},
		{"before the deadline", r, store.Session{ConfirmedAt: now.Add(-time.Hour), RecheckAt: now.Add(time.Nanosecond)}, false},
		{"at the deadline", r, store.Session{ConfirmedAt: now.Add(-time.Hour), RecheckAt: now}, true},
		{"after it", r, store.Session{ConfirmedAt: now.Add(-time.Hour), RecheckAt: now.Add(-time.Hour)}, true},
		{"no deadline (from before re-checks)", r, store.Session{ConfirmedAt: now}, true},
		{"max lowered below the drawn deadline", r, store.Session{ConfirmedAt: now.Add(-6 * time.Hour), RecheckAt: now.Add(time.Hour)}, true},
		{"remembered: measured from the start", r, store.Session{Created: now.Add(-6 * time.Hour), RecheckAt: now.Add(time.Hour)}, true},
		{"remembered, within max", r, store.Session{Created: now.Add(-time.Hour), RecheckAt: now.Add(time.Hour)}, false},
	} {
		if got := tt.r.Due(&tt.s, now); got != tt.want {
			t.Errorf("%s: Due = %v, want %v", tt.name, got, tt.want)
		}
	}
}
