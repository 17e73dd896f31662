package notify

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Sender delivers notices over one transport.
type Sender interface {
	// Name identifies the transport in logs and in claim keys. It must be
	// stable across instances with the same config and must not contain
	// secrets (a webhook's URL path or query, a password).
	Name() string
	// Accepts reports whether the transport has anything to send for n
	// (the e-mail transport skips users without an address).
	Accepts(n Notice) bool
	// Send delivers n once. It returns an error marked Permanent when
	// retrying cannot help. Errors must not contain the message body,
	// codes or secrets: the dispatcher logs them.
	Send(ctx context.Context, n Notice) error
}

// Clock is the dispatcher's time: Now for expiry, After for backoff.
// Tests inject one they advance by hand.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Defaults of Config.
const (
	DefaultQueueSize  = 100
	DefaultAttempts   = 5
	DefaultBackoff    = 10 * time.Second
	DefaultMaxBackoff = 5 * time.Minute
)

// Config configures a Dispatcher.
type Config struct {
	// Senders are the transports; each gets its own queue and worker, so
	// a broken one does not hold up the others.
	Senders []Sender
	// Events are the events to send; nil means all.
	Events Events
	// QueueSize bounds the notices waiting per transport; past it, new
	// notices are dropped and logged. Default: DefaultQueueSize.
	QueueSize int
	// Attempts is how many times a notice is tried per transport before
	// it is given up. Default: DefaultAttempts.
	Attempts int
	// Backoff is the wait before the first retry; each further retry
	// waits twice as long, up to MaxBackoff. Defaults: DefaultBackoff,
	// DefaultMaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Claim, if set, is asked once per notice and transport (with the key
	// "<notice ID>/<transport name>") before the first attempt; false
	// means another instance sends it. An error is logged and the notice
	// is sent anyway: a duplicate notice is better than none.
	Claim func(key string) (bool, error)
	// Clock defaults to the system clock.
	Clock Clock
	// Logger defaults to a no-op logger.
	Logger *zap.Logger
}

// Dispatcher queues notices and sends them in the background. Enqueue
// never blocks; Close stops every goroutine it started.
type Dispatcher struct {
	cfg    Config
	lanes  []*lane
	log    *zap.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.RWMutex
	closed bool
}

type lane struct {
	sender Sender
	queue  chan Notice
	// abandoned counts notices the worker held when Close came; only
	// the worker writes it, Close reads it after the worker is done.
	abandoned int
}

// ErrClosed is returned by Enqueue after Close.
var ErrClosed = errors.New("notification dispatcher is closed")

// New applies the defaults of cfg and starts one worker per sender.
func New(cfg Config) *Dispatcher {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.Backoff {
		cfg.MaxBackoff = cfg.Backoff
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	d := &Dispatcher{cfg: cfg, log: cfg.Logger}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	for _, s := range cfg.Senders {
		l := &lane{sender: s, queue: make(chan Notice, cfg.QueueSize)}
		d.lanes = append(d.lanes, l)
		d.wg.Add(1)
		go d.run(l)
	}
	return d
}

// Enqueue queues n for every transport that accepts it and returns at
// once. A transport whose queue is full drops n and logs it; Enqueue then
// returns an error, which callers may ignore: the event itself (a sign-in)
// must not fail because a notice could not be queued.
func (d *Dispatcher) Enqueue(n Notice) error {
	if !d.cfg.Events.Has(n.Event) {
		return nil
	}
	if n.ID == "" {
		n.ID = NewID()
	}
	if n.Time.IsZero() {
		n.Time = d.cfg.Clock.Now()
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return ErrClosed
	}
	var dropped bool
	for _, l := range d.lanes {
		if !l.sender.Accepts(n) {
			continue
		}
		select {
		case l.queue <- n:
		default:
			dropped = true
			d.log.Warn("notification queue full; dropping notice",
				noticeFields(n, l.sender)...)
		}
	}
	if dropped {
		return errors.New("notification queue full")
	}
	return nil
}

// Close stops the workers, abandoning notices still queued or being
// retried (their number is logged), and waits for the workers to return.
// A send in flight is cancelled. Then it closes the senders that are an
// io.Closer (a webhook's idle connections). Close is safe to call more
// than once.
func (d *Dispatcher) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	for _, l := range d.lanes {
		if c, ok := l.sender.(io.Closer); ok {
			if err := c.Close(); err != nil {
				d.log.Warn("closing notification transport", zap.String("transport", l.sender.Name()), zap.Error(err))
			}
		}
		if n := len(l.queue) + l.abandoned; n > 0 {
			d.log.Warn("notification dispatcher closed with notices unsent",
				zap.String("transport", l.sender.Name()), zap.Int("unsent", n))
		}
	}
	return nil
}

func (d *Dispatcher) run(l *lane) {
	defer d.wg.Done()
	for {
		select {
		case <-d.ctx.Done():
			return
		case n := <-l.queue:
			// select picks at random among ready cases: a notice taken
			// after Close is not sent.
			if d.ctx.Err() != nil || !d.deliver(l.sender, n) {
				l.abandoned++
				return
			}
		}
	}
}

// deliver sends n over s, retrying with exponential backoff. It returns
// false if Close interrupted it.
func (d *Dispatcher) deliver(s Sender, n Notice) bool {
	if d.cfg.Claim != nil {
		mine, err := d.cfg.Claim(n.ID + "/" + s.Name())
		switch {
		case err != nil:
			d.log.Warn("claiming notice failed; sending it anyway",
				append(noticeFields(n, s), zap.Error(err))...)
		case !mine:
			return true
		}
	}
	delay := d.cfg.Backoff
	for attempt := 1; ; attempt++ {
		if !n.Expires.IsZero() && !d.cfg.Clock.Now().Before(n.Expires) {
			d.log.Warn("notice expired before it could be sent",
				append(noticeFields(n, s), zap.Int("attempts", attempt-1))...)
			return true
		}
		err := s.Send(d.ctx, n)
		if err == nil {
			return true
		}
		if d.ctx.Err() != nil {
			return false // closing; Close logs what was left
		}
		fields := append(noticeFields(n, s), zap.Int("attempt", attempt), zap.Error(err))
		if IsPermanent(err) || attempt >= d.cfg.Attempts {
			d.log.Error("sending notice failed; giving up", fields...)
			return true
		}
		d.log.Warn("sending notice failed; will retry",
			append(fields, zap.Duration("retry_in", delay))...)
		select {
		case <-d.ctx.Done():
			return false
		case <-d.cfg.Clock.After(delay):
		}
		delay = min(2*delay, d.cfg.MaxBackoff)
	}
}

// noticeFields are what a log line may say about a notice: never its text,
// code or address.
func noticeFields(n Notice, s Sender) []zap.Field {
	return []zap.Field{
		zap.String("transport", s.Name()),
		zap.String("event", string(n.Event)),
		zap.String("user", n.User),
		zap.String("notice_id", n.ID),
	}
}
