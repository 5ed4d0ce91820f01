package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// delivery is a request the receiver got.
type delivery struct {
	id, timestamp string
	body          []byte
	verifyErr     error
	arrived       time.Time
}

// receiver is a webhook endpoint that verifies every request with Verify
// and answers what answer returns for the n-th request (0-based).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	answer func(n int, w http.ResponseWriter, r *http.Request)

	mu  sync.Mutex
	got []delivery
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{t: t, answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived := time.Now()
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q; want application/json", ct)
		}
		d := delivery{
			id: r.Header.Get(HeaderID), timestamp: r.Header.Get(HeaderTimestamp), body: body, arrived: arrived,
			verifyErr: Verify(testSecret, r.Header, body, DefaultTolerance),
		}
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, d)
		rc.mu.Unlock()
		if d.verifyErr != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if rc.answer != nil {
			rc.answer(n, w, r)
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

// results collects a sender's results.
type results struct {
	mu  sync.Mutex
	got []Result
	ch  chan Result
}

func newResults() *results { return &results{ch: make(chan Result, 1000)} }

func (rs *results) on(r Result) {
	rs.mu.Lock()
	rs.got = append(rs.got, r)
	rs.mu.Unlock()
	rs.ch <- r
}

// next waits for the next result (failing the test after 10 s: a bound
// on a hang, not a timing assertion).
func (rs *results) next(t *testing.T) Result {
	t.Helper()
	select {
	case r := <-rs.ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a result")
		return Result{}
	}
}

type testLog struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return l.b.Write(p)
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newSender makes a sender to url with fast retries; tune changes the
// config first. It is closed when the test ends.
func newSender(t *testing.T, url string, tune func(*Config)) (*Sender, *results, *testLog) {
	t.Helper()
	rs := newResults()
	lg := &testLog{t: t}
	cfg := Config{
		URL: url, Secret: testSecret, OnResult: rs.on,
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(lg, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if tune != nil {
		tune(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s, rs, lg
}

type quota struct {
	Tenant string `json:"tenant"`
	Budget string `json:"budget"`
	Spent  string `json:"spent"`
}

func TestDeliveryRetriedWithSameID(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n < 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	s, rs, _ := newSender(t, rc.srv.URL, nil)
	if err := s.Send(context.Background(), "msg_quota_acme_1", "quota.exceeded", quota{"acme", "monthly", "100.250000000"}); err != nil {
		t.Fatal(err)
	}
	res := rs.next(t)
	if res != (Result{ID: "msg_quota_acme_1", EventType: "quota.exceeded", Attempts: 3, Status: 200}) {
		t.Errorf("Result = %+v; want delivered on attempt 3", res)
	}
	got := rc.deliveries()
	if len(got) != 3 {
		t.Fatalf("receiver got %d requests; want 3", len(got))
	}
	for i, d := range got {
		if d.verifyErr != nil {
			t.Errorf("attempt %d does not verify: %v", i+1, d.verifyErr)
		}
		if d.id != "msg_quota_acme_1" {
			t.Errorf("attempt %d webhook-id = %q; want the same id on every retry", i+1, d.id)
		}
		if !bytes.Equal(d.body, got[0].body) {
			t.Errorf("attempt %d body differs from the first's", i+1)
		}
	}
	var env struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      quota  `json:"data"`
	}
	if err := json.Unmarshal(got[0].body, &env); err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse(time.RFC3339Nano, env.Timestamp); err != nil || env.Type != "quota.exceeded" || env.Data.Tenant != "acme" {
		t.Errorf("body = %s; want {type, timestamp, data}", got[0].body)
	}
}

func TestNoRetry(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusGone, http.StatusFound} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			var followed sync.Once
			other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
				followed.Do(func() { t.Errorf("the sender followed a redirect") })
			}))
			t.Cleanup(other.Close)
			rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
				if status == http.StatusFound {
					http.Redirect(w, r, other.URL, status)
					return
				}
				w.WriteHeader(status)
			})
			s, rs, _ := newSender(t, rc.srv.URL, nil)
			if err := s.Send(context.Background(), "msg_1", "quota.warning", map[string]int{"percent": 80}); err != nil {
				t.Fatal(err)
			}
			res := rs.next(t)
			if res.Attempts != 1 || res.Status != status || res.Err == nil {
				t.Errorf("Result = %+v; want one attempt, status %d and an error", res, status)
			}
			if !strings.Contains(res.Err.Error(), fmt.Sprint(status)) {
				t.Errorf("Result.Err = %v; want it to name HTTP %d", res.Err, status)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	s, rs, _ := newSender(t, rc.srv.URL, func(c *Config) { c.MaxBackoff = time.Minute })
	if err := s.Send(context.Background(), "msg_1", "quota.exceeded", nil); err != nil {
		t.Fatal(err)
	}
	if res := rs.next(t); res.Err != nil || res.Attempts != 2 {
		t.Errorf("Result = %+v; want delivered on attempt 2", res)
	}
	got := rc.deliveries()
	// A lower bound the sender guarantees (it waits Retry-After), not a
	// measure of speed.
	if gap := got[1].arrived.Sub(got[0].arrived); gap < time.Second {
		t.Errorf("retried %v after a 429 with Retry-After: 1; want at least 1s", gap)
	}
}

