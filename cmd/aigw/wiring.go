package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"aigw/ledger"
	"aigw/ledger/jetstream"
	"aigw/ledger/postgres"
	"aigw/ledger/signer"
	"aigw/ledger/sqlite"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"golang.org/x/mod/sumdb/note"
)

// openStore opens the configured store: PostgreSQL when a database URL is
// set, else SQLite in the data directory.
func openStore(ctx context.Context, cfg Config, lg *slog.Logger) (ledger.Store, error) {
	if cfg.Ledger.DatabaseURL != "" {
		s, err := postgres.Open(ctx, postgres.Config{DSN: cfg.Ledger.DatabaseURL, Logger: lg})
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL ledger: %w", err)
		}
		return s, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(cfg.DataDir, "ledger.db"), Logger: lg})
	if err != nil {
		return nil, fmt.Errorf("open SQLite ledger: %w", err)
	}
	return s, nil
}

// natsURLFile is where `serve` writes the URL of its embedded NATS server,
// so that `aigw append` on the same data directory finds it.
func natsURLFile(cfg Config) string { return filepath.Join(cfg.DataDir, "nats.url") }

// natsToken returns the embedded NATS server's token, from
// DataDir/nats.token (0600), generated on the first start: kept across
// restarts, so that an `aigw sequence` connected to a fixed
// ledger.nats_listen reconnects after one.
func natsToken(cfg Config) (string, error) {
	path := filepath.Join(cfg.DataDir, "nats.token")
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); len(t) >= 32 {
			return t, nil
		}
		return "", fmt.Errorf("%s: too short a token; remove the file to generate a new one", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	t := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return "", err
	}
	return t, os.WriteFile(path, []byte(t+"\n"), 0o600)
}

// startNATS connects to the configured NATS, or starts the embedded server
// and connects to it in process. url is where other processes reach it:
// the configured URL, or the embedded server's with the token it requires
// (natsToken), which is also written to DataDir/nats.url (0600) for `aigw
// append` and `aigw sequence`.
func startNATS(cfg Config, lg *slog.Logger) (nc *nats.Conn, srv *server.Server, url string, err error) {
	if cfg.Ledger.NATSURL != "" {
		// No reconnect buffer: while NATS is unreachable a publish fails at
		// once (the gateway answers 503 before calling any provider) instead
		// of being buffered and recorded after the agent was refused.
		nc, err := nats.Connect(cfg.Ledger.NATSURL, nats.Name("aigw"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.ReconnectBufSize(-1))
		if err != nil {
			return nil, nil, "", fmt.Errorf("connect to NATS at %s: %w", redactNATS(cfg.Ledger.NATSURL), err)
		}
		return nc, nil, cfg.Ledger.NATSURL, nil
	}
	host, port, err := splitHostPort(cfg.Ledger.NATSListen)
	if err != nil {
		return nil, nil, "", fmt.Errorf("ledger.nats_listen: %w", err)
	}
	if port == 0 {
		port = -1
	}
	token, err := natsToken(cfg)
	if err != nil {
		return nil, nil, "", err
	}
	srv, err = jetstream.RunEmbedded(jetstream.EmbeddedConfig{
		StoreDir: filepath.Join(cfg.DataDir, "nats"), Host: host, Port: port, Logger: lg.With("component", "nats"),
		SyncAlways: cfg.Ledger.NATSSyncAlways, Token: token,
	})
	if err != nil {
		return nil, nil, "", fmt.Errorf("start embedded NATS: %w", err)
	}
	nc, err = nats.Connect(srv.ClientURL(), nats.InProcessServer(srv), nats.Name("aigw"), nats.Token(token))
	if err != nil {
		srv.Shutdown()
		return nil, nil, "", err
	}
	url = strings.Replace(srv.ClientURL(), "nats://", "nats://"+token+"@", 1)
	if err := os.WriteFile(natsURLFile(cfg), []byte(url+"\n"), 0o600); err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, nil, "", err
	}
	return nc, srv, url, nil
}

