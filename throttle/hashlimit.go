package throttle

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"
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
	HashRetryAfter = 2 // seconds
)

// hashSlots is half the cores, each busy half the time at most.
var hashSlots = max(1, runtime.GOMAXPROCS(0)/2)

// PasswordHashing is the limiter every database uses.
var PasswordHashing = NewHashLimiter(hashSlots, hashWaiters, hashWait, true)

// HashLimiter bounds concurrent password hashing. A nil limiter bounds
// nothing.
type HashLimiter struct {
	slots      chan struct{}
	waiting    atomic.Int32
	maxWaiting int32
	wait       time.Duration
	// coolDown keeps a slot closed after a hash for as long as it took,
	// reopening it with after (time.AfterFunc but in tests).
	coolDown bool
	after    func(time.Duration, func())
}

func NewHashLimiter(slots, maxWaiting int, wait time.Duration, coolDown bool) *HashLimiter {
	return &HashLimiter{
		slots:      make(chan struct{}, slots),
		maxWaiting: int32(maxWaiting),
		wait:       wait,
		coolDown:   coolDown,
		after:      func(d time.Duration, f func()) { time.AfterFunc(d, f) },
	}
}

// Acquire takes a slot, waiting at most l.wait, and reports whether it
// did; done must be called once the hash is made.
func (l *HashLimiter) Acquire(ctx context.Context) (done func(), ok bool) {
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

func (l *HashLimiter) take(ctx context.Context) bool {
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
