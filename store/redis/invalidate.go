package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Invalidation. A write that changes users or sessions is announced on
// the channel P invalidate by a PUBLISH inside its own MULTI/EXEC, so the
// message goes out if and only if the write commits. Every instance
// subscribes (Watch) and drops what a message names from its cache.
//
// Pub/sub delivers a message only to subscribers connected when it is
// published, so a subscriber must know when it may have missed one. Every
// heartbeat, Watch publishes a heartbeat of its own (a random nonce) on the
// channel through the ordinary client, which talks to the current master,
// and waits for it on its subscription. The master delivers a channel's
// messages in the order it handles them, so the nonce published at t
// arriving proves that every invalidation published before t has been
// handed to OnMessage. Through the master, not just on the subscribed
// connection: after a Sentinel failover a subscription left on the old
// master hears no nonce, and trust lapses. The caller trusts its cache
// for a bounded time past t (sessioncache.TrustWindow), and a lost
// connection ends that trust at once.

const (
	// heartbeat is how often Watch proves its subscription alive.
	heartbeat = 200 * time.Millisecond
	// retryMax bounds the pause between attempts to subscribe again.
	retryMax = 2 * time.Second
)

// Invalidation entry kinds in a message.
const (
	kindUser    = 'u'
	kindSession = 's'
	// kindHeartbeat starts a heartbeat message, followed by its nonce; it
	// is never part of an invalidation.
	kindHeartbeat = 'h'
)

// InvalidationChannel returns the channel writes are announced on.
func (s *Store) InvalidationChannel() string { return s.keys.prefix + "invalidate" }

// Announce implements sessioncache.Announcer: the transaction, when it
// commits, publishes users and keys on the invalidation channel.
func (t *tx) Announce(users []string, keys []store.SessionKey) error {
	if err := t.canWrite(); err != nil {
		return err
	}
	msg := EncodeInvalidation(users, keys)
	t.cmds = append(t.cmds, t.c.B().Publish().Channel(t.s.InvalidationChannel()).Message(string(msg)).Build())
	return nil
}

// EncodeInvalidation encodes an invalidation message: for each user 'u',
// its length (uvarint) and name; for each session 's' and its 32-byte key.
func EncodeInvalidation(users []string, keys []store.SessionKey) []byte {
	n := len(keys) * (1 + len(store.SessionKey{}))
	for _, u := range users {
		n += 1 + binary.MaxVarintLen64 + len(u)
	}
	b := make([]byte, 0, n)
	for _, u := range users {
		b = append(b, kindUser)
		b = binary.AppendUvarint(b, uint64(len(u)))
		b = append(b, u...)
	}
	for _, k := range keys {
		b = append(b, kindSession)
		b = append(b, k[:]...)
	}
	return b
}

// errBadMessage marks a message that is not an invalidation.
var errBadMessage = errors.New("malformed invalidation message")

// DecodeInvalidation reverses EncodeInvalidation.
func DecodeInvalidation(b []byte) (users []string, keys []store.SessionKey, err error) {
	for len(b) > 0 {
		kind := b[0]
		b = b[1:]
		switch kind {
		case kindUser:
			n, size := binary.Uvarint(b)
			if size <= 0 || n > uint64(len(b)-size) {
				return nil, nil, errBadMessage
			}
			users = append(users, string(b[size:size+int(n)]))
			b = b[size+int(n):]
		case kindSession:
			var k store.SessionKey
			if len(b) < len(k) {
				return nil, nil, errBadMessage
			}
			copy(k[:], b)
			keys = append(keys, k)
			b = b[len(k):]
		default:
			return nil, nil, errBadMessage
		}
	}
	return users, keys, nil
}

// WatchHooks are what Watch reports to; each is called from one
// goroutine at a time.
type WatchHooks struct {
	// Invalidate is called for every message, in order.
	Invalidate func(users []string, keys []store.SessionKey)
	// Confirmed is called when every message published before at has
	// been passed to Invalidate.
	Confirmed func(at time.Time)
	// Lost is called when the subscription broke (or could not be made):
	// messages may be missed until the next Confirmed.
	Lost func(err error)
}