func splitHostPort(s string) (string, int, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("%q is not host:port", s)
	}
	var port int
	if _, err := fmt.Sscanf(s[i+1:], "%d", &port); err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q has a bad port", s)
	}
	return s[:i], port, nil
}

func streamConfig(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: cfg.Ledger.Stream, SubjectPrefix: cfg.Ledger.SubjectPrefix, Partitions: cfg.Ledger.Partitions}
}

// ledgerNATSURL is the NATS of the ledger for the commands that reach it
// from outside serve (append, sequence): the configured URL, or that of
// the embedded server of a serve on the data directory, with its token.
// what says what the command would do ("append to") if it had one.
func ledgerNATSURL(cfg Config, what string) (string, error) {
	if cfg.Ledger.NATSURL != "" {
		return cfg.Ledger.NATSURL, nil
	}
	b, err := os.ReadFile(natsURLFile(cfg))
	if err != nil {
		return "", fmt.Errorf("no NATS to %s: pass -nats-url, or run 'aigw serve' on data directory %s first (%v)", what, cfg.DataDir, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// openProducer connects a producer for `aigw append`: to the configured NATS
// URL, or to the embedded server of a `serve` running on the data directory.
func openProducer(ctx context.Context, cfg Config) (*jetstream.Producer, func(), error) {
	url, err := ledgerNATSURL(cfg, "append to")
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(url, nats.Name("aigw-append"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS at %s: %w", redactNATS(url), err)
	}
	p, err := jetstream.NewProducer(jetstream.ProducerConfig{Conn: nc, Stream: streamConfig(cfg)})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return p, func() { nc.Drain() }, nil
}

// loadSigner opens the checkpoint key; the default key file is created on
// first use. It also writes the verifier key beside a generated key.
func loadSigner(ctx context.Context, cfg Config, lg *slog.Logger) (*signer.Signer, error) {
	path := cfg.keyPath()
	if cfg.Ledger.Key == "" {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			s, priv, err := signer.Generate(cfg.Ledger.Origin)
			if err != nil {
				return nil, err
			}
			if err := signer.WriteKeyFile(path, s.Name(), priv); err != nil {
				return nil, fmt.Errorf("write checkpoint key: %w", err)
			}
			lg.Info("generated a checkpoint key", "path", path, "vkey", s.VerifierKey())
		}
	}
	s, err := signer.Open(ctx, path, cfg.Ledger.Origin)
	if err != nil {
		return nil, fmt.Errorf("checkpoint key: %w", err)
	}
	if cfg.Ledger.Key == "" {
		if err := os.WriteFile(filepath.Join(cfg.DataDir, "checkpoint.vkey"), []byte(s.VerifierKey()+"\n"), 0o644); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// trustedVerifiers parses the configured previous keys.
func trustedVerifiers(cfg Config) ([]note.Verifier, error) {
	var vs []note.Verifier
	for _, k := range cfg.Ledger.TrustedKeys {
		v, err := signer.ParseVerifier(strings.TrimSpace(k))
		if err != nil {
			return nil, fmt.Errorf("ledger.trusted_keys: %q: %w", k, err)
		}
		vs = append(vs, v)
	}
	return vs, nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// readClient is the HTTP client of the commands that use a server's read
// API, sending the read token when one is set (-token or $AIGW_READ_TOKEN).
func readClient(token string, timeout time.Duration) *http.Client {
	if token == "" {
		token = os.Getenv("AIGW_READ_TOKEN")
	}
	if token == "" {
		return &http.Client{Timeout: timeout}
	}
	return &http.Client{Timeout: timeout, Transport: bearerTransport{token: token, next: http.DefaultTransport}}
}

type bearerTransport struct {
	token string
	next  http.RoundTripper
}

func (t bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	return t.next.RoundTrip(r)
}
