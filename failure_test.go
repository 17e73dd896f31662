package twofactor

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

func TestAnswerFailure(t *testing.T) {
	unavailable := fmt.Errorf("reading: %w", store.ErrUnavailable)
	for _, tc := range []struct {
		name    string
		err     error
		accept  string
		status  int  // of the returned HandlerError; 0 for none
		written int  // status written by answerFailure itself; 0 for none
		retry   bool // Retry-After set
		logged  int
	}{
		{name: "no error", err: nil},
		{name: "store unavailable, browser", err: unavailable, accept: "text/html", written: 503, retry: true, logged: 1},
		{name: "store unavailable, other client", err: unavailable, accept: "application/json", status: 503, retry: true},
		{name: "already a handler error", err: caddyhttp.Error(http.StatusBadRequest, errors.New("bad")), accept: "text/html", status: 400},
		{name: "internal error", err: errors.New("sealing failed"), accept: "text/html", status: 500},
		{name: "a missing record is no outage", err: store.ErrNotFound, accept: "text/html", status: 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			h := &TwoFactor{PathPrefix: DefaultPathPrefix, logger: zap.New(core)}
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, "/admin/", nil)
			r.Header.Set("Accept", tc.accept)
			err := h.answerFailure(w, r, "doing it", tc.err)

			var he caddyhttp.HandlerError
			switch {
			case tc.status == 0 && err != nil:
				t.Errorf("returned %v, want nil", err)
			case tc.status != 0 && (!errors.As(err, &he) || he.StatusCode != tc.status):
				t.Errorf("returned %v, want a HandlerError with status %d", err, tc.status)
			case tc.status != 0 && tc.status != 400 && !strings.Contains(err.Error(), "doing it"):
				t.Errorf("returned %v, which does not name the operation", err)
			}
			if tc.written != 0 {
				if w.Code != tc.written || !strings.Contains(w.Body.String(), "Sign-in is temporarily unavailable") || w.Header().Get("X-Frame-Options") != "DENY" {
					t.Errorf("wrote %d %v\n%s", w.Code, w.Header(), w.Body)
				}
			} else if w.Body.Len() > 0 {
				t.Errorf("wrote a body: %s", w.Body)
			}
			if got := w.Header().Get("Retry-After") != ""; got != tc.retry {
				t.Errorf("Retry-After %q, want set %v", w.Header().Get("Retry-After"), tc.retry)
			}
			if logs.Len() != tc.logged {
				t.Errorf("%d log lines, want %d", logs.Len(), tc.logged)
			}
		})
	}
}
