package storetest

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// elsewhere is a zone that is not UTC: times put in it come back in UTC.
var elsewhere = time.FixedZone("UTC+5:30", 5*3600+1800)

func testMeta(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	view(t, s, func(tx store.Tx) error {
		if _, err := tx.Meta("csrf-key"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Meta of a missing name: %v, want ErrNotFound", err)
		}
		return nil
	})
	values := map[string][]byte{
		"csrf-key":          {1, 2, 3},
		"empty":             {},
		"binary\x00name":    {0, 0xff, '{', '}'},
		"{braces}:and:more": []byte("x"),
	}
	update(t, s, func(tx store.Tx) error {
		for name, v := range values {
			if err := tx.PutMeta(name, v); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx store.Tx) error {
		for name, want := range values {
			if got, err := tx.Meta(name); err != nil || !bytes.Equal(got, want) {
				t.Errorf("Meta(%q) = %v, %v; want %v", name, got, err, want)
			}
		}
		for _, missing := range []string{"", "csrf", "csrf-key ", "CSRF-KEY"} {
			if _, err := tx.Meta(missing); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Meta(%q) = %v, want ErrNotFound", missing, err)
			}
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error { return tx.PutMeta("csrf-key", []byte{4}) })
	view(t, s, func(tx store.Tx) error {
		if v, err := tx.Meta("csrf-key"); err != nil || !bytes.Equal(v, []byte{4}) {
			t.Errorf("Meta after overwrite = %v, %v", v, err)
		}
		return nil
	})
}

// alice is a user with every field set.
func alice() *store.User {
	return &store.User{
		Name:         "alice",
		PasswordHash: "$2a$10$hash",
		SessionID:    "sid",
		TOTP: &store.Enrollment{
			Secret:          []byte{1, 2, 3},
			LastStep:        42,
			RecoveryDigests: [][]byte{{4, 5}, {6}},
			EnrolledAt:      base,
		},
		Created:    base.Add(-time.Hour),
		WebAuthnID: bytes.Repeat([]byte{0x5a}, 64),
		Passkeys: []store.Passkey{passkey(1), {
			ID:         []byte{2},
			PublicKey:  []byte{0xa5},
			SignCount:  1<<32 - 1,
			Flags:      0xff,
			Transports: []string{""},
		}},
		RecoveryDigests: [][]byte{{7, 8}},
		RememberedDevices: []store.RememberedDevice{device(1), {
			ID:      "2",
			Digest:  []byte{2},
			Expires: base.Add(time.Hour),
		}},
		AppTokens:     []store.AppToken{appToken(1), {ID: "2", Digest: []byte{2}}},
		Email:         "alice@example.com",
		KnownBrowsers: [][]byte{{9, 10}, {11}},
	}
}

// device returns a remembered device with every field set, told apart by n.
func device(n byte) store.RememberedDevice {
	return store.RememberedDevice{
		ID:       "dev{" + string('0'+n) + "}",
		Digest:   bytes.Repeat([]byte{n, 0xd1}, 16),
		Factors:  bytes.Repeat([]byte{n, 0xf1}, 16),
		Created:  base.Add(-time.Hour),
		LastUsed: base.Add(-time.Minute),
		Expires:  base.Add(30 * 24 * time.Hour),
		Browser:  "Firefox on Linux ☃",
	}
}

// appToken returns an app token with every field set, told apart by n.
func appToken(n byte) store.AppToken {
	return store.AppToken{
		ID:       "tok:" + string('0'+n),
		Name:     "DAVx⁵ {phone}",
		Digest:   bytes.Repeat([]byte{n, 0xa7}, 16),
		Created:  base.Add(-time.Hour),
		LastUsed: base,
		Expires:  base.Add(time.Hour),
	}
}

// passkey returns a passkey with every field set, told apart by n.
func passkey(n byte) store.Passkey {
	return store.Passkey{
		ID:                []byte{n, 0, 0xff, '{'},
		PublicKey:         []byte{0xa5, 1, 2, 3, n},
		AttestationType:   "none",
		AttestationFormat: "packed",
		AAGUID:            bytes.Repeat([]byte{n}, 16),
		SignCount:         42,
		Flags:             store.FlagUserPresent | store.FlagUserVerified | store.FlagBackupEligible | store.FlagBackedUp,
		Transports:        []string{"internal", "hybrid"},
		Attachment:        "platform",
		Name:              "Laptop ☃ " + string('0'+n),
		Created:           base.Add(-time.Hour),
		LastUsed:          base.Add(-time.Minute),
	}
}

func testUsers(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	update(t, s, func(tx store.Tx) error {
		for _, name := range []string{"bob", "al", "carol"} {
			if err := tx.PutUser(&store.User{Name: name}); err != nil {
				return err
			}
		}
		return tx.PutUser(alice())
	})
	view(t, s, func(tx store.Tx) error {
		for _, missing := range []string{"", "ali", "Alice", "alice ", "alice\x00"} {
			if _, err := tx.User(missing); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("User(%q) error = %v, want ErrNotFound", missing, err)
			}
		}
		return nil
	})
	if err := s.Update(func(tx store.Tx) error { return tx.PutUser(&store.User{}) }); err == nil {
		t.Error("PutUser accepted a user without a name")
	}

	update(t, s, func(tx store.Tx) error { return tx.PutUser(&store.User{Name: "bob", SessionID: "new"}) })
	view(t, s, func(tx store.Tx) error {
		u, err := tx.User("bob")
		if err == nil && u.SessionID != "new" {
			t.Errorf("SessionID = %q after overwrite", u.SessionID)
		}
		return err
	})

	update(t, s, func(tx store.Tx) error {
		if err := tx.DeleteUser("bob"); err != nil {
			return err
		}
		return tx.DeleteUser("nobody") // deleting what is not there is fine
	})
	view(t, s, func(tx store.Tx) error {
		if _, err := tx.User("bob"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("User(bob) after delete: %v", err)
		}
		if got, err := tx.User("alice"); err != nil || !reflect.DeepEqual(got, alice()) {
			t.Errorf("User(alice) after deleting bob: %+v, %v", got, err)
		}
		var names []string
		err := tx.ForEachUser(func(u *store.User) error {
			names = append(names, u.Name)
			return nil
		})
		if want := []string{"al", "alice", "carol"}; err != nil || !slices.Equal(names, want) {
			t.Errorf("ForEachUser after delete visited %q, %v; want %q", names, err, want)
		}
		return nil
	})
}

func testUserRoundTrip(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	tests := []struct {
		name      string
		put, want *store.User
	}{
		{"every field", alice(), alice()},
		{"config user, not enrolled", &store.User{Name: "carol"}, &store.User{Name: "carol"}},
		{
			"times in another zone with a monotonic reading come back in UTC",
			&store.User{Name: "dave", Created: time.Now().In(elsewhere), TOTP: &store.Enrollment{Secret: []byte{1}, EnrolledAt: base.In(elsewhere)}},
			nil, // filled in below
		},
		{
			"empty slices come back nil",
			&store.User{Name: "erin", TOTP: &store.Enrollment{Secret: []byte{}, RecoveryDigests: [][]byte{}}},
			&store.User{Name: "erin", TOTP: &store.Enrollment{}},
		},
		{
			"an empty digest comes back nil",
			&store.User{Name: "frank", TOTP: &store.Enrollment{Secret: []byte{1}, RecoveryDigests: [][]byte{{}, {2}}}},
			&store.User{Name: "frank", TOTP: &store.Enrollment{Secret: []byte{1}, RecoveryDigests: [][]byte{nil, {2}}}},
		},
		{
			"largest step, zero times",
			&store.User{Name: "gina", TOTP: &store.Enrollment{Secret: []byte{1}, LastStep: 1<<64 - 1}},
			&store.User{Name: "gina", TOTP: &store.Enrollment{Secret: []byte{1}, LastStep: 1<<64 - 1}},
		},
		{
			"name with NUL, braces, colons and non-ASCII",
			&store.User{Name: "a\x00{b}:c ☃", SessionID: "x"},
			&store.User{Name: "a\x00{b}:c ☃", SessionID: "x"},
		},
		{"name that is one brace", &store.User{Name: "}"}, &store.User{Name: "}"}},
		{
			"passkeys only, times in another zone",
			&store.User{Name: "hana", WebAuthnID: []byte{1}, Passkeys: []store.Passkey{{ID: []byte{1}, PublicKey: []byte{2}, Created: base.In(elsewhere), LastUsed: base.In(elsewhere)}}},
			&store.User{Name: "hana", WebAuthnID: []byte{1}, Passkeys: []store.Passkey{{ID: []byte{1}, PublicKey: []byte{2}, Created: base, LastUsed: base}}},
		},
		{
			"empty passkey fields come back nil",
			&store.User{Name: "ivan", WebAuthnID: []byte{}, Passkeys: []store.Passkey{{ID: []byte{}, PublicKey: []byte{}, AAGUID: []byte{}, Transports: []string{}}}, RecoveryDigests: [][]byte{}},
			&store.User{Name: "ivan", Passkeys: []store.Passkey{{}}},
		},
		{"no passkeys left", &store.User{Name: "jo", WebAuthnID: []byte{3}, Passkeys: []store.Passkey{}}, &store.User{Name: "jo", WebAuthnID: []byte{3}}},
		{
			"devices and tokens, times in another zone",
			&store.User{Name: "kim",
				RememberedDevices: []store.RememberedDevice{{ID: "d", Digest: []byte{1}, Created: base.In(elsewhere), LastUsed: base.In(elsewhere), Expires: base.In(elsewhere)}},
				AppTokens:         []store.AppToken{{ID: "t", Digest: []byte{2}, Created: base.In(elsewhere), LastUsed: base.In(elsewhere), Expires: base.In(elsewhere)}}},
			&store.User{Name: "kim",
				RememberedDevices: []store.RememberedDevice{{ID: "d", Digest: []byte{1}, Created: base, LastUsed: base, Expires: base}},
				AppTokens:         []store.AppToken{{ID: "t", Digest: []byte{2}, Created: base, LastUsed: base, Expires: base}}},
		},
		{
			"empty device and token fields come back nil",
			&store.User{Name: "lee", RememberedDevices: []store.RememberedDevice{{Digest: []byte{}, Factors: []byte{}}}, AppTokens: []store.AppToken{{Digest: []byte{}}}},
			&store.User{Name: "lee", RememberedDevices: []store.RememberedDevice{{}}, AppTokens: []store.AppToken{{}}},
		},
		{
			"no devices or tokens left",
			&store.User{Name: "max", RememberedDevices: []store.RememberedDevice{}, AppTokens: []store.AppToken{}},
			&store.User{Name: "max"},
		},
	}
	dave := tests[2].put
	tests[2].want = &store.User{
		Name:    "dave",
		Created: dave.Created.Round(0).UTC(),
		TOTP:    &store.Enrollment{Secret: []byte{1}, EnrolledAt: base},
	}
	update(t, s, func(tx store.Tx) error {
		for _, tt := range tests {
			if err := tx.PutUser(tt.put); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx store.Tx) error {
		for _, tt := range tests {
			got, err := tx.User(tt.want.Name)
			if err != nil {
				t.Errorf("%s: User: %v", tt.name, err)
				continue
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s:\n got %+v\nwant %+v", tt.name, got, tt.want)
			}
			if got.Created.Location() != time.UTC {
				t.Errorf("%s: Created in %v, want UTC", tt.name, got.Created.Location())
			}
		}
		return nil
	})
}

func testForEachUser(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	// Byte order: upper case before lower, NUL first, multi-byte last.
	names := []string{"al", "al\x00x", "alice", "Bob", "bob", "é", "a"}
	update(t, s, func(tx store.Tx) error {
		for _, n := range names {
			if err := tx.PutUser(&store.User{Name: n, SessionID: "sid-" + n}); err != nil {
				return err
			}
		}
		return nil
	})
	want := slices.Clone(names)
	slices.Sort(want)
	for _, run := range []struct {
		name string
		do   func(func(store.Tx) error) error
	}{{"View", s.View}, {"Update", s.Update}} {
		t.Run(run.name, func(t *testing.T) {
			var got []string
			err := run.do(func(tx store.Tx) error {
				got = nil
				return tx.ForEachUser(func(u *store.User) error {
					if u.SessionID != "sid-"+u.Name {
						t.Errorf("ForEachUser gave %q the record of another", u.Name)
					}
					got = append(got, u.Name)
					return nil
				})
			})
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("ForEachUser visited %q, %v; want %q", got, err, want)
			}
		})
	}

	stop := errors.New("stop")
	n := 0
	err := s.View(func(tx store.Tx) error {
		return tx.ForEachUser(func(*store.User) error {
			n++
			return stop
		})
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("ForEachUser = %v after %d calls, want stop after 1", err, n)
	}

	empty := open(t)
	view(t, empty, func(tx store.Tx) error {
		return tx.ForEachUser(func(u *store.User) error {
			t.Errorf("ForEachUser of an empty store gave %q", u.Name)
			return nil
		})
	})
}

// fullSession is a session with every field set.
func fullSession() *store.Session {
	return &store.Session{
		Key:              key("full"),
		User:             "alice",
		Stage:            store.StageFull,
		UserSessionID:    "sid",
		Created:          base.Add(-2 * time.Hour),
		LastSeen:         base.Add(-time.Minute),
		Expires:          base.Add(time.Hour),
		ConfirmedAt:      base.Add(-time.Hour),
		Method:           "totp",
		Next:             "/admin?x=1",
		PendingSecret:    []byte{0, 1, 2},
		ClientIP:         "2001:db8::1",
		UserAgent:        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		Credential:       store.CredentialOf("$2a$04$hash"),
		Ceremony:         []byte{1, 2, 0, 0xff},
		RecheckAt:        base.Add(3 * time.Hour),
		EmailCode:        []byte{3, 4, 0, 0xff},
		EmailCodeExpires: base.Add(10 * time.Minute),
	}
}

func testSessionRoundTrip(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	mono := time.Now().In(elsewhere)
	tests := []struct {
		name      string
		put, want *store.Session
	}{
		{"every field", fullSession(), fullSession()},
		{
			"pending, zero times",
			&store.Session{Key: key("pending"), User: "bob", Stage: store.StagePending, Expires: base},
			&store.Session{Key: key("pending"), User: "bob", Stage: store.StagePending, Expires: base},
		},
		{
			"times in another zone with a monotonic reading come back in UTC",
			&store.Session{Key: key("zone"), User: "carol", Created: mono, LastSeen: mono, Expires: base.In(elsewhere), ConfirmedAt: mono, RecheckAt: mono},
			&store.Session{Key: key("zone"), User: "carol", Created: mono.Round(0).UTC(), LastSeen: mono.Round(0).UTC(), Expires: base, ConfirmedAt: mono.Round(0).UTC(), RecheckAt: mono.Round(0).UTC()},
		},
		{
			"empty slices come back nil",
			&store.Session{Key: key("empty"), User: "dave", Expires: base, PendingSecret: []byte{}, Ceremony: []byte{}},
			&store.Session{Key: key("empty"), User: "dave", Expires: base},
		},
		{
			"remembered, with a re-check deadline and no confirmation",
			&store.Session{Key: key("remembered"), User: "gil", Stage: store.StageFull, UserSessionID: "sid", Expires: base, Method: "remembered", RecheckAt: base.Add(-time.Second)},
			&store.Session{Key: key("remembered"), User: "gil", Stage: store.StageFull, UserSessionID: "sid", Expires: base, Method: "remembered", RecheckAt: base.Add(-time.Second)},
		},
		{
			"a ceremony without a credential",
			&store.Session{Key: key("ceremony"), User: "fay", Stage: store.StagePending, Expires: base, Ceremony: []byte{9}},
			&store.Session{Key: key("ceremony"), User: "fay", Stage: store.StagePending, Expires: base, Ceremony: []byte{9}},
		},
		{
			"odd user and agent",
			&store.Session{Key: key("odd"), User: "a\x00{b}:c ☃", Expires: base, UserAgent: "\x00\x01\tAgent/1 ☃"},
			&store.Session{Key: key("odd"), User: "a\x00{b}:c ☃", Expires: base, UserAgent: "\x00\x01\tAgent/1 ☃"},
		},
		{
			"zero key",
			&store.Session{User: "erin", Expires: base},
			&store.Session{User: "erin", Expires: base},
		},
	}
	update(t, s, func(tx store.Tx) error {
		for _, tt := range tests {
			if err := tx.PutSession(tt.put); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx store.Tx) error {
		for _, tt := range tests {
			got, err := tx.Session(tt.want.Key)
			if err != nil {
				t.Errorf("%s: Session: %v", tt.name, err)
				continue
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s:\n got %+v\nwant %+v", tt.name, got, tt.want)
			}
			for _, tm := range []time.Time{got.Created, got.LastSeen, got.Expires, got.ConfirmedAt, got.RecheckAt} {
				if tm.Location() != time.UTC {
					t.Errorf("%s: a time in %v, want UTC", tt.name, tm.Location())
				}
			}
		}
		return nil
	})
}

func testSessions(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	full := fullSession()
	pending := &store.Session{Key: key("pending"), User: "bob", Stage: store.StagePending, Expires: base}
	putSessions(t, s, full, pending)

	view(t, s, func(tx store.Tx) error {
		for _, missing := range []store.SessionKey{key("missing"), {}} {
			if _, err := tx.Session(missing); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Session(%x) error = %v, want ErrNotFound", missing[:4], err)
			}
		}
		return nil
	})
	if err := s.Update(func(tx store.Tx) error {
		return tx.PutSession(&store.Session{Key: key("x"), Expires: base})
	}); err == nil {
		t.Error("PutSession accepted a session without a user")
	}

	// An update of activity and stage in place.
	changed := fullSession()
	changed.LastSeen = base
	changed.Stage = store.StagePending
	putSessions(t, s, changed)
	view(t, s, func(tx store.Tx) error {
		got, err := tx.Session(full.Key)
		if err == nil && !reflect.DeepEqual(got, changed) {
			t.Errorf("Session after update = %+v, want %+v", got, changed)
		}
		return err
	})
	checkConsistent(t, s, "alice", "bob")

	update(t, s, func(tx store.Tx) error {
		if err := tx.DeleteSession(full.Key); err != nil {
			return err
		}
		return tx.DeleteSession(key("missing"))
	})
	if sessionExists(t, s, full.Key) {
		t.Error("session still there after DeleteSession")
	}
	if !sessionExists(t, s, pending.Key) {
		t.Error("DeleteSession deleted another session")
	}
	if got := viewUserSessionKeys(t, s, "alice"); len(got) != 0 {
		t.Errorf("UserSessions(alice) after delete = %d sessions", len(got))
	}
	checkConsistent(t, s, "alice", "bob")
}

func testUserSessions(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	// victim's key starts with 0x07 0x00, which a by-user index that
	// joins name, NUL and key could read as an entry of "al" when the
	// user "al\x00\x07" has a session.
	other := key("other")
	var victim store.SessionKey
	victim[0], victim[1] = 0x07, 0x00
	copy(victim[2:], other[:30])
	putSessions(t, s,
		session("al-1", "al", base),
		session("al-2", "al", base.Add(time.Hour)),
		session("alice-1", "alice", base),
		session("alice-2", "alice", base.Add(2*time.Hour)),
		session("alice-3", "alice", base.Add(3*time.Hour)),
		session("a-1", "a", base),
		session("bob-1", "bob", base),
		session("brace-1", "{al}", base),
		&store.Session{Key: victim, User: "victim", Expires: base},
		&store.Session{Key: other, User: "al\x00\x07", Expires: base},
	)
	tests := []struct {
		user string
		want []store.SessionKey
	}{
		{"al", keysOf("al-1", "al-2")},
		{"alice", keysOf("alice-1", "alice-2", "alice-3")},
		{"a", keysOf("a-1")},
		{"bob", keysOf("bob-1")},
		{"{al}", keysOf("brace-1")},
		{"al\x00\x07", []store.SessionKey{other}},
		{"victim", []store.SessionKey{victim}},
		{"b", nil},
		{"alic", nil},
		{"alicex", nil},
		{"al\x00", nil},
		{"", nil},
		{"nobody", nil},
	}
	for _, tt := range tests {
		if got := viewUserSessionKeys(t, s, tt.user); !slices.Equal(got, tt.want) {
			t.Errorf("UserSessions(%q) = %d sessions, want %d", tt.user, len(got), len(tt.want))
		}
	}
	checkConsistent(t, s, "al", "alice", "a", "bob", "{al}", "victim", "al\x00\x07")

	// A session put again under another user moves to that user.
	putSessions(t, s, session("al-2", "alice", base.Add(time.Hour)))
	if got, want := viewUserSessionKeys(t, s, "al"), keysOf("al-1"); !slices.Equal(got, want) {
		t.Errorf("UserSessions(al) after the move = %d sessions, want %d", len(got), len(want))
	}
	if got, want := viewUserSessionKeys(t, s, "alice"), keysOf("alice-1", "alice-2", "alice-3", "al-2"); !slices.Equal(got, want) {
		t.Errorf("UserSessions(alice) after the move = %d sessions, want %d", len(got), len(want))
	}
	checkConsistent(t, s, "al", "alice", "a", "bob", "{al}", "victim", "al\x00\x07")
}

func testForEachSession(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	want := map[store.SessionKey]*store.Session{}
	for _, sess := range []*store.Session{session("a", "alice", base), session("b", "bob", base), session("c", "alice", base.Add(1)), fullSession()} {
		sess.PendingSecret = []byte("sealed " + sess.User)
		want[sess.Key] = sess
	}
	putSessions(t, s, slices.Collect(func(yield func(*store.Session) bool) {
		for _, sess := range want {
			if !yield(sess) {
				return
			}
		}
	})...)
	for _, run := range []struct {
		name string
		do   func(func(store.Tx) error) error
	}{{"View", s.View}, {"Update", s.Update}} {
		t.Run(run.name, func(t *testing.T) {
			got := map[store.SessionKey]*store.Session{}
			var order []store.SessionKey
			err := run.do(func(tx store.Tx) error {
				clear(got)
				order = order[:0]
				return tx.ForEachSession(func(sess *store.Session) error {
					got[sess.Key] = sess
					order = append(order, sess.Key)
					return nil
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ForEachSession gave %d sessions, want the %d stored", len(got), len(want))
			}
			if !slices.IsSortedFunc(order, func(a, b store.SessionKey) int { return bytes.Compare(a[:], b[:]) }) {
				t.Error("ForEachSession did not go in key order")
			}
		})
	}

	stop := errors.New("stop")
	calls := 0
	err := s.View(func(tx store.Tx) error {
		return tx.ForEachSession(func(*store.Session) error {
			calls++
			return stop
		})
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("an error from fn did not stop the walk: %v after %d calls", err, calls)
	}
}

// pendingSession is session at the password step only.
func pendingSession(name, user string, expires time.Time) *store.Session {
	s := session(name, user, expires)
	s.Stage = store.StagePending
	return s
}

// testCountSessions follows the counts by stage through every way a
// session comes, changes stage or goes, read in the transaction that made
// the change and after it.
func testCountSessions(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	type counts = store.SessionCounts
	put := func(sessions ...*store.Session) func(store.Tx) error {
		return func(tx store.Tx) error {
			for _, sess := range sessions {
				if err := tx.PutSession(sess); err != nil {
					return err
				}
			}
			return nil
		}
	}
	steps := []struct {
		name string
		do   func(store.Tx) error
		want counts
	}{
		{"empty", func(store.Tx) error { return nil }, counts{}},
		{"two full put", put(session("a", "alice", base), session("b", "bob", base)), counts{Full: 2}},
		{"three pending put", put(
			pendingSession("p1", "alice", base.Add(time.Minute)),
			pendingSession("p2", "alice", base.Add(2*time.Minute)),
			pendingSession("p3", "carol", base.Add(time.Hour)),
		), counts{Pending: 3, Full: 2}},
		{"a full one put again", put(session("a", "alice", base.Add(time.Hour))), counts{Pending: 3, Full: 2}},
		{"a pending one put again", put(pendingSession("p1", "alice", base.Add(time.Minute))), counts{Pending: 3, Full: 2}},
		{"a pending one signed in on the same key", put(session("p1", "alice", base.Add(time.Minute))), counts{Pending: 2, Full: 3}},
		{"a full one back to pending", put(pendingSession("b", "bob", base)), counts{Pending: 3, Full: 2}},
		{"a pending one moved to another user", put(pendingSession("p2", "bob", base.Add(2*time.Minute))), counts{Pending: 3, Full: 2}},
		{"a full one moved and signed out", put(pendingSession("a", "carol", base.Add(time.Hour))), counts{Pending: 4, Full: 1}},
		{"a missing one deleted", func(tx store.Tx) error { return tx.DeleteSession(key("missing")) }, counts{Pending: 4, Full: 1}},
		{"a pending one deleted", func(tx store.Tx) error { return tx.DeleteSession(key("p3")) }, counts{Pending: 3, Full: 1}},
		{"a full one deleted", func(tx store.Tx) error { return tx.DeleteSession(key("p1")) }, counts{Pending: 3}},
		{"the user deleted, not the sessions", func(tx store.Tx) error { return tx.DeleteUser("bob") }, counts{Pending: 3}},
		{"more put", put(
			session("f1", "dave", base.Add(-time.Minute)),
			pendingSession("p4", "dave", base.Add(-time.Minute)),
			session("f2", "dave", base.Add(time.Hour)),
		), counts{Pending: 4, Full: 2}},
		{"the expired ones deleted", func(tx store.Tx) error {
			_, err := tx.DeleteExpiredSessions(base.Add(-time.Second), 10)
			return err
		}, counts{Pending: 3, Full: 1}},
		{"a user's sessions deleted one by one", func(tx store.Tx) error {
			sessions, err := tx.UserSessions("bob")
			if err != nil {
				return err
			}
			for _, sess := range sessions {
				if err := tx.DeleteSession(sess.Key); err != nil {
					return err
				}
			}
			return nil
		}, counts{Pending: 1, Full: 1}},
		{"the rest expired and deleted", func(tx store.Tx) error {
			_, err := tx.DeleteExpiredSessions(base.Add(time.Hour), 10)
			return err
		}, counts{}},
	}
	for _, st := range steps {
		update(t, s, func(tx store.Tx) error {
			if err := st.do(tx); err != nil {
				return err
			}
			if n, err := tx.CountSessions(); err != nil || n != st.want {
				t.Errorf("after %s, in its transaction: CountSessions = %+v, %v; want %+v", st.name, n, err, st.want)
			}
			return nil
		})
		if n := countSessions(t, s); n != st.want {
			t.Errorf("after %s: CountSessions = %+v, want %+v", st.name, n, st.want)
		}
		checkConsistent(t, s, "alice", "bob", "carol", "dave")
	}
}

func testViewIsReadOnly(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	writes := map[string]func(store.Tx) error{
		"PutMeta":       func(tx store.Tx) error { return tx.PutMeta("m", []byte("v")) },
		"PutUser":       func(tx store.Tx) error { return tx.PutUser(&store.User{Name: "alice"}) },
		"DeleteUser":    func(tx store.Tx) error { return tx.DeleteUser("alice") },
		"PutSession":    func(tx store.Tx) error { return tx.PutSession(session("s", "alice", base)) },
		"DeleteSession": func(tx store.Tx) error { return tx.DeleteSession(key("s")) },
		"DeleteExpiredSessions": func(tx store.Tx) error {
			_, err := tx.DeleteExpiredSessions(base, 10)
			return err
		},
		"PutAttempts":    func(tx store.Tx) error { return tx.PutAttempts("k", &store.Attempts{WindowStart: base}) },
		"DeleteAttempts": func(tx store.Tx) error { return tx.DeleteAttempts("k") },
		"DeleteAttemptsWithPrefix": func(tx store.Tx) error {
			_, err := tx.DeleteAttemptsWithPrefix("k")
			return err
		},
		"DeleteStaleAttempts": func(tx store.Tx) error {
			_, err := tx.DeleteStaleAttempts(base, time.Minute, 10)
			return err
		},
	}
	// Something to delete, so a store cannot pass by doing nothing.
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutUser(&store.User{Name: "alice"}); err != nil {
			return err
		}
		if err := tx.PutSession(session("s", "alice", base.Add(-time.Hour))); err != nil {
			return err
		}
		if err := tx.PutMeta("m", []byte("old")); err != nil {
			return err
		}
		return tx.PutAttempts("k", &store.Attempts{Failures: 1, WindowStart: base.Add(-time.Hour)})
	})
	for name, write := range writes {
		if err := s.View(write); err == nil {
			t.Errorf("%s succeeded in a View", name)
		}
	}
	view(t, s, func(tx store.Tx) error {
		if _, err := tx.User("alice"); err != nil {
			t.Errorf("user: %v", err)
		}
		if _, err := tx.Session(key("s")); err != nil {
			t.Errorf("session: %v", err)
		}
		if v, err := tx.Meta("m"); err != nil || string(v) != "old" {
			t.Errorf("meta: %q, %v", v, err)
		}
		if a, err := tx.Attempts("k"); err != nil || a.Failures != 1 {
			t.Errorf("attempts: %+v, %v", a, err)
		}
		return nil
	})
}