// Watch subscribes to the invalidation channel and keeps the
// subscription until ctx ends, subscribing again after any failure. It
// returns when ctx ends, after calling Lost.
func (s *Store) Watch(ctx context.Context, h WatchHooks) {
	pause := heartbeat
	for {
		confirmed, err := s.watchOnce(ctx, h)
		if ctx.Err() != nil {
			h.Lost(ctx.Err())
			return
		}
		h.Lost(err)
		if confirmed {
			pause = heartbeat
		} else {
			pause = min(pause*2, retryMax)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
	}
}

// watchOnce subscribes on one dedicated connection and heartbeats until
// it fails or ctx ends; it reports whether it ever confirmed.
func (s *Store) watchOnce(ctx context.Context, h WatchHooks) (confirmed bool, err error) {
	c, release := s.client.Dedicate()
	defer release()
	channel := s.InvalidationChannel()
	// awaited is the nonce of the heartbeat in flight, and heard fires
	// when the subscription hears it (others' heartbeats are ignored).
	var awaited atomic.Pointer[string]
	heard := make(chan struct{}, 1)
	closed := c.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage: func(m rueidis.PubSubMessage) {
			if m.Channel != channel {
				return
			}
			if len(m.Message) > 0 && m.Message[0] == kindHeartbeat {
				if want := awaited.Load(); want != nil && *want == m.Message {
					select {
					case heard <- struct{}{}:
					default:
					}
				}
				return
			}
			users, keys, err := DecodeInvalidation([]byte(m.Message))
			if err != nil {
				// Whatever it was, a write may have gone unheard: the
				// cache distrusts itself, and forgets all it holds at
				// the next confirmation.
				h.Lost(fmt.Errorf("undecodable message on %s: %w", channel, err))
				return
			}
			h.Invalidate(users, keys)
		},
	})
	if err := s.ping(ctx, c, c.B().Subscribe().Channel(channel).Build()); err != nil {
		return false, fmt.Errorf("subscribing to %s: %w", channel, err)
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		sent := time.Now()
		if err := s.heartbeat(ctx, channel, &awaited, heard, closed); err != nil {
			return confirmed, fmt.Errorf("heartbeat on %s: %w", channel, err)
		}
		confirmed = true
		h.Confirmed(sent)
		select {
		case <-ctx.Done():
			return confirmed, ctx.Err()
		case err := <-closed:
			if err == nil {
				err = errors.New("subscription closed")
			}
			return confirmed, err
		case <-tick.C:
		}
	}
}

// heartbeat publishes a fresh nonce on channel through the master and
// waits, at most the timeout, until the subscription hears it.
func (s *Store) heartbeat(ctx context.Context, channel string, awaited *atomic.Pointer[string], heard chan struct{}, closed <-chan error) error {
	nonce := string(kindHeartbeat) + rand.Text()
	awaited.Store(&nonce)
	select { // a late echo of the last heartbeat
	case <-heard:
	default:
	}
	ctx, cancel := context.WithTimeout(ctx, min(s.timeout, time.Second))
	defer cancel()
	if err := s.client.Do(ctx, s.client.B().Publish().Channel(channel).Message(nonce).Build()).Error(); err != nil {
		return err
	}
	for {
		select {
		case <-heard:
			return nil
		case err := <-closed:
			if err == nil {
				err = errors.New("subscription closed")
			}
			return err
		case <-ctx.Done():
			return fmt.Errorf("the heartbeat did not come back: %w", ctx.Err())
		}
	}
}

// ping sends cmd on c and waits for its answer, at most the timeout.
func (s *Store) ping(ctx context.Context, c rueidis.DedicatedClient, cmd rueidis.Completed) error {
	ctx, cancel := context.WithTimeout(ctx, min(s.timeout, time.Second))
	defer cancel()
	return c.Do(ctx, cmd).Error()
}
