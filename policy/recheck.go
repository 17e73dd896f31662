package policy

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Recheck is the recheck option: each confirmation of a second factor
// draws a deadline uniformly between Min and Max after it, and once it has
// passed the session must give a second factor again. The zero Recheck is
// off.
type Recheck struct {
	Min, Max time.Duration
}

// Enabled reports whether re-checks are on.
func (r Recheck) Enabled() bool { return r.Min != 0 || r.Max != 0 }

// Validate checks that an enabled Recheck has 0 < Min <= Max.
func (r Recheck) Validate() error {
	if !r.Enabled() {
		return nil
	}
	if r.Min <= 0 || r.Max <= 0 {
		return fmt.Errorf("recheck %v %v: both durations must be positive", r.Min, r.Max)
	}
	if r.Min > r.Max {
		return fmt.Errorf("recheck %v %v: the minimum is above the maximum", r.Min, r.Max)
	}
	return nil
}

// Draw returns a deadline drawn uniformly from [from+Min, from+Max], to
// the nanosecond, with randomness from rnd (crypto/rand when nil). A
// deadline an onlooker cannot predict is the point: a stolen session
// cannot be timed to end before the next check.
func (r Recheck) Draw(from time.Time, rnd io.Reader) (time.Time, error) {
	n, err := uniform(orCrypto(rnd), uint64(r.Max-r.Min))
	if err != nil {
		return time.Time{}, fmt.Errorf("drawing a re-check deadline: %w", err)
	}
	return from.Add(r.Min + time.Duration(n)), nil
}

// Due reports whether s must give a second factor again at now. A session
// without a deadline (from before re-checks were turned on) is due, once;
// so is one whose deadline lies further than Max from its last
// confirmation (or, never confirmed, from its start), as after Max was
// lowered.
func (r Recheck) Due(s *store.Session, now time.Time) bool {
	if !r.Enabled() {
		return false
	}
	if s.RecheckAt.IsZero() || !now.Before(s.RecheckAt) {
		return true
	}
	from := s.ConfirmedAt
	if from.IsZero() {
		from = s.Created
	}
	return now.Sub(from) >= r.Max
}

// uniform returns a number drawn uniformly from [0, n], reading 8 bytes of
// rnd at a time and rejecting the draws that would favour small numbers.
func uniform(rnd io.Reader, n uint64) (uint64, error) {
	if n == 1<<64-1 {
		return read64(rnd)
	}
	m := n + 1
	// 2^64 mod m: the draws below it are the surplus of the last,
	// incomplete run of m.
	reject := -m % m
	for {
		v, err := read64(rnd)
		if err != nil {
			return 0, err
		}
		if v >= reject {
			return v % m, nil
		}
	}
}

func read64(rnd io.Reader) (uint64, error) {
	var b [8]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}
