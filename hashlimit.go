package twofactor

import (
	"context"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Password hashes are made slow on purpose (bcrypt at Caddy's default cost
// takes most of a second of CPU), so a storm of sign-in attempts could take
// every core from the requests of users already signed in. At most
// hashSlots hashes run at once, process-wide, and a slot stays closed
// after a hash for as long as the hash took, so hashing has at most a
// quarter of the cores (half of one, when there is only one). An attempt waits at most hashWait for a
// slot, and at most hashWaiters attempts wait at a time; the rest get 429
// with Retry-After: they never queue without bound. Waiting is what slows
// a storm down: a client that sends its next attempt once the last is
// answered sends one per hashWait at most. The limit is the same whatever
// the user name, so it tells nothing about which accounts exist.
const (
	hashWait       = 2 * time.Second
	hashWaiters    = 128
	hashRetryAfter = 2 // seconds
)

// hashSlots is half the cores, each busy half the time at most.
var hashSlots = max(1, runtime.GOMAXPROCS(0)/2)

// passwordHashing is the limiter every database uses.
var passwordHashing = newHashLimiter(hashSlots, hashWaiters, hashWait, true)

// hashLimiter bounds concurrent password hashing. A nil limiter bounds
// nothing.
type hashLimiter struct {
	slots      chan struct{}
	waiting    atomic.Int32
	maxWaiting int32
	wait       time.Duration
	// coolDown keeps a slot closed after a hash for as long as it took,
	// reopening it with after (time.AfterFunc but in tests).
	coolDown bool
	after    func(time.Duration, func())
}

func newHashLimiter(slots, maxWaiting int, wait time.Duration, coolDown bool) *hashLimiter {
	return &hashLimiter{
		slots:      make(chan struct{}, slots),
		maxWaiting: int32(maxWaiting),
		wait:       wait,
		coolDown:   coolDown,
		after:      func(d time.Duration, f func()) { time.AfterFunc(d, f) },
	}
}

// acquire takes a slot, waiting at most l.wait, and reports whether it
// did; done must be called once the hash is made.
func (l *hashLimiter) acquire(ctx context.Context) (done func(), ok bool) {
	if l == nil {
		return func() {}, true
	}
	if !l.take(ctx) {
		return nil, false
	}
	start := time.Now()
	return func() {
		if l.coolDown {
			l.after(time.Since(start), func() { <-l.slots })
			return
		}
		<-l.slots
	}, true
}

func (l *hashLimiter) take(ctx context.Context) bool {
	select {
	case l.slots <- struct{}{}:
		return true
	default:
	}
	if l.waiting.Add(1) > l.maxWaiting {
		l.waiting.Add(-1)
		return false
	}
	defer l.waiting.Add(-1)
	timer := time.NewTimer(l.wait)
	defer timer.Stop()
	select {
	case l.slots <- struct{}{}:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	return false
}

// renderBusy answers a sign-in attempt that found no hashing slot.
func (h *TwoFactor) renderBusy(w http.ResponseWriter, r *http.Request) error {
	if ce := h.logger.Check(zap.DebugLevel, "two-factor sign-in refused: password hashing busy"); ce != nil {
		ce.Write(zap.String("client_ip", clientIP(r)))
	}
	w.Header().Set("Retry-After", strconv.Itoa(hashRetryAfter))
	return h.render(w, http.StatusTooManyRequests, "error", pageData{
		Title: "Busy",
		Error: "Too many sign-ins are being checked at once. Please try again in a moment.",
	})
}
