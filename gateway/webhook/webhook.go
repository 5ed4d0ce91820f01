// Package webhook sends signed webhooks (quota alerts, and later other
// notifications) following the Standard Webhooks specification, and
// verifies them for receivers.
//
// Every message is POSTed as JSON {"type", "timestamp", "data"} with the
// headers webhook-id (the message id, the same on every attempt so that
// receivers deduplicate), webhook-timestamp (the attempt's Unix seconds)
// and webhook-signature ("v1," and the base64 HMAC-SHA256 of
// "{id}.{timestamp}.{body}" under the shared secret). [Verify] checks
// them on the receiving side.
//
// A [Sender] queues messages without blocking ([Sender.Send] fails when
// its bounded queue is full) and delivers them from background
// goroutines: a 2xx is delivered; network errors, 408, 429 and 5xx are
// retried with exponential backoff and jitter, honouring Retry-After, up
// to MaxAttempts; any other status (redirects are not followed) fails at
// once. Each message's outcome is reported to [Config.OnResult], so that
// the caller can record it (e.g. in the ledger).
//
// SPEC: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"aigw/gateway"
)

// Defaults applied to zero fields of a [Config].
const (
	// DefaultTimeout bounds an attempt (the specification recommends
	// giving receivers 15 to 30 s).
	DefaultTimeout     = 15 * time.Second
	DefaultMaxAttempts = 5
	DefaultQueueSize   = 1000
	DefaultConcurrency = 4
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = time.Minute
)

// Limits on what Send accepts.
const (
	MaxIDLen        = 256
	MaxEventTypeLen = 128
)

// Errors of Send.
var (
	// ErrQueueFull: the message was not queued; the caller records it.
	ErrQueueFull = errors.New("webhook: queue full")
	// ErrClosed: the sender is closed (Send), or closed before the
	// message was delivered (Result.Err wraps it).
	ErrClosed = errors.New("webhook: sender closed")
)

// Config configures a [Sender]. URL and Secret are required; every other
// zero field takes its default.
type Config struct {
	// URL is the receiver's endpoint: http or https.
	URL string
	// Secret is the signing secret, "whsec_<base64>" or a raw string (see
	// ParseSecret), of at least MinSecretBytes bytes. Never logged.
	Secret string
	// Timeout bounds each attempt (default DefaultTimeout).
	Timeout time.Duration
	// MaxAttempts bounds the attempts per message, the first included
	// (default DefaultMaxAttempts).
	MaxAttempts int
	// QueueSize bounds the messages waiting for delivery (default
	// DefaultQueueSize); Concurrency is the number delivered at once
	// (default DefaultConcurrency).
	QueueSize   int
	Concurrency int
	// MinBackoff and MaxBackoff bound the wait before a retry: it doubles
	// from MinBackoff at each attempt, with jitter, up to MaxBackoff. A
	// receiver's Retry-After is honoured up to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// OnResult, when set, receives the outcome of every queued message,
	// once, from a delivery goroutine (it should return quickly).
	OnResult func(Result)
	// Client sends the requests (default: a new http.Client). The sender
	// uses a copy that does not follow redirects.
	Client *http.Client
	// Logger receives the sender's logs (default: discarded).
	Logger *slog.Logger
}

// Validate reports the first problem of the config.
func (c Config) Validate() error {
	if _, err := parseURL(c.URL); err != nil {
		return err
	}
	s, err := ParseSecret(c.Secret)
	if err != nil {
		return fmt.Errorf("webhook: config: %w", err)
	}
	if s.Len() < MinSecretBytes {
		return fmt.Errorf("webhook: config: Secret has %d bytes; at least %d are required", s.Len(), MinSecretBytes)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"Timeout", int64(c.Timeout)}, {"MaxAttempts", int64(c.MaxAttempts)},
		{"QueueSize", int64(c.QueueSize)}, {"Concurrency", int64(c.Concurrency)},
		{"MinBackoff", int64(c.MinBackoff)}, {"MaxBackoff", int64(c.MaxBackoff)},
	} {
		if f.v < 0 {
			return fmt.Errorf("webhook: config: %s is negative", f.name)
		}
	}
	return nil
}

func parseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL may carry credentials: do not repeat it.
		return nil, errors.New("webhook: config: URL is not an http(s) URL")
	}
	return u, nil
}

