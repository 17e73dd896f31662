package twofactor

import (
	"sync"
	"time"
)

// testClocks holds, by database name (a bolt file's path), the clock that
// handlers provisioned on that database read in place of time.Now. Only
// tests add one, so that a test against a real Caddy can move its time
// (re-check deadlines, step-up ages, expiries) without waiting; keyed by
// name, so each test's database is its own.
var testClocks sync.Map // name → func() time.Time

// useTestClock makes h read the test clock of the database name, if a
// test set one.
func (h *TwoFactor) useTestClock(name string) {
	if c, ok := testClocks.Load(name); ok {
		h.now = c.(func() time.Time)
	}
}
