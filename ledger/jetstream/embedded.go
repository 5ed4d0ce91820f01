package jetstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedConfig configures an embedded nats-server.
type EmbeddedConfig struct {
	// StoreDir is where JetStream keeps its files. Required: the write-ahead
	// must survive a restart.
	StoreDir string
	// Host to listen on; default 127.0.0.1.
	Host string
	// Port to listen on; 0 means the NATS default (4222) and -1 a random
	// free port (what tests must use).
	Port int
	// ServerName names the server; default "aigw-embedded".
	ServerName string
	// MaxStore caps JetStream file storage in bytes; 0 lets the server pick
	// (a share of the free disk).
	MaxStore int64
	// Logger receives the server's logs (notices at Info, debug and trace
	// lines are dropped); nil discards them.
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for the server to accept connections;
	// default 10s.
	ReadyTimeout time.Duration
	// SyncInterval is how often JetStream fsyncs its files: default
	// [DefaultSyncInterval] (nats-server's own default is two minutes, too
	// long a window of acknowledged events that a power loss could take for
	// an audit log's write-ahead); negative keeps the server's default.
	SyncInterval time.Duration
	// SyncAlways fsyncs every message before its PubAck: no window at all,
	// at the cost of one fsync per event (about 6,000 events/s on the
	// development machine's disk, ingest-limits §2.2).
	SyncAlways bool
	// Token, when set, is required of every client (nats.Token, or
	// nats://TOKEN@host:port), the in-process ones included: without it
	// anyone who can reach the port may publish into the ledger's stream.
	Token string
}

// DefaultEmbeddedMaxPayload is the embedded server's message size limit: a
// gateway call's events travel in one message with the request and the
// response as payloads, so nats-server's 1 MiB default is too small.
const DefaultEmbeddedMaxPayload = 32 << 20

// DefaultSyncInterval is the embedded server's fsync interval.
const DefaultSyncInterval = 10 * time.Second

// RunEmbedded starts a nats-server in this process with JetStream on file
// storage under cfg.StoreDir and waits until it accepts connections. The
// caller stops it with Shutdown (and WaitForShutdown). Clients in the same
// process can connect with nats.InProcessServer(srv), which skips TCP.
func RunEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("jetstream: embedded server needs a store directory")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "aigw-embedded"
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	opts := &server.Options{
		ServerName:        cfg.ServerName,
		Host:              cfg.Host,
		Port:              cfg.Port,
		JetStream:         true,
		StoreDir:          cfg.StoreDir,
		JetStreamMaxStore: cfg.MaxStore,
		NoSigs:            true,
		NoLog:             cfg.Logger == nil,
		SyncAlways:        cfg.SyncAlways,
		MaxPayload:        DefaultEmbeddedMaxPayload,
		Authorization:     cfg.Token,
	}
	switch {
	case cfg.SyncInterval == 0:
		opts.SyncInterval = DefaultSyncInterval
	case cfg.SyncInterval > 0:
		opts.SyncInterval = cfg.SyncInterval
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("jetstream: embedded server: %w", err)
	}
	if cfg.Logger != nil {
		srv.SetLoggerV2(slogAdapter{cfg.Logger.With("component", "nats-server")}, false, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(cfg.ReadyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("jetstream: embedded server on %s:%d not ready after %v", cfg.Host, cfg.Port, cfg.ReadyTimeout)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("jetstream: embedded server started without JetStream (store directory unusable?)")
	}
	return srv, nil
}

// slogAdapter is a server.Logger writing to slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.log(slog.LevelInfo, format, v) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.log(slog.LevelWarn, format, v) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.log(slog.LevelError, format, v) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.log(slog.LevelError, format, v) }
func (a slogAdapter) Debugf(format string, v ...any)  {}
func (a slogAdapter) Tracef(format string, v ...any)  {}

func (a slogAdapter) log(level slog.Level, format string, v []any) {
	if a.l.Enabled(context.Background(), level) {
		a.l.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

// discardLogger is the logger of a nil Config.Logger.
func discardLogger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