// endpoint is the URL as logged: without credentials, query or fragment.
func endpoint(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// LogValue logs the config without its secret (and the URL without
// credentials or query).
func (c Config) LogValue() slog.Value {
	ep := ""
	if u, err := parseURL(c.URL); err == nil {
		ep = endpoint(u)
	}
	secret := ""
	if c.Secret != "" {
		secret = redacted
	}
	return slog.GroupValue(
		slog.String("url", ep),
		slog.String("secret", secret),
		slog.Int("max_attempts", c.MaxAttempts),
		slog.Int("queue_size", c.QueueSize),
	)
}

// String describes the config without its secret.
func (c Config) String() string { return c.LogValue().String() }

// Result is the outcome of a message.
type Result struct {
	// ID and EventType are the message's, as given to Send.
	ID, EventType string
	// Attempts is the number of requests made (0 when the sender closed
	// before any).
	Attempts int
	// Status is the HTTP status of the last attempt (0: none answered).
	Status int
	// Err is nil when the message was delivered (a 2xx), else why it was
	// not: the last attempt's status or error, or ErrClosed wrapped when
	// Close's deadline ended delivery. A 410 Gone means the receiver asks
	// to be sent nothing more.
	Err error
}

// message is a queued message.
type message struct {
	id, typ string
	body    []byte
}

// Sender delivers signed webhooks to one endpoint. It is safe for
// concurrent use. Make it with [New]; stop it with [Sender.Close].
type Sender struct {
	cfg      Config
	url      string
	endpoint string // for logs
	secret   Secret
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time

	mu     sync.RWMutex // Send holds it to enqueue, Close to close
	closed bool
	queue  chan message
	quit   chan struct{} // closed by Close: drain and stop
	done   chan struct{} // closed when every worker has stopped
	ctx    context.Context
	cancel context.CancelFunc // ends deliveries (Close's deadline)
}

// New validates cfg, fills in its defaults and starts the delivery
// goroutines; Close stops them.
func New(cfg Config) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, _ := parseURL(cfg.URL)
	secret, _ := ParseSecret(cfg.Secret)
	setDefault(&cfg.Timeout, DefaultTimeout)
	setDefault(&cfg.MaxAttempts, DefaultMaxAttempts)
	setDefault(&cfg.QueueSize, DefaultQueueSize)
	setDefault(&cfg.Concurrency, DefaultConcurrency)
	setDefault(&cfg.MinBackoff, DefaultMinBackoff)
	setDefault(&cfg.MaxBackoff, DefaultMaxBackoff)
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	client := &http.Client{}
	if cfg.Client != nil {
		c := *cfg.Client
		client = &c
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sender{
		cfg:      cfg,
		url:      cfg.URL,
		endpoint: endpoint(u),
		secret:   secret,
		client:   client,
		now:      time.Now,
		queue:    make(chan message, cfg.QueueSize),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		ctx:      ctx,
		cancel:   cancel,
	}
	s.log = cfg.Logger.With(slog.String("webhook_url", s.endpoint))
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(s.work)
	}
	go func() {
		wg.Wait()
		close(s.done)
	}()
	return s, nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// envelope is a message's body.
type envelope struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      any    `json:"data"`
}

// Send queues a message and returns at once: payload is encoded now (an
// encoding error is returned) as the data of a {"type", "timestamp",
// "data"} body, and delivered in the background; its Result goes to
// OnResult. msgID identifies the message to the receiver (webhook-id): it
// must be unique per message, stable across the caller's own retries, at
// most MaxIDLen printable ASCII characters, and without '.' or spaces.
// eventType is e.g. "quota.exceeded" (letters, digits, '_', '-', '.').
// Send returns ErrQueueFull when the queue is full and ErrClosed after
// Close; ctx only cancels the call (delivery does not depend on it).
func (s *Sender) Send(ctx context.Context, msgID, eventType string, payload any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("webhook: send %s: %w", msgID, err)
	}
	if err := checkID(msgID); err != nil {
		return err
	}
	if err := checkEventType(eventType); err != nil {
		return err
	}
	body, err := json.Marshal(envelope{
		Type:      eventType,
		Timestamp: s.now().UTC().Format(time.RFC3339Nano),
		Data:      payload,
	})
	if err != nil {
		return fmt.Errorf("webhook: send %s: encode payload: %w", msgID, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.queue <- message{id: msgID, typ: eventType, body: body}:
		return nil
	default:
		return ErrQueueFull
	}
}

func checkID(id string) error {
	if id == "" || len(id) > MaxIDLen {
		return fmt.Errorf("webhook: message id must have 1 to %d characters", MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' || c == '.' {
			return fmt.Errorf("webhook: message id %q: only printable ASCII without '.' or spaces", id)
		}
	}
	return nil
}

