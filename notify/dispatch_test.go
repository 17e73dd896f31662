package notify_test

import (
	"errors"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/notify"
)

func TestDispatcherSendsToEveryAcceptingTransport(t *testing.T) {
	mail := newFakeSender("mail")
	mail.accepts = func(n notify.Notice) bool { return n.To != "" }
	hook := newFakeSender("hook")
	events, err := notify.ParseEvents([]string{"recovery_code_used", "account_locked"})
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	d := newDispatcher(t, notify.Config{Senders: []notify.Sender{mail, hook}, Events: events, Clock: clock})

	if err := d.Enqueue(notify.Notice{Event: notify.RecoveryCodeUsed, User: "alice", To: "alice@example.com"}); err != nil {
		t.Fatal(err)
	}
	got := mail.next(t)
	if got.ID == "" || !got.Time.Equal(epoch) {
		t.Errorf("Enqueue did not fill in ID and time: %+v", got)
	}
	if h := hook.next(t); h.ID != got.ID {
		t.Errorf("transports got different IDs %q and %q", got.ID, h.ID)
	}

	// No address: the webhook only. Filtered out: nobody. email_code
	// cannot be filtered out.
	d.Enqueue(notify.Notice{Event: notify.AccountLocked, User: "bob"})
	if n := hook.next(t); n.User != "bob" {
		t.Errorf("webhook got %+v", n)
	}
	d.Enqueue(notify.Notice{Event: notify.PasskeyAdded, User: "carol", To: "carol@example.com"})
	d.Enqueue(notify.Notice{Event: notify.EmailCode, User: "dave", To: "dave@example.com", Code: "12345678"})
	if n := mail.next(t); n.User != "dave" {
		t.Errorf("mail got %s for %s, want dave's code (carol's passkey_added is filtered)", n.Event, n.User)
	}
	if n := hook.next(t); n.User != "dave" {
		t.Errorf("webhook got %s for %s, want dave's email_code", n.Event, n.User)
	}
	mail.none(t)
}

func TestDispatcherRetriesWithExponentialBackoff(t *testing.T) {
	clock := newFakeClock()
	s := newFakeSender("s", errTemporary, errTemporary, errTemporary, errTemporary)
	log, logs := observed()
	d := newDispatcher(t, notify.Config{
		Senders: []notify.Sender{s}, Clock: clock, Logger: log,
		Attempts: 6, Backoff: time.Minute, MaxBackoff: 3 * time.Minute,
	})
	d.Enqueue(aliceNotice(notify.SignInNewBrowser))
	s.next(t)
	for _, want := range []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute, 3 * time.Minute} {
		if got := clock.nextWait(t); got != want {
			t.Fatalf("backoff %v, want %v", got, want)
		}
		s.none(t) // nothing is tried before the wait is over
		clock.Advance(want)
		s.next(t)
	}
	if n := logs.FilterMessage("sending notice failed; will retry").Len(); n != 4 {
		t.Errorf("logged %d retries, want 4", n)
	}
	if n := logs.FilterMessage("sending notice failed; giving up").Len(); n != 0 {
		t.Errorf("gave up on a notice that was sent at the fifth attempt")
	}
}

func TestDispatcherGivesUp(t *testing.T) {
	tests := []struct {
		name     string
		script   []error
		attempts int // made before giving up
	}{
		{"attempts used up", []error{errTemporary, errTemporary, errTemporary}, 3},
		{"permanent error", []error{notify.Permanent(errors.New("bad address"))}, 1},
		{"permanent after a temporary one", []error{errTemporary, notify.Permanent(errors.New("rejected"))}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			s := newFakeSender("s", tt.script...)
			log, logs := observed()
			d := newDispatcher(t, notify.Config{Senders: []notify.Sender{s}, Clock: clock, Logger: log, Attempts: 3})
			d.Enqueue(aliceNotice(notify.AccountLocked))
			for i := range tt.attempts {
				s.next(t)
				if i < tt.attempts-1 {
					clock.Advance(clock.nextWait(t))
				}
			}
			gaveUp := waitLog(t, logs, "sending notice failed; giving up")
			d.Close()
			s.none(t)
			if len(gaveUp) != 1 {
				t.Fatalf("logged %d give-ups, want 1", len(gaveUp))
			}
			if f := gaveUp[0].ContextMap(); f["event"] != "account_locked" || f["user"] != "alice" || f["transport"] != "s" {
				t.Errorf("give-up log fields %v", f)
			}
		})
	}
}

func TestDispatcherQueueFullDropsAndLogs(t *testing.T) {
	slow := newFakeSender("slow")
	slow.block = make(chan struct{})
	fast := newFakeSender("fast")
	log, logs := observed()
	d := newDispatcher(t, notify.Config{Senders: []notify.Sender{slow, fast}, QueueSize: 1, Logger: log})

	n := aliceNotice(notify.EmailCode)
	n.Code = "12345678"
	start := time.Now()
	if err := d.Enqueue(n); err != nil { // taken by the slow worker, which hangs
		t.Fatal(err)
	}
	slow.next(t)
	fast.next(t)
	if err := d.Enqueue(n); err != nil { // waits in the slow queue
		t.Fatal(err)
	}
	fast.next(t)
	if err := d.Enqueue(n); err == nil { // no room in the slow queue
		t.Error("Enqueue into a full queue returned no error")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Enqueue took %v with a hanging transport", took)
	}
	dropped := logs.FilterMessage("notification queue full; dropping notice").All()
	if len(dropped) != 1 || dropped[0].ContextMap()["transport"] != "slow" {
		t.Fatalf("drop log: %v", dropped)
	}
	// The fast transport got the third too: a hanging one holds up only
	// itself.
	fast.next(t)
	noLeak(t, logs, "12345678", "alice@example.com")
}

