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
	// observer, if set, hears the waits and the hashes.
	observer atomic.Pointer[HashObserver]
}

// HashObserver hears what a HashLimiter does, for the operator's metrics.
// Its methods are called on the sign-in's goroutine and must not block.
type HashObserver interface {
	// Waited reports how long an attempt waited for a slot, and whether
	// it got one (false: the queue was full, the wait ran out, or the
	// request ended).
	Waited(d time.Duration, ok bool)
	// Held reports how long a slot was held: the password hash, and the
	// reservation of the attempt's budgets made while it ran.
	Held(d time.Duration)
}

// SetObserver makes o hear every later Acquire; nil stops it.
func (l *HashLimiter) SetObserver(o HashObserver) {
	if o == nil {
		l.observer.Store(nil)
		return
	}
	l.observer.Store(&o)
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
	asked := time.Now()
	ok = l.take(ctx)
	start := time.Now()
	obs := l.observer.Load()
	if obs != nil {
		(*obs).Waited(start.Sub(asked), ok)
	}
	if !ok {
		return nil, false
	}
	return func() {
		held := time.Since(start)
		if obs != nil {
			(*obs).Held(held)
		}
		if l.coolDown {
			l.after(held, func() { <-l.slots })
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
