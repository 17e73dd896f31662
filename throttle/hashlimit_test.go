package throttle

import (
	"runtime"
	"testing"
	"time"
)

func TestHashLimiterWaitsForASlot(t *testing.T) {
	l := NewHashLimiter(1, 1, time.Hour, false)
	done, ok := l.Acquire(t.Context())
	if !ok {
		t.Fatal("first acquire")
	}
	got := make(chan func())
	go func() {
		done, _ := l.Acquire(t.Context())
		got <- done
	}()
	// The waiter is counted before it blocks; a second waiter finds the
	// queue full at once.
	for l.waiting.Load() != 1 {
		runtime.Gosched()
	}
	if _, ok := l.Acquire(t.Context()); ok {
		t.Fatal("a second waiter got in past maxWaiting")
	}
	done()
	second := <-got
	if second == nil {
		t.Fatal("the waiter did not get the released slot")
	}
	second()
}

func TestHashLimiterCoolsDown(t *testing.T) {
	l := NewHashLimiter(1, 0, 0, true)
	var reopen func()
	l.after = func(_ time.Duration, f func()) { reopen = f }
	done, ok := l.Acquire(t.Context())
	if !ok {
		t.Fatal("first acquire")
	}
	done()
	if _, ok := l.Acquire(t.Context()); ok || reopen == nil {
		t.Fatal("the slot reopened before its cool-down")
	}
	reopen()
	if _, ok := l.Acquire(t.Context()); !ok {
		t.Fatal("the slot did not reopen after its cool-down")
	}
}