func TestAttemptsBounded(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	s, rs, _ := newSender(t, rc.srv.URL, func(c *Config) { c.MaxAttempts = 3 })
	if err := s.Send(context.Background(), "msg_1", "quota.exceeded", nil); err != nil {
		t.Fatal(err)
	}
	if res := rs.next(t); res.Attempts != 3 || res.Status != 500 || res.Err == nil {
		t.Errorf("Result = %+v; want 3 failed attempts", res)
	}
	if n := len(rc.deliveries()); n != 3 {
		t.Errorf("receiver got %d requests; want MaxAttempts 3", n)
	}
}

func TestNetworkErrorRetried(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s, rs, lg := newSender(t, "http://user:pw-in-url@"+addr+"/hook?token=query-secret", func(c *Config) { c.MaxAttempts = 3 })
	if err := s.Send(context.Background(), "msg_1", "quota.exceeded", nil); err != nil {
		t.Fatal(err)
	}
	res := rs.next(t)
	if res.Attempts != 3 || res.Status != 0 || res.Err == nil {
		t.Errorf("Result = %+v; want 3 attempts, no status, an error", res)
	}
	for _, leak := range []string{"query-secret", "pw-in-url"} {
		if strings.Contains(res.Err.Error(), leak) || strings.Contains(lg.String(), leak) {
			t.Errorf("the URL's credentials appear in the error or logs: %v\n%s", res.Err, lg)
		}
	}
}

func TestQueueFullAndCloseDeadline(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the receiver closes
	s, rs, _ := newSender(t, rc.srv.URL, func(c *Config) { c.QueueSize = 1; c.Concurrency = 1 })

	accepted := 0
	var full error
	for i := range 10 {
		err := s.Send(context.Background(), fmt.Sprintf("msg_%d", i), "quota.exceeded", nil)
		if err == nil {
			accepted++
		} else {
			full = err
		}
	}
	if !errors.Is(full, ErrQueueFull) {
		t.Fatalf("10 sends into a queue of 1 with a hanging receiver: last error %v; want ErrQueueFull", full)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); err == nil {
		t.Errorf("Close returned nil with the receiver hanging")
	}
	for range accepted {
		if res := rs.next(t); !errors.Is(res.Err, ErrClosed) {
			t.Errorf("Result = %+v; want an error wrapping ErrClosed", res)
		}
	}
	if err := s.Send(context.Background(), "msg_late", "quota.exceeded", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v; want ErrClosed", err)
	}
}

