package loadgen

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

func TestServerShutdownWaitsForStreams(t *testing.T) {
	t.Parallel()
	s, err := Start(NewFakeUpstream(FakeConfig{ChunkDelay: 10 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(s.URL+"/v1/chat/completions", "application/json", bytes.NewReader(streamBody))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	body, err := io.ReadAll(resp.Body) // the stream in flight completes
	if err != nil {
		t.Fatalf("stream cut by Shutdown: %v", err)
	}
	checkStream(t, body, DefaultFakeChunks, "The quick brown fox jumps over the lazy", true)
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := http.Get(s.URL + "/v1/models"); err == nil {
		t.Error("server still answers after Shutdown")
	}
}
