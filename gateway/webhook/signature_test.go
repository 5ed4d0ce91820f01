package webhook

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test vector of the Standard Webhooks reference libraries.
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTime   = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignKnownAnswer(t *testing.T) {
	s, err := ParseSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sign(vectorID, time.Unix(vectorTime, 0), []byte(vectorBody)); got != vectorSig {
		t.Errorf("Sign = %s; want %s", got, vectorSig)
	}
}

// signed returns the headers of body signed with secret at ts.
func signed(t *testing.T, secret, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	s, err := ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, s.Sign(id, ts, body))
	return h
}

func TestVerify(t *testing.T) {
	const raw = "a raw secret of more than 24 bytes"
	body := []byte(`{"type":"quota.exceeded","timestamp":"2026-11-27T14:00:00Z","data":{"tenant":"acme"}}`)
	now := time.Now()
	for _, test := range []struct {
		name   string
		secret string // verifying secret (default vectorSecret)
		header func() http.Header
		body   []byte // default body
		tol    time.Duration
		want   error
	}{
		{name: "Valid", header: func() http.Header { return signed(t, vectorSecret, "msg_1", now, body) }},
		{name: "RawSecret", secret: raw, header: func() http.Header { return signed(t, raw, "msg_1", now, body) }},
		{name: "TamperedBody", header: func() http.Header { return signed(t, vectorSecret, "msg_1", now, body) },
			body: []byte(strings.Replace(string(body), "acme", "acmf", 1)), want: ErrNoMatchingSignature},
		{name: "TamperedID", header: func() http.Header {
			h := signed(t, vectorSecret, "msg_1", now, body)
			h.Set(HeaderID, "msg_2")
			return h
		}, want: ErrNoMatchingSignature},
		{name: "TamperedTimestamp", header: func() http.Header {
			h := signed(t, vectorSecret, "msg_1", now, body)
			h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10))
			return h
		}, want: ErrNoMatchingSignature},
		{name: "WrongSecret", secret: raw, header: func() http.Header { return signed(t, vectorSecret, "msg_1", now, body) },
			want: ErrNoMatchingSignature},
		{name: "OldTimestamp", header: func() http.Header { return signed(t, vectorSecret, "msg_1", now.Add(-10*time.Minute), body) },
			want: ErrTimestampTooOld},
		{name: "FutureTimestamp", header: func() http.Header { return signed(t, vectorSecret, "msg_1", now.Add(10*time.Minute), body) },
			want: ErrTimestampTooNew},
		{name: "OldWithinWiderTolerance", tol: time.Hour,
			header: func() http.Header { return signed(t, vectorSecret, "msg_1", now.Add(-10*time.Minute), body) }},
		{name: "OldOutsideNarrowTolerance", tol: time.Minute,
			header: func() http.Header { return signed(t, vectorSecret, "msg_1", now.Add(-2*time.Minute), body) },
			want:   ErrTimestampTooOld},
		{name: "NotAnInteger", header: func() http.Header {
			h := signed(t, vectorSecret, "msg_1", now, body)
			h.Set(HeaderTimestamp, "2026-11-27T14:00:00Z")
			return h
		}, want: ErrInvalidTimestamp},
		{name: "MissingSignature", header: func() http.Header {
			h := signed(t, vectorSecret, "msg_1", now, body)
			h.Del(HeaderSignature)
			return h
		}, want: ErrMissingHeaders},
		{name: "MissingID", header: func() http.Header {
			h := signed(t, vectorSecret, "msg_1", now, body)
			h.Del(HeaderID)
			return h
		}, want: ErrMissingHeaders},
		{name: "RotatedSecrets", header: func() http.Header {
			h := signed(t, vectorSecret, "msg_1", now, body)
			old := signed(t, raw, "msg_1", now, body).Get(HeaderSignature)
			h.Set(HeaderSignature, old+" v1a,AAAA "+h.Get(HeaderSignature)+" v2,xyz garbage")
			return h
		}},
		{name: "OnlyOtherVersions", header: func() http.Header {
			h := signed(t, vectorSecret, "msg_1", now, body)
			_, b64, _ := strings.Cut(h.Get(HeaderSignature), ",")
			h.Set(HeaderSignature, "v1a,"+b64+" v2,"+b64)
			return h
		}, want: ErrNoMatchingSignature},
		{name: "LongSignature", header: func() http.Header {
			h := signed(t, vectorSecret, "msg_1", now, body)
			h.Set(HeaderSignature, "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 4096)))
			return h
		}, want: ErrNoMatchingSignature},
	} {
		t.Run(test.name, func(t *testing.T) {
			secret := cmpOr(test.secret, vectorSecret)
			b := body
			if test.body != nil {
				b = test.body
			}
			err := Verify(secret, test.header(), b, test.tol)
			if !errors.Is(err, test.want) || (test.want == nil) != (err == nil) {
				t.Errorf("Verify = %v; want %v", err, test.want)
			}
		})
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestParseSecret(t *testing.T) {
	for _, bad := range []string{"", "whsec_", "whsec_not base64!"} {
		if _, err := ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q) = nil error", bad)
		}
	}
	s, err := ParseSecret(vectorSecret)
	if err != nil || s.Len() != 24 {
		t.Errorf("ParseSecret(vector) = %d bytes, %v; want 24", s.Len(), err)
	}
	if r, _ := ParseSecret("raw"); r.Len() != 3 {
		t.Errorf("ParseSecret(raw) = %d bytes; want the string's 3", r.Len())
	}
	fresh, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if fs, err := ParseSecret(fresh); err != nil || fs.Len() != 32 || !strings.HasPrefix(fresh, SecretPrefix) {
		t.Errorf("NewSecret = %q: %d bytes, %v; want whsec_ and 32 bytes", fresh, fs.Len(), err)
	}
	var sb strings.Builder
	slog.New(slog.NewTextHandler(&sb, nil)).Info("secret", "s", s)
	out := fmt.Sprintf("%v %+v %#v %s %x %q", s, s, s, s, s, s) + sb.String()
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(vectorSecret, SecretPrefix))
	for _, leak := range []string{strings.TrimPrefix(vectorSecret, SecretPrefix), fmt.Sprintf("%x", key), string(key)} {
		if strings.Contains(out, leak) {
			t.Errorf("a printed Secret shows its key: %s", out)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	s, _ := ParseSecret(vectorSecret)
	body := []byte(`{"type":"quota.exceeded","timestamp":"2026-11-27T14:00:00Z","data":{"tenant":"acme","budget":"monthly","limit":"100.000000000","spent":"100.250000000"}}`)
	ts := time.Unix(vectorTime, 0)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		s.Sign(vectorID, ts, body)
	}
}

func BenchmarkVerify(b *testing.B) {
	s, _ := ParseSecret(vectorSecret)
	body := []byte(`{"type":"quota.exceeded","timestamp":"2026-11-27T14:00:00Z","data":{"tenant":"acme"}}`)
	now := time.Now()
	h := http.Header{}
	h.Set(HeaderID, vectorID)
	h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(HeaderSignature, s.Sign(vectorID, now, body))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.verify(h, body, time.Minute, now); err != nil {
			b.Fatal(err)
		}
	}
}