func TestCloseDrains(t *testing.T) {
	rc := newReceiver(t, nil)
	s, rs, _ := newSender(t, rc.srv.URL, func(c *Config) { c.Concurrency = 2 })
	const n = 20
	for i := range n {
		if err := s.Send(context.Background(), fmt.Sprintf("msg_%d", i), "quota.exceeded", i); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	ids := map[string]bool{}
	for _, r := range rs.got {
		if r.Err != nil {
			t.Errorf("Result = %+v; want delivered", r)
		}
		ids[r.ID] = true
	}
	if len(rs.got) != n || len(ids) != n {
		t.Errorf("Close delivered %d results for %d ids; want %d", len(rs.got), len(ids), n)
	}
}

func TestSendValidates(t *testing.T) {
	rc := newReceiver(t, nil)
	s, _, _ := newSender(t, rc.srv.URL, nil)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, test := range []struct {
		name          string
		ctx           context.Context
		id, eventType string
		payload       any
	}{
		{"EmptyID", context.Background(), "", "quota.exceeded", nil},
		{"DotInID", context.Background(), "msg.1", "quota.exceeded", nil},
		{"SpaceInID", context.Background(), "msg 1", "quota.exceeded", nil},
		{"LongID", context.Background(), strings.Repeat("a", MaxIDLen+1), "quota.exceeded", nil},
		{"EmptyType", context.Background(), "msg_1", "", nil},
		{"BadType", context.Background(), "msg_1", "quota exceeded", nil},
		{"Unencodable", context.Background(), "msg_1", "quota.exceeded", make(chan int)},
		{"CancelledContext", cancelled, "msg_1", "quota.exceeded", nil},
	} {
		t.Run(test.name, func(t *testing.T) {
			if err := s.Send(test.ctx, test.id, test.eventType, test.payload); err == nil {
				t.Errorf("Send = nil; want an error")
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{URL: "https://hooks.example.com/aigw", Secret: testSecret}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate(good) = %v", err)
	}
	if err := (Config{URL: "http://127.0.0.1:9/hook", Secret: "a raw secret of more than 24 bytes"}).Validate(); err != nil {
		t.Errorf("Validate(raw secret) = %v", err)
	}
	for _, test := range []struct {
		name string
		edit func(*Config)
	}{
		{"NoURL", func(c *Config) { c.URL = "" }},
		{"FTP", func(c *Config) { c.URL = "ftp://hooks.example.com/aigw" }},
		{"File", func(c *Config) { c.URL = "file:///etc/passwd" }},
		{"NoHost", func(c *Config) { c.URL = "https:///aigw" }},
		{"Relative", func(c *Config) { c.URL = "/aigw" }},
		{"NoSecret", func(c *Config) { c.Secret = "" }},
		{"ShortSecret", func(c *Config) { c.Secret = "short" }},
		{"BadWhsec", func(c *Config) { c.Secret = "whsec_!!!" }},
		{"NegativeAttempts", func(c *Config) { c.MaxAttempts = -1 }},
	} {
		t.Run(test.name, func(t *testing.T) {
			c := good
			test.edit(&c)
			if _, err := New(c); err == nil {
				t.Errorf("New(%v) = nil error", c)
			}
		})
	}
}

func TestSecretNotLogged(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 0 {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	s, rs, lg := newSender(t, rc.srv.URL, nil)
	if err := s.Send(context.Background(), "msg_1", "quota.exceeded", nil); err != nil {
		t.Fatal(err)
	}
	rs.next(t)
	s.log.Info("config", "config", s.cfg, "secret", s.secret)
	out := lg.String() + fmt.Sprintf("%v %+v %s", s.cfg, s.cfg, s.cfg)
	if strings.Contains(out, strings.TrimPrefix(testSecret, SecretPrefix)) {
		t.Errorf("the secret appears in logs or a printed Config:\n%s", out)
	}
}

func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	s, err := New(Config{URL: srv.URL, Secret: testSecret, QueueSize: 1024})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	payload := quota{"acme", "monthly", "100.250000000"}
	b.ReportAllocs()
	for b.Loop() {
		s.Send(context.Background(), "msg_1", "quota.exceeded", payload) // ErrQueueFull when ahead of delivery
	}
}
