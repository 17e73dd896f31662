package redisstore

import (
	"encoding/hex"
	"strconv"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// keys makes the key names of the layout in the package doc.
type keys struct{ prefix string }

func (k keys) meta(name string) string         { return k.prefix + "m:" + name }
func (k keys) user(name string) string         { return k.prefix + "{u:" + name + "}:user" }
func (k keys) userSessions(name string) string { return k.prefix + "{u:" + name + "}:sessions" }
func (k keys) session(key store.SessionKey) string {
	return k.prefix + "s:" + hex.EncodeToString(key[:])
}
func (k keys) attempts(key string) string { return k.prefix + "a:" + key }
func (k keys) users() string              { return k.prefix + "users" }
func (k keys) expiry() string             { return k.prefix + "expiry" }
func (k keys) attemptsIndex() string      { return k.prefix + "attempts" }
func (k keys) claim(key string) string    { return k.prefix + "c:" + key }
func (k keys) pending() string            { return k.prefix + "pending" }
func (k keys) pendingBuilt() string       { return k.prefix + "pending:built" }

// expiryMember is a session's entry in the expiry index: its key, then its
// user, so a cleanup finds the user's set even once the record is gone.
func expiryMember(key store.SessionKey, user string) string {
	return string(key[:]) + user
}

// parseExpiryMember reverses expiryMember.
func parseExpiryMember(m string) (key store.SessionKey, user string, ok bool) {
	if len(m) < len(key) {
		return key, "", false
	}
	copy(key[:], m)
	return key, m[len(key):], true
}

// expiryScore is the expiry index's score of t: Unix milliseconds, rounded
// down, which a float64 holds exactly for the next 280,000 years.
func expiryScore(t time.Time) int64 { return t.UnixMilli() }

// pxat is the millisecond a record expiring at t is dropped: t rounded up,
// so it is never gone before t.
func pxat(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Nanosecond()%int(time.Millisecond) != 0 {
		ms++
	}
	return ms
}

func formatScore(n int64) string { return strconv.FormatInt(n, 10) }

// lexRange returns the ZRANGE BYLEX bounds of the members that start with
// prefix.
func lexRange(prefix string) (lo, hi string) {
	if prefix == "" {
		return "-", "+"
	}
	// The least string above every string with the prefix: drop trailing
	// 0xff bytes and increment the last one left.
	// Bytes, not runes: strings.TrimRight would take "\xff" for U+FFFD
	// and also trim a name that really ends in that character.
	end := len(prefix)
	for end > 0 && prefix[end-1] == 0xff {
		end--
	}
	succ := prefix[:end]
	if succ == "" {
		return "[" + prefix, "+"
	}
	last := len(succ) - 1
	return "[" + prefix, "(" + succ[:last] + string([]byte{succ[last] + 1})
}
