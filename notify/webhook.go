package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// DefaultWebhookTimeout bounds one webhook attempt.
const DefaultWebhookTimeout = 10 * time.Second

// WebhookConfig configures one webhook.
type WebhookConfig struct {
	// URL receives a JSON POST per notice. It must be https, or http to a
	// loopback host. It may hold a secret (a topic, a token): it is never
	// logged.
	URL string
	// Timeout bounds one attempt. Default: DefaultWebhookTimeout.
	Timeout time.Duration
	// Client sends the requests; its redirects are never followed.
	// Default: a new http.Client.
	Client *http.Client
	// Messages renders the title and message. Default: DefaultMessages().
	Messages *Messages
}

// Webhook posts notices as JSON (see WebhookPayload).
type Webhook struct {
	cfg    WebhookConfig
	name   string
	client *http.Client
}

// WebhookPayload is the JSON body of a webhook request. Title and Message
// are the e-mail's subject and text (so Gotify and similar services show
// them as they are); the code of an email_code notice is never in it.
type WebhookPayload struct {
	Notice
	Title   string `json:"title"`
	Message string `json:"message"`
}

// NewWebhook checks cfg and applies its defaults.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("webhook url: %w", err)
	}
	switch {
	case u.Host == "":
		return nil, errors.New("webhook url has no host")
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	case u.Scheme == "http":
		return nil, fmt.Errorf("webhook to %s must use https (plain http only for localhost)", u.Hostname())
	default:
		return nil, fmt.Errorf("webhook url scheme %q is not https", u.Scheme)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultWebhookTimeout
	}
	if cfg.Messages == nil {
		cfg.Messages = DefaultMessages()
	}
	// A transport of its own, so Close can end its idle connections
	// (and their goroutines) without touching anyone else's.
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	if cfg.Client != nil {
		c := *cfg.Client
		client = &c
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	sum := sha256.Sum256([]byte(cfg.URL))
	// The host and a short hash of the whole URL: stable across instances,
	// distinct per URL, and no secret path or query in the logs.
	name := "webhook " + u.Host + "#" + hex.EncodeToString(sum[:4])
	return &Webhook{cfg: cfg, name: name, client: client}, nil
}

// Name implements Sender.
func (w *Webhook) Name() string { return w.name }

// Accepts implements Sender: every notice.
func (w *Webhook) Accepts(Notice) bool { return true }

// Send implements Sender. A 2xx answer is success; 408, 429, 5xx and
// network errors are retried; any other answer is permanent.
func (w *Webhook) Send(ctx context.Context, n Notice) error {
	n.Code = "" // never leaves in a webhook
	title, message, err := w.cfg.Messages.For(n.Language).Render(n)
	if err != nil {
		return Permanent(err)
	}
	body, err := json.Marshal(WebhookPayload{Notice: n, Title: title, Message: message})
	if err != nil {
		return Permanent(fmt.Errorf("encoding webhook payload: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("%s: %w", w.name, urlFree(err)))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "caddy-two-factor")
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", w.name, urlFree(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return fmt.Errorf("%s answered %s", w.name, resp.Status)
	default:
		return Permanent(fmt.Errorf("%s answered %s", w.name, resp.Status))
	}
}

// Close ends the webhook's idle connections; the dispatcher calls it when
// it closes.
func (w *Webhook) Close() error {
	w.client.CloseIdleConnections()
	return nil
}

// urlFree drops the URL that net/http puts in its errors: it may hold a
// secret.
func urlFree(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// Interface guards
var (
	_ Sender    = (*Webhook)(nil)
	_ io.Closer = (*Webhook)(nil)
)