func TestDispatcherCloseStopsEveryWorker(t *testing.T) {
	clock := newFakeClock()
	hanging := newFakeSender("hanging")
	hanging.block = make(chan struct{}) // never released: Close must cancel it
	retrying := newFakeSender("retrying", errTemporary)
	idle := newFakeSender("idle")
	idle.accepts = func(notify.Notice) bool { return false }
	log, logs := observed()
	d := notify.New(notify.Config{Senders: []notify.Sender{hanging, retrying, idle}, Clock: clock, Logger: log})

	d.Enqueue(aliceNotice(notify.OperatorRevoke))
	d.Enqueue(aliceNotice(notify.OperatorReset)) // queued behind the hanging one
	hanging.next(t)
	retrying.next(t)
	clock.nextWait(t) // the retrying worker waits for its backoff

	closeWithin(t, d) // with a hanging transport and one in backoff
	if err := d.Enqueue(aliceNotice(notify.OperatorRevoke)); !errors.Is(err, notify.ErrClosed) {
		t.Errorf("Enqueue after Close: %v, want ErrClosed", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n := logs.FilterMessage("notification dispatcher closed with notices unsent").Len(); n != 2 {
		t.Errorf("logged %d lanes with unsent notices, want 2", n)
	}
}

func TestDispatcherClaimSendsOnce(t *testing.T) {
	claims := &notify.MemoryClaims{}
	a, b := newFakeSender("hook"), newFakeSender("hook")
	da := notify.New(notify.Config{Senders: []notify.Sender{a}, Claim: claims.Claim})
	db := notify.New(notify.Config{Senders: []notify.Sender{b}, Claim: claims.Claim})
	t.Cleanup(func() {
		da.Close()
		db.Close()
		checkNoGoroutines(t)
	})
	n := aliceNotice(notify.RecoveryCodesLow)
	da.Enqueue(n)
	a.next(t)
	db.Enqueue(n)
	// The second instance's worker claims and skips; a later notice proves
	// it has got past the first.
	later := aliceNotice(notify.RecoveryCodesLow)
	later.ID = "n2"
	db.Enqueue(later)
	if got := b.next(t); got.ID != "n2" {
		t.Errorf("second instance sent %s, want only n2", got.ID)
	}
}

func TestDispatcherClaimErrorSendsAnyway(t *testing.T) {
	s := newFakeSender("s")
	log, logs := observed()
	d := newDispatcher(t, notify.Config{
		Senders: []notify.Sender{s}, Logger: log,
		Claim: func(string) (bool, error) { return false, errors.New("store down") },
	})
	d.Enqueue(aliceNotice(notify.PasskeyRemoved))
	s.next(t)
	waitLog(t, logs, "claiming notice failed; sending it anyway")
}

func TestDispatcherStopsRetryingExpiredNotice(t *testing.T) {
	clock := newFakeClock()
	s := newFakeSender("s", errTemporary, errTemporary)
	log, logs := observed()
	d := newDispatcher(t, notify.Config{Senders: []notify.Sender{s}, Clock: clock, Logger: log, Backoff: 4 * time.Minute, MaxBackoff: time.Hour})
	n := aliceNotice(notify.EmailCode)
	n.Expires = epoch.Add(notify.CodeLifetime)
	d.Enqueue(n)
	s.next(t)
	clock.Advance(clock.nextWait(t)) // 4 minutes: still valid
	s.next(t)
	clock.Advance(clock.nextWait(t)) // 12 minutes: expired
	waitLog(t, logs, "notice expired before it could be sent")
	d.Close()
	s.none(t)
}

func TestParseEvents(t *testing.T) {
	tests := []struct {
		names   []string
		has     []notify.Event
		hasNot  []notify.Event
		wantErr bool
	}{
		{names: nil, has: notify.AllEvents},
		{names: []string{"all"}, has: notify.AllEvents},
		{names: []string{"account_locked"}, has: []notify.Event{notify.AccountLocked, notify.EmailCode}, hasNot: []notify.Event{notify.SignInNewBrowser}},
		{names: []string{"sign_in"}, wantErr: true},
		{names: []string{"Account_Locked"}, wantErr: true},
	}
	for _, tt := range tests {
		got, err := notify.ParseEvents(tt.names)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseEvents(%q) error %v, want error %v", tt.names, err, tt.wantErr)
			continue
		}
		for _, e := range tt.has {
			if !got.Has(e) {
				t.Errorf("ParseEvents(%q) lacks %s", tt.names, e)
			}
		}
		for _, e := range tt.hasNot {
			if got.Has(e) {
				t.Errorf("ParseEvents(%q) has %s", tt.names, e)
			}
		}
	}
}
