package boltstore

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// TestCodecReadsJSON reads records as earlier versions wrote them.
func TestCodecReadsJSON(t *testing.T) {
	s := store.Session{Key: key("a"), User: "alice", Stage: store.StageFull, Created: base, LastSeen: base, Expires: base.Add(time.Hour), Method: "totp", UserAgent: "x"}
	raw, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeSession(s.Key, raw); err != nil || !reflect.DeepEqual(*got, s) {
		t.Errorf("JSON session: %+v, %v", got, err)
	}
	u := store.User{Name: "alice", SessionID: "sid", TOTP: &store.Enrollment{Secret: []byte{1}, LastStep: 7, EnrolledAt: base}}
	if raw, err = json.Marshal(&u); err != nil {
		t.Fatal(err)
	}
	if got, err := decodeUser(raw); err != nil || !reflect.DeepEqual(*got, u) {
		t.Errorf("JSON user: %+v, %v", got, err)
	}
}
