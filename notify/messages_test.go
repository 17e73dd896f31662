package notify_test

import (
	"maps"
	"strings"
	"testing"

	"github.com/caddy-two-factor/caddy-two-factor/notify"
)

func TestEveryEventRenders(t *testing.T) {
	m := notify.DefaultMessages()
	for _, e := range notify.AllEvents {
		t.Run(string(e), func(t *testing.T) {
			n := aliceNotice(e)
			subject, body, err := m.Render(n)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if subject == "" || strings.ContainsAny(subject, "\r\n") || strings.Contains(subject, "<no value>") {
				t.Errorf("subject %q", subject)
			}
			containsAll(t, "body", body,
				"alice",
				"If this was not you",
				"https://example.com/2fa/account",
				"caddy two-factor revoke alice",
				"IP address: 203.0.113.7",
			)
			if strings.Contains(body, "<no value>") {
				t.Errorf("body has a missing value:\n%s", body)
			}
		})
	}
}

func TestMessageDetails(t *testing.T) {
	tests := []struct {
		name    string
		notice  func() notify.Notice
		want    []string
		wantNot []string
	}{
		{"0 recovery codes left", func() notify.Notice {
			n := aliceNotice(notify.RecoveryCodeUsed)
			n.RecoveryCodesLeft = intp(0)
			return n
		}, []string{"You have 0 recovery codes left."}, nil},
		{"1 recovery code left", func() notify.Notice {
			n := aliceNotice(notify.RecoveryCodeUsed)
			n.RecoveryCodesLeft = intp(1)
			return n
		}, []string{"You have 1 recovery code left."}, nil},
		{"count unknown", func() notify.Notice { return aliceNotice(notify.RecoveryCodeUsed) }, nil, []string{"You have"}},
		{"few left", func() notify.Notice {
			n := aliceNotice(notify.RecoveryCodesLow)
			n.RecoveryCodesLeft = intp(2)
			return n
		}, []string{"has only 2 recovery codes left"}, nil},
		{"labelled passkey", func() notify.Notice {
			n := aliceNotice(notify.PasskeyAdded)
			n.Item = "YubiKey 5"
			return n
		}, []string{`A passkey ("YubiKey 5") was added`}, nil},
		{"no account page", func() notify.Notice {
			n := aliceNotice(notify.AccountLocked)
			n.AccountURL = ""
			return n
		}, []string{"ask your administrator"}, []string{"Review your account"}},
		{"code mail", func() notify.Notice {
			n := aliceNotice(notify.EmailCode)
			n.Code = "01234567"
			return n
		}, []string{"Your sign-in code is 01234567", "expires in 10 minutes", "If this was not you"}, []string{"a***@"}},
		{"code notice without the code", func() notify.Notice { return aliceNotice(notify.EmailCode) },
			[]string{"A sign-in code was e-mailed to a***@example.com"}, []string{"Your sign-in code is"}},
		{"browser on one line", func() notify.Notice {
			n := aliceNotice(notify.SignInNewBrowser)
			n.Browser = "Evil\n\nClick https://phish.example"
			return n
		}, []string{"Browser: Evil  Click https://phish.example"}, []string{"\nClick"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, body, err := notify.DefaultMessages().Render(tt.notice())
			if err != nil {
				t.Fatal(err)
			}
			containsAll(t, "body", body, tt.want...)
			for _, s := range tt.wantNot {
				if strings.Contains(body, s) {
					t.Errorf("body has %q:\n%s", s, body)
				}
			}
		})
	}
}

func TestNewMessagesChecksCatalog(t *testing.T) {
	missing := maps.Clone(notify.English)
	delete(missing, "passkey_removed.body")
	if _, err := notify.NewMessages(missing); err == nil || !strings.Contains(err.Error(), "passkey_removed.body") {
		t.Errorf("catalog without a key: %v", err)
	}
	broken := maps.Clone(notify.English)
	broken["not_you"] = "{{.Nope"
	if _, err := notify.NewMessages(broken); err == nil {
		t.Error("catalog with a broken template accepted")
	}
	translated := maps.Clone(notify.English)
	translated["account_locked.subject"] = "Konto {{.User}} gesperrt"
	m, err := notify.NewMessages(translated)
	if err != nil {
		t.Fatal(err)
	}
	if subject, _, _ := m.Render(aliceNotice(notify.AccountLocked)); subject != "Konto alice gesperrt" {
		t.Errorf("translated subject %q", subject)
	}
}
