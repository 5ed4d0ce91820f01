// Package jetstream makes NATS JetStream the write-ahead of the ledger: the
// gateway publishes each event to a stream ([Producer]) and, in fail-closed
// mode, answers its caller only once JetStream has acknowledged it; sequencer
// processes pull the stream in batches, append them to the logs in one store
// transaction per log ([StartSequencer]) and only then acknowledge them. It
// also runs an embedded nats-server ([RunEmbedded]) for the single-process
// deployment and for tests.
//
// # Subjects and partitions
//
// A stream (default name "AUDIT") holds the subjects "<prefix>.>" (default
// prefix "aigw.audit"). An event of log L is published to
//
//	<prefix>.<partition>.<L>
//
// where partition = FNV-1a-32(L) mod Partitions ([StreamConfig.Partitions],
// default 1). Every sequencer process owns a set of partitions: for each it
// holds the store lock "partition-<p>" ([ledger.Store.Lock]) and reads a
// durable pull consumer "sequencer-<p>" filtered on "<prefix>.<p>.>". A log
// lives in exactly one partition, so exactly one process appends to it; the
// ledger scales out by running more sequencer processes over more partitions.
// A process that finds a partition locked retries in the background and takes
// over when the owner goes away. Producers and sequencers must agree on the
// prefix and on Partitions; changing Partitions moves logs between
// partitions, so drain the stream (let the sequencers catch up with no
// producers running) before changing it.
//
// # Message format (internal, but stable: a stream may outlive a release)
//
// The subject carries the log. The header Nats-Msg-Id is the event id, so
// JetStream drops a retried publish within the stream's duplicate window
// ([StreamConfig.Duplicates]); after the window the sequencer still finds the
// id in the log and skips it.
//
// The body of an event without a payload is its canonical entry bytes, as
// stored and hashed by the log (they start with '{'). The body of an event
// with a payload is a binary envelope:
//
//	0x00 0x01            magic and version (never the start of JSON)
//	uint32, big-endian   length of the entry, n
//	n bytes              the canonical entry
//	uint8                length of the salt, s (ledger.SaltSize)
//	s bytes              the salt
//	the rest             the payload (possibly empty)
//
// Several events of one log may travel in one message, a batch (what the
// gateway publishes for one call: its request, route, attempt and response
// events go to the ledger together or not at all):
//
//	0x00 0x02            magic and version
//	then, per event:
//	uint32, big-endian   length of the event's body, m
//	m bytes              the event's body: entry or envelope, as above
//
// A batch's Nats-Msg-Id is the id of its first event; the sequencer dedupes
// every event by its own id, so a redelivered batch is skipped event by
// event. A batch with any malformed event is malformed as a whole.
//
// The envelope is cheaper than headers: the consumer slices the body without
// copying or parsing text. Anything else is malformed: the sequencer
// terminates it (Term) and logs its subject and the reason, never its content.
//
// # Durability
//
// A PubAck means JetStream holds the event: in the server's memory, written
// to the OS within milliseconds, and fsynced within the sync interval (the
// embedded server: [DefaultSyncInterval]; nats-server's own default is two
// minutes). A crash of the process loses nothing written; a power loss can
// lose acknowledged events not yet sequenced that arrived within the
// interval. [EmbeddedConfig.SyncAlways] closes that window at one fsync per
// event; a replicated (R3) stream acknowledges only once a quorum holds it. The sequencer acknowledges a batch (AckAll: one
// DoubleAck of its last message) only after the store committed it. A crash
// between the commit and the ack redelivers the batch, and the sequencer skips
// the event ids the log already holds, so every event is appended exactly
// once. After an error, and whenever a process takes a partition over, the
// consumer is rewound to its ack floor, so nothing delivered but unacknowledged
// waits for AckWait and a log's entries keep the stream's order.
//
// The stream has limits retention with DiscardNew: an event is never dropped
// before it is sequenced; once the stream is full ([StreamConfig.MaxBytes])
// publishing fails and the producer answers [ledger.ErrBackpressure]. The
// sequencer purges what it has acknowledged, so the stream holds only the
// backlog.
package jetstream
