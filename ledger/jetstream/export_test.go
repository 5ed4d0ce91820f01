package jetstream

// SetAfterCommit makes the sequencing loop run f after each batch is
// committed and before it is acknowledged; if f returns an error the
// partition loop stops dead (no ack, lock released), as a crash would.
func SetAfterCommit(cfg *SequencerConfig, f func(partition int) error) { cfg.afterCommit = f }

// EncodeBody and DecodeBody expose the message format to the tests of raw messages.
var (
	EncodeBody  = encodeBody
	DecodeBody  = decodeBody
	EncodeBatch = encodeBatch
)
