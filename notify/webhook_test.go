package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/notify"
)

// hookServer answers with the statuses in order (200 once they run out)
// and records the bodies it got.
type hookServer struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	bodies   [][]byte
	types    []string
}

func startHookServer(t *testing.T, statuses ...int) *hookServer {
	t.Helper()
	h := &hookServer{statuses: statuses}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, body)
		h.types = append(h.types, r.Header.Get("Content-Type"))
		status := http.StatusOK
		if len(h.statuses) > 0 {
			status, h.statuses = h.statuses[0], h.statuses[1:]
		}
		h.mu.Unlock()
		if status == http.StatusFound {
			w.Header().Set("Location", "http://127.0.0.1:1/elsewhere")
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) requests() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.bodies)
}

// secretPath is part of every test webhook URL: it stands for a token.
const secretPath = "/topic-s3cr3t-t0ken?auth=q5ecr3t"

func newWebhook(t *testing.T, url string, timeout time.Duration) *notify.Webhook {
	t.Helper()
	w, err := notify.NewWebhook(notify.WebhookConfig{URL: url + secretPath, Timeout: timeout})
	if err != nil {
		t.Fatalf("NewWebhook: %v", err)
	}
	return w
}

func TestWebhookJSON(t *testing.T) {
	h := startHookServer(t)
	w := newWebhook(t, h.URL, waitLimit)
	n := aliceNotice(notify.RecoveryCodeUsed)
	n.RecoveryCodesLeft = intp(0)
	if err := w.Send(context.Background(), n); err != nil {
		t.Fatalf("Send: %v", err)
	}
	reqs := h.requests()
	if len(reqs) != 1 || h.types[0] != "application/json" {
		t.Fatalf("got %d requests, content type %q", len(reqs), h.types)
	}
	var got map[string]any
	if err := json.Unmarshal(reqs[0], &got); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, reqs[0])
	}
	want := map[string]any{
		"id":                  "n1",
		"event":               "recovery_code_used",
		"user":                "alice",
		"time":                "2026-11-29T12:00:00Z",
		"client_ip":           "203.0.113.7",
		"browser":             "Firefox on Linux",
		"recovery_codes_left": float64(0),
		"account_url":         "https://example.com/2fa/account",
		"title":               "A recovery code was used for alice",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	message, _ := got["message"].(string)
	containsAll(t, "message", message, "You have 0 recovery codes left.", "caddy two-factor revoke alice")
	if len(got) != len(want)+1 {
		t.Errorf("payload has fields %v, want exactly those of the schema", keys(got))
	}
	if strings.Contains(string(reqs[0]), "alice@example.com") {
		t.Error("the payload contains the user's address")
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestWebhookNeverCarriesTheCode(t *testing.T) {
	h := startHookServer(t)
	w := newWebhook(t, h.URL, waitLimit)
	n := aliceNotice(notify.EmailCode)
	n.Code = "97531864"
	if err := w.Send(context.Background(), n); err != nil {
		t.Fatalf("Send: %v", err)
	}
	body := string(h.requests()[0])
	if strings.Contains(body, "97531864") {
		t.Fatalf("webhook payload carries the code: %s", body)
	}
	if !strings.Contains(body, `"event":"email_code"`) || !strings.Contains(body, "a***@example.com") {
		t.Errorf("payload does not say a code was sent to the masked address: %s", body)
	}
}

func TestWebhookStatuses(t *testing.T) {
	tests := []struct {
		status    int
		ok        bool
		permanent bool
	}{
		{http.StatusOK, true, false},
		{http.StatusNoContent, true, false},
		{http.StatusInternalServerError, false, false},
		{http.StatusBadGateway, false, false},
		{http.StatusServiceUnavailable, false, false},
		{http.StatusRequestTimeout, false, false},
		{http.StatusTooManyRequests, false, false},
		{http.StatusBadRequest, false, true},
		{http.StatusUnauthorized, false, true},
		{http.StatusNotFound, false, true},
		{http.StatusFound, false, true}, // redirects are not followed
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			h := startHookServer(t, tt.status)
			err := newWebhook(t, h.URL, waitLimit).Send(context.Background(), aliceNotice(notify.AccountLocked))
			if (err == nil) != tt.ok || notify.IsPermanent(err) != tt.permanent {
				t.Fatalf("status %d: error %v, want ok=%v permanent=%v", tt.status, err, tt.ok, tt.permanent)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q contains the URL's secret", err)
			}
			if n := len(h.requests()); n != 1 {
				t.Errorf("%d requests, want 1 (redirect followed?)", n)
			}
		})
	}
}

