package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of [StreamConfig].
const (
	DefaultStreamName    = "AUDIT"
	DefaultSubjectPrefix = "aigw.audit"
	DefaultDuplicates    = 20 * time.Second
	DefaultMaxBytes      = 4 << 30
)

// StreamConfig describes the stream the ledger's events go through. Producers
// and sequencers of one deployment must use the same Name, SubjectPrefix and
// Partitions. The zero value is the default single-node stream.
type StreamConfig struct {
	// Name of the stream; default [DefaultStreamName].
	Name string
	// SubjectPrefix: the stream holds "<SubjectPrefix>.>"; default
	// [DefaultSubjectPrefix]. Dot-separated tokens of [A-Za-z0-9_-].
	SubjectPrefix string
	// Partitions is the number of partitions logs are hashed into (see the
	// package documentation); default 1.
	Partitions int
	// Replicas: 1 by default, 3 in a NATS cluster.
	Replicas int
	// Duplicates is the window in which JetStream drops a repeated Nats-Msg-Id
	// (a producer retry); default [DefaultDuplicates]. After it the sequencer
	// still skips ids the log holds, at the cost of a store lookup. The
	// server keeps every id of the window in memory, ~150 bytes each
	// (TestDedupeWindowMemory): JetStream's default of 2 minutes is 140 MiB
	// at 2,000 calls/s of four events; 20 seconds, ten times the producer's
	// publish timeout, is a sixth of that.
	Duplicates time.Duration
	// MaxBytes bounds the stream (the backlog of unsequenced events, since the
	// sequencer purges what it has committed); publishing fails with
	// backpressure when it is full. Default [DefaultMaxBytes]; -1 is unlimited.
	MaxBytes int64
	// MaxAge drops events older than this even if they were never sequenced:
	// 0 (the default) never does, and anything else can lose audit events.
	MaxAge time.Duration
	// MaxMsgSize bounds one message (entry plus payload); 0 or -1 leaves it to
	// the server's max_payload (1 MiB by default).
	MaxMsgSize int32
}

// withDefaults returns c with its zero fields set to the defaults.
func (c StreamConfig) withDefaults() StreamConfig {
	if c.Name == "" {
		c.Name = DefaultStreamName
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultSubjectPrefix
	}
	if c.Partitions == 0 {
		c.Partitions = 1
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Duplicates == 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxMsgSize == 0 {
		c.MaxMsgSize = -1
	}
	return c
}

// Validate checks the configuration (after defaults are applied).
func (c StreamConfig) Validate() error {
	c = c.withDefaults()
	if !validToken(c.Name, false) {
		return fmt.Errorf("jetstream: stream name %q must be letters, digits, '_' or '-'", c.Name)
	}
	for _, tok := range strings.Split(c.SubjectPrefix, ".") {
		if !validToken(tok, false) {
			return fmt.Errorf("jetstream: subject prefix %q must be dot-separated tokens of letters, digits, '_' or '-'", c.SubjectPrefix)
		}
	}
	switch {
	case c.Partitions < 1 || c.Partitions > 1<<16:
		return fmt.Errorf("jetstream: %d partitions; want 1 to 65536", c.Partitions)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("jetstream: %d replicas; want 1 to 5", c.Replicas)
	case c.Duplicates < 0, c.MaxAge < 0:
		return errors.New("jetstream: negative duplicate window or max age")
	case c.MaxAge > 0 && c.MaxAge < c.Duplicates:
		return fmt.Errorf("jetstream: max age %v is shorter than the duplicate window %v", c.MaxAge, c.Duplicates)
	}
	return nil
}

func validToken(s string, dots bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || dots && c == '.') {
			return false
		}
	}
	return true
}

// Partition returns the partition of a log: FNV-1a-32 of its name modulo
// the number of partitions.
func (c StreamConfig) Partition(log string) int {
	n := c.withDefaults().Partitions
	if n == 1 {
		return 0
	}
	return int(fnv1a(log) % uint32(n))
}

// fnv1a is FNV-1a-32 (hash/fnv's New32a) without its allocations.
func fnv1a(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// Subject returns the subject events of a log are published to:
// "<prefix>.<partition>.<log>".
func (c StreamConfig) Subject(log string) string {
	c = c.withDefaults()
	return c.partitionPrefix(c.Partition(log)) + log
}

// PartitionFilter returns the subject filter of a partition, "<prefix>.<p>.>".
func (c StreamConfig) PartitionFilter(p int) string {
	return c.withDefaults().partitionPrefix(p) + ">"
}

func (c StreamConfig) partitionPrefix(p int) string {
	return c.SubjectPrefix + "." + strconv.Itoa(p) + "."
}

// ConsumerName is the durable consumer of a partition, "sequencer-<p>".
func ConsumerName(p int) string { return "sequencer-" + strconv.Itoa(p) }

// LockName is the store lock that makes a process a partition's one
// sequencer, "partition-<p>".
func LockName(p int) string { return "partition-" + strconv.Itoa(p) }

// EnsureStream creates the stream, or updates an existing one to cfg. The
// stream stores files, holds "<prefix>.>", keeps everything until it is
// purged (limits retention, DiscardNew: a full stream refuses new events
// rather than dropping old ones) and deduplicates Nats-Msg-Id within
// cfg.Duplicates.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	want := jetstream.StreamConfig{
		Name:              cfg.Name,
		Description:       "aigw ledger write-ahead: events not yet sequenced",
		Subjects:          []string{cfg.SubjectPrefix + ".>"},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardNew,
		Storage:           jetstream.FileStorage,
		Replicas:          cfg.Replicas,
		Duplicates:        cfg.Duplicates,
		MaxAge:            cfg.MaxAge,
		MaxBytes:          cfg.MaxBytes,
		MaxMsgs:           -1,
		MaxMsgsPerSubject: -1,
		MaxMsgSize:        cfg.MaxMsgSize,
		MaxConsumers:      -1,
	}
	// A stream already as wanted is left alone: a needless update, while
	// another process creates its consumer, races inside nats-server
	// (v2.15.2, filestore UpdateConfig vs ConsumerStore, seen under -race).
	if s, err := js.Stream(ctx, cfg.Name); err == nil && sameStream(s.CachedInfo().Config, want) {
		return s, nil
	}
	s, err := js.CreateOrUpdateStream(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("jetstream: create or update stream %q: %w", cfg.Name, err)
	}
	return s, nil
}

// sameStream reports whether a stream's configuration has every setting
// EnsureStream sets.
func sameStream(have, want jetstream.StreamConfig) bool {
	return have.Description == want.Description && slices.Equal(have.Subjects, want.Subjects) &&
		have.Retention == want.Retention && have.Discard == want.Discard && have.Storage == want.Storage &&
		have.Replicas == want.Replicas && have.Duplicates == want.Duplicates && have.MaxAge == want.MaxAge &&
		have.MaxBytes == want.MaxBytes && have.MaxMsgs == want.MaxMsgs && have.MaxMsgsPerSubject == want.MaxMsgsPerSubject &&
		have.MaxMsgSize == want.MaxMsgSize && have.MaxConsumers == want.MaxConsumers
}
