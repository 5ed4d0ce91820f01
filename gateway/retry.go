package gateway

import (
	"context"
	"math/rand/v2"
	"time"
)

// RetryDelay is the wait before the attempt after attempt (1-based) of a
// background delivery (webhooks, exporters): minD doubled per attempt,
// capped at maxD, with equal jitter (half fixed, half random); at least
// retryAfter (what the server asked, see ParseRetryAfter), up to maxD.
func RetryDelay(attempt int, minD, maxD, retryAfter time.Duration) time.Duration {
	d := minD
	for i := 1; i < attempt && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	if half := d / 2; half > 0 {
		d = half + rand.N(half+1)
	}
	if retryAfter > d {
		d = min(retryAfter, maxD)
	}
	return d
}

// Sleep waits d, or until ctx is done (false).
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