func TestWebhookRetriesOn5xxAndGivesUpOn4xx(t *testing.T) {
	flaky := startHookServer(t, 500, 503)
	rejecting := startHookServer(t, 400)
	fw := withResults(newWebhook(t, flaky.URL, waitLimit))
	rw := withResults(newWebhook(t, rejecting.URL, waitLimit))
	clock := newFakeClock()
	log, logs := observed()
	d := newDispatcher(t, notify.Config{Senders: []notify.Sender{fw, rw}, Clock: clock, Logger: log})
	d.Enqueue(aliceNotice(notify.OperatorPasswordChange))

	if err := rw.next(t); !notify.IsPermanent(err) {
		t.Fatalf("400: %v, want a permanent error", err)
	}
	for range 2 { // 500, 503
		if err := fw.next(t); err == nil || notify.IsPermanent(err) {
			t.Fatalf("5xx: %v, want a temporary error", err)
		}
		clock.Advance(clock.nextWait(t))
	}
	if err := fw.next(t); err != nil {
		t.Fatalf("third attempt: %v", err)
	}
	if n := len(flaky.requests()); n != 3 {
		t.Errorf("flaky webhook got %d requests, want 3", n)
	}
	waitLog(t, logs, "sending notice failed; giving up")
	if n := len(rejecting.requests()); n != 1 {
		t.Errorf("rejecting webhook got %d requests, want 1", n)
	}
	noLeak(t, logs, "s3cr3t", "q5ecr3t")
}

func TestWebhookTimeout(t *testing.T) {
	release := make(chan struct{})
	h := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(h.Close)
	t.Cleanup(func() { close(release) })
	w := newWebhook(t, h.URL, 50*time.Millisecond)
	start := time.Now()
	err := w.Send(context.Background(), aliceNotice(notify.SignInNewBrowser))
	if err == nil || notify.IsPermanent(err) {
		t.Fatalf("Send to a hanging server: %v, want a temporary error", err)
	}
	if took := time.Since(start); took > waitLimit/2 {
		t.Errorf("Send took %v with a 50ms timeout", took)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error %q contains the URL's secret", err)
	}
}

func TestNewWebhookChecksConfig(t *testing.T) {
	tests := []struct {
		url     string
		wantErr string
	}{
		{url: "https://ntfy.example.com/admin-signins"},
		{url: "http://localhost:8080/hook"},
		{url: "http://127.0.0.1/hook"},
		{url: "http://[::1]:9/hook"},
		{url: "http://ntfy.example.com/hook", wantErr: "must use https"},
		{url: "ftp://example.com/hook", wantErr: "not https"},
		{url: "https:///nohost", wantErr: "no host"},
		{url: "ntfy.example.com/hook", wantErr: "no host"},
	}
	for _, tt := range tests {
		w, err := notify.NewWebhook(notify.WebhookConfig{URL: tt.url})
		if !checkConfigErr(t, fmt.Sprintf("NewWebhook(%q)", tt.url), err, tt.wantErr) {
			continue
		}
		if name := w.Name(); strings.Contains(name, "/") {
			t.Errorf("Name() = %q shows the URL's path", name)
		}
	}
	a, _ := notify.NewWebhook(notify.WebhookConfig{URL: "https://ntfy.example.com/a"})
	b, _ := notify.NewWebhook(notify.WebhookConfig{URL: "https://ntfy.example.com/b"})
	if a.Name() == b.Name() {
		t.Errorf("two webhooks on one host share the name %q: their claims would collide", a.Name())
	}
}

// idleTracker is a transport that records CloseIdleConnections.
type idleTracker struct {
	http.RoundTripper
	closed chan struct{}
}

func (t *idleTracker) CloseIdleConnections() { close(t.closed) }

func TestDispatcherCloseEndsWebhookConnections(t *testing.T) {
	h := startHookServer(t)
	tracker := &idleTracker{RoundTripper: http.DefaultTransport.(*http.Transport).Clone(), closed: make(chan struct{})}
	w, err := notify.NewWebhook(notify.WebhookConfig{URL: h.URL, Client: &http.Client{Transport: tracker}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Send(context.Background(), aliceNotice(notify.AccountLocked)); err != nil {
		t.Fatal(err) // leaves an idle keep-alive connection
	}
	d := notify.New(notify.Config{Senders: []notify.Sender{w}})
	closeWithin(t, d)
	select {
	case <-tracker.closed:
	default:
		t.Fatal("Close left the webhook's idle connections open")
	}
}
