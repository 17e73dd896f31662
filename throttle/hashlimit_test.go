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

// hashLog records what a HashLimiter reports.
type hashLog struct {
	waits []bool
	held  int
}

func (h *hashLog) Waited(_ time.Duration, ok bool) { h.waits = append(h.waits, ok) }
func (h *hashLog) Held(time.Duration)              { h.held++ }

func TestHashLimiterReportsWaitsAndHashes(t *testing.T) {
	l := NewHashLimiter(1, 0, 0, false)
	var log hashLog
	l.SetObserver(&log)
	done, ok := l.Acquire(t.Context())
	if !ok {
		t.Fatal("first acquire")
	}
	if _, ok := l.Acquire(t.Context()); ok {
		t.Fatal("a second hash got a slot while the first held it")
	}
	done()
	if want := []bool{true, false}; len(log.waits) != 2 || log.waits[0] != want[0] || log.waits[1] != want[1] {
		t.Errorf("waits reported = %v, want %v", log.waits, want)
	}
	if log.held != 1 {
		t.Errorf("hashes reported = %d, want 1", log.held)
	}
	l.SetObserver(nil)
	done, _ = l.Acquire(t.Context())
	done()
	if len(log.waits) != 2 || log.held != 1 {
		t.Error("a removed observer still hears the limiter")
	}
}
