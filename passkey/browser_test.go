package passkey

import (
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// ceremonyPages serves templates/passkey.js and pages that use it under
// the module's Content-Security-Policy (plus connect-src 'self', which
// the script needs), with the ceremonies run by svc for one user.
type ceremonyPages struct {
	svc *Service

	mu      sync.Mutex
	user    *store.User
	sess    *store.Session
	outcome []string // of each finished ceremony
}

const pageCSRF = "csrf-token"

func (p *ceremonyPages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.URL.Path == "/favicon.ico" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.URL.Path == "/static/passkey.js" {
		js, err := os.ReadFile("../templates/passkey.js")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write(js)
		return
	}
	page, step, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	buttons := map[string]string{"register": "passkey-register", "confirm": "passkey-signin", "login": "passkey-login"}
	kinds := map[string]Kind{"register": Registration, "confirm": Login, "login": DiscoverableLogin}
	button, ok := buttons[page]
	if !ok {
		http.NotFound(w, r)
		return
	}
	switch {
	case r.Method == http.MethodGet && step == "":
		nonce := "n0nce"
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'nonce-"+nonce+"'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head><script nonce="%s" src="/static/passkey.js" defer></script></head><body>
<h1>%s</h1>
<form method="post" action="/%s" data-passkey-options="/%s/options">
<input type="hidden" name="csrf" value="%s"><input type="hidden" name="credential">
<input id="name" name="name" value="Virtual key">
<p data-passkey-nojs>Passkeys need JavaScript.</p>
<p role="alert" data-passkey-error hidden></p>
<button type="button" id="%s" disabled>Go</button>
</form></body></html>`, nonce, page, page, page, pageCSRF, button)
	case r.Method == http.MethodPost && step == "options":
		if r.PostFormValue("csrf") != pageCSRF {
			http.Error(w, `{"error":"form expired"}`, http.StatusForbidden)
			return
		}
		var begun *Begun
		var err error
		switch kinds[page] {
		case Registration:
			begun, err = p.svc.BeginRegistration(p.user)
		case Login:
			begun, err = p.svc.BeginLogin(p.user)
		default:
			begun, err = p.svc.BeginDiscoverableLogin()
		}
		if err != nil {
			http.Error(w, `{"error":"cannot begin"}`, http.StatusBadRequest)
			return
		}
		p.sess.Ceremony = begun.State
		w.Header().Set("Content-Type", "application/json")
		w.Write(begun.Options)
	case r.Method == http.MethodPost && step == "":
		answer := []byte(r.PostFormValue("credential"))
		c, err := p.svc.Take(p.sess, kinds[page])
		var pk *store.Passkey
		if err == nil {
			switch kinds[page] {
			case Registration:
				pk, err = p.svc.FinishRegistration(p.user, c, answer, r.PostFormValue("name"))
			case Login:
				pk, err = p.svc.FinishLogin(p.user, c, answer)
			default:
				_, pk, err = p.svc.FinishDiscoverableLogin(c, answer, func(h []byte) (*store.User, error) {
					if string(h) == string(p.user.WebAuthnID) {
						return p.user, nil
					}
					return nil, store.ErrNotFound
				})
			}
		}
		result := "refused: " + fmt.Sprint(err)
		if err == nil {
			result = fmt.Sprintf("%s: %s", page, pk.Name)
		}
		p.outcome = append(p.outcome, result)
		fmt.Fprintf(w, "<!doctype html><h1>%s</h1>", html.EscapeString(result))
	default:
		http.Error(w, "method", http.StatusMethodNotAllowed)
	}
}

// TestBrowserCeremonies runs passkey.js in headless Chromium with a
// virtual authenticator against a Service: registration, confirmation and
// passkey login succeed, a failed user verification shows its message on
// the page, and no page logs an error or a CSP violation.
func TestBrowserCeremonies(t *testing.T) {
	chromium := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless_shell"} {
		if path, err := exec.LookPath(name); err == nil {
			chromium = path
			break
		}
	}
	if chromium == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no Chromium for the browser test")
		}
		t.Skip("no Chromium for the browser test (apt-get install chromium)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	svc, err := New(Config{RPID: "localhost", RPName: "Test", Origins: []string{base}, UserVerification: Required, PasskeyLogin: true})
	if err != nil {
		t.Fatal(err)
	}
	pages := &ceremonyPages{svc: svc, user: &store.User{Name: "alice"}, sess: &store.Session{User: "alice"}}
	srv := &http.Server{Handler: pages, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	var mu sync.Mutex
	var problems []string
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU)...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				problems = append(problems, ev.Entry.Text+" "+ev.Entry.URL)
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, "script error: "+ev.ExceptionDetails.Text)
		}
	}))
	defer cancelTab()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdpwebauthn.Enable, cdpwebauthn.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	added, err := chromedp.Call(ctx, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{
		Options: &cdpwebauthn.VirtualAuthenticatorOptions{
			Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Ctap2version: cdpwebauthn.Ctap2versionCtap21,
			Transport: cdpwebauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	heading := func() string {
		t.Helper()
		h, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	ceremony := func(page, button, want string) {
		t.Helper()
		if _, err := chromedp.RunResponse(ctx, chromedp.Navigate(base+"/"+page)); err != nil {
			t.Fatal(err)
		}
		step, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if _, err := chromedp.RunResponse(step, chromedp.Click(chromedp.ID(button), chromedp.NodeEnabled)); err != nil {
			t.Fatalf("%s: %v", page, err)
		}
		if got := heading(); got != want {
			t.Fatalf("%s: the page says %q, want %q", page, got, want)
		}
	}
	ceremony("register", "passkey-register", "register: Virtual key")
	ceremony("confirm", "passkey-signin", "confirm: Virtual key")
	ceremony("login", "passkey-login", "login: Virtual key")
	pages.mu.Lock()
	if len(pages.user.Passkeys) != 1 || pages.user.Passkeys[0].Flags&store.FlagUserVerified == 0 {
		t.Errorf("passkeys after the ceremonies: %+v", pages.user.Passkeys)
	}
	pages.mu.Unlock()

	// The authenticator fails user verification: the browser refuses,
	// and the page says so in its alert without leaving.
	if _, err := chromedp.Call(ctx, cdpwebauthn.SetUserVerified, cdpwebauthn.SetUserVerifiedParams{AuthenticatorID: added.AuthenticatorID, IsUserVerified: false}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.RunResponse(ctx, chromedp.Navigate(base+"/login")); err != nil {
		t.Fatal(err)
	}
	alert, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("[data-passkey-error]")))
	if err == nil {
		err = chromedp.Do(ctx, chromedp.Click(chromedp.ID("passkey-login"), chromedp.NodeEnabled))
	}
	if err == nil {
		alert, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("[data-passkey-error]"), chromedp.NodeVisible))
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(alert, "cancelled or timed out") {
		t.Errorf("alert after a failed user verification: %q", alert)
	}
	if h := heading(); h != "login" {
		t.Errorf("the page left for %q after a failed ceremony", h)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("the browser logged: %s", p)
	}
}
