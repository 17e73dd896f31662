package notify_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-two-factor/caddy-two-factor/notify"
)

// waitLimit bounds how long a test waits for something that should
// happen at once; reaching it is a failure, never the way a test passes.
const waitLimit = 10 * time.Second

var epoch = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// fakeClock is advanced by hand; After reports each wait on waits.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	pending []pendingTimer
	waits   chan time.Duration
}

type pendingTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: epoch, waits: make(chan time.Duration, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	c.pending = append(c.pending, pendingTimer{c.now.Add(d), ch})
	c.mu.Unlock()
	c.waits <- d
	return ch
}

// Advance moves time on and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.pending[:0]
	for _, p := range c.pending {
		if p.at.After(c.now) {
			kept = append(kept, p)
			continue
		}
		p.ch <- c.now
	}
	c.pending = kept
}

// nextWait returns the duration of the next backoff the dispatcher starts.
func (c *fakeClock) nextWait(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.waits:
		return d
	case <-time.After(waitLimit):
		t.Fatal("dispatcher did not start a backoff")
		return 0
	}
}

// fakeSender records attempts and answers from a script (nil when the
// script runs out). With block set, Send waits for it or for cancellation.
type fakeSender struct {
	name    string
	accepts func(notify.Notice) bool
	block   chan struct{}

	mu     sync.Mutex
	script []error
	calls  chan notify.Notice
}

func newFakeSender(name string, script ...error) *fakeSender {
	return &fakeSender{name: name, script: script, calls: make(chan notify.Notice, 100)}
}

func (s *fakeSender) Name() string { return s.name }

func (s *fakeSender) Accepts(n notify.Notice) bool { return s.accepts == nil || s.accepts(n) }

func (s *fakeSender) Send(ctx context.Context, n notify.Notice) error {
	s.calls <- n
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.script) == 0 {
		return nil
	}
	err := s.script[0]
	s.script = s.script[1:]
	return err
}

// next returns the next attempt.
func (s *fakeSender) next(t *testing.T) notify.Notice {
	t.Helper()
	select {
	case n := <-s.calls:
		return n
	case <-time.After(waitLimit):
		t.Fatalf("%s: no attempt to send", s.name)
		return notify.Notice{}
	}
}

// none checks that no attempt was made (beyond those already taken).
func (s *fakeSender) none(t *testing.T) {
	t.Helper()
	select {
	case n := <-s.calls:
		t.Fatalf("%s: unexpected attempt to send %s", s.name, n.Event)
	default:
	}
}

var errTemporary = errors.New("temporary failure")

// observed returns a logger and what it logs.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

// newDispatcher starts a dispatcher that is closed at the end of the test,
// after which no goroutine of this package may be left.
func newDispatcher(t *testing.T, cfg notify.Config) *notify.Dispatcher {
	t.Helper()
	d := notify.New(cfg)
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		checkNoGoroutines(t)
	})
	return d
}

// checkNoGoroutines fails if a goroutine runs code of package notify.
// Close has waited for the workers; a worker may still be between its
// deferred wg.Done and its end, so the check looks again for a moment.
func checkNoGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		left := notifyGoroutines()
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutine outlives its dispatcher:\n%s", left)
		}
		runtime.Gosched()
	}
}

func notifyGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i > 0 && strings.Contains(g, "caddy-two-factor/notify.") { // 0 is this goroutine
			return g
		}
	}
	return ""
}

// noLeak checks that no log entry mentions any of the secrets.
func noLeak(t *testing.T, logs *observer.ObservedLogs, secrets ...string) {
	t.Helper()
	for _, e := range logs.All() {
		text := e.Message
		for _, f := range e.Context {
			text += " " + f.Key + "=" + f.String
			if err, ok := f.Interface.(error); ok {
				text += " " + err.Error()
			}
		}
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("log line %q contains %q", text, s)
			}
		}
	}
}

func intp(i int) *int { return &i }

func aliceNotice(e notify.Event) notify.Notice {
	return notify.Notice{
		ID:         "n1",
		Event:      e,
		User:       "alice",
		Time:       epoch,
		ClientIP:   "203.0.113.7",
		Browser:    "Firefox on Linux",
		AccountURL: "https://example.com/2fa/account",
		To:         "alice@example.com",
	}
}

// resultSender passes sends on to a Sender and reports each outcome.
type resultSender struct {
	notify.Sender
	results chan error
}

func withResults(s notify.Sender) *resultSender {
	return &resultSender{Sender: s, results: make(chan error, 100)}
}

func (s *resultSender) Send(ctx context.Context, n notify.Notice) error {
	err := s.Sender.Send(ctx, n)
	s.results <- err
	return err
}

// next returns the outcome of the next attempt.
func (s *resultSender) next(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.results:
		return err
	case <-time.After(waitLimit):
		t.Fatal("no attempt to send")
		return nil
	}
}

// waitLog waits until msg has been logged and returns its entries. Log
// lines follow the attempt they describe, on the worker's goroutine.
func waitLog(t *testing.T, logs *observer.ObservedLogs, msg string) []observer.LoggedEntry {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		if got := logs.FilterMessage(msg).All(); len(got) > 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing logged as %q", msg)
		}
		runtime.Gosched()
	}
}

// closeWithin closes d, failing if that hangs, and checks that no
// goroutine of the package is left.
func closeWithin(t *testing.T, d *notify.Dispatcher) {
	t.Helper()
	closed := make(chan struct{})
	go func() { d.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(waitLimit):
		t.Fatal("Close did not return")
	}
	checkNoGoroutines(t)
}

// containsAll checks that text has each of wants.
func containsAll(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, text)
		}
	}
}

// checkConfigErr checks a constructor's error against the wanted part of
// its message ("" for none); it reports whether the result is usable.
func checkConfigErr(t *testing.T, call string, err error, wantErr string) bool {
	t.Helper()
	switch {
	case wantErr != "":
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s = %v, want error with %q", call, err, wantErr)
		}
		return false
	case err != nil:
		t.Errorf("%s: %v", call, err)
		return false
	}
	return true
}