func checkEventType(t string) error {
	if t == "" || len(t) > MaxEventTypeLen {
		return fmt.Errorf("webhook: event type must have 1 to %d characters", MaxEventTypeLen)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("webhook: event type %q: only letters, digits, '_', '-' and '.'", t)
		}
	}
	return nil
}

// Close stops accepting messages and delivers those queued, retries
// included, within ctx. When ctx ends first it ends the deliveries in
// flight; every message not delivered gets a Result whose Err wraps
// ErrClosed, and Close returns an error wrapping ctx's. Calling Close
// again waits for the first call's work to end.
func (s *Sender) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.quit)
	}
	s.mu.Unlock()
	select {
	case <-s.done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		<-s.done
		return fmt.Errorf("webhook: close: deliveries not finished: %w", ctx.Err())
	}
}

// work delivers queued messages until Close, then drains the queue.
func (s *Sender) work() {
	for {
		select {
		case m := <-s.queue:
			s.report(s.deliver(m))
		case <-s.quit:
			for {
				select {
				case m := <-s.queue:
					s.report(s.deliver(m))
				default:
					return
				}
			}
		}
	}
}

func (s *Sender) report(r Result) {
	if r.Err != nil {
		s.log.Warn("webhook: not delivered", slog.String("webhook_id", r.ID), slog.String("event_type", r.EventType),
			slog.Int("attempts", r.Attempts), slog.Int("status", r.Status), slog.Any("error", r.Err))
	} else {
		s.log.Debug("webhook: delivered", slog.String("webhook_id", r.ID), slog.String("event_type", r.EventType),
			slog.Int("attempts", r.Attempts), slog.Int("status", r.Status))
	}
	if s.cfg.OnResult != nil {
		s.cfg.OnResult(r)
	}
}

// deliver sends m until it is delivered, fails for good, runs out of
// attempts or Close's deadline ends it.
func (s *Sender) deliver(m message) Result {
	res := Result{ID: m.id, EventType: m.typ}
	for {
		if s.ctx.Err() != nil {
			res.Err = closedError(res.Err)
			return res
		}
		res.Attempts++
		status, wait, err := s.attempt(m)
		res.Status = status
		switch {
		case err != nil:
			if s.ctx.Err() != nil {
				res.Err = closedError(err)
				return res
			}
			res.Err = err
		case status >= 200 && status < 300:
			res.Err = nil
			return res
		case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
			res.Err = fmt.Errorf("webhook: receiver answered HTTP %d", status)
		default:
			res.Err = fmt.Errorf("webhook: receiver answered HTTP %d", status)
			return res
		}
		if res.Attempts >= s.cfg.MaxAttempts {
			return res
		}
		d := s.backoff(res.Attempts, wait)
		s.log.Debug("webhook: retrying", slog.String("webhook_id", m.id), slog.Int("attempt", res.Attempts),
			slog.Duration("wait", d), slog.Any("error", res.Err))
		if !gateway.Sleep(s.ctx, d) {
			res.Err = closedError(res.Err)
			return res
		}
	}
}

// closedError is the error of a message Close's deadline ended, after
// last (nil when no attempt was made).
func closedError(last error) error {
	if last == nil {
		return fmt.Errorf("%w before delivery", ErrClosed)
	}
	return fmt.Errorf("%w before delivery (last attempt: %w)", ErrClosed, last)
}

// attempt makes one request: it returns the status, the Retry-After
// asked for, or the request's error.
func (s *Sender) attempt(m message) (status int, retry time.Duration, err error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(m.body))
	if err != nil {
		return 0, 0, fmt.Errorf("webhook: make request: %w", err)
	}
	now := s.now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "aigw-webhook")
	req.Header.Set(HeaderID, m.id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, s.secret.Sign(m.id, now, m.body))
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error // its message would hold the URL (and its query)
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, 0, fmt.Errorf("webhook: post: %w", err)
	}
	gateway.DrainBody(resp.Body)
	return resp.StatusCode, gateway.ParseRetryAfter(resp.Header, now), nil
}

// backoff is the wait before the attempt after attempt (see
// gateway.RetryDelay).
func (s *Sender) backoff(attempt int, retryAfter time.Duration) time.Duration {
	return gateway.RetryDelay(attempt, s.cfg.MinBackoff, s.cfg.MaxBackoff, retryAfter)
}
