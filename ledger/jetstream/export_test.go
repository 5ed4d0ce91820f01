package jetstream

// SetAfterCommit makes the sequencing loop run f after each batch is
// committed and before it is acknowledged; if f returns an error the
// partition loop stops dead (no ack, lock released), as a crash would.
func SetAfterCommit(cfg *SequencerConfig, f func(partition int) error) { cfg.afterCommit = f }

// SetLose makes the sequencing loop drop each delivered message for which
// f (given its stream and consumer sequences) returns true, as if it were
// lost between the server and the process.
func SetLose(cfg *SequencerConfig, f func(streamSeq, deliverySeq uint64) bool) { cfg.lose = f }

// EncodeBody and DecodeBody expose the message format to the tests of raw messages.
var (
	EncodeBody  = encodeBody
	DecodeBody  = decodeBody
	EncodeBatch = encodeBatch
)
