package verify

import (
	"context"
	"encoding/base64"
	"fmt"

	"aigw/ledger"
)

// ProofResult describes a proof that verified.
type ProofResult struct {
	Log string
	// Size and Root are those of the signed checkpoint the proof verified
	// against (tree_size, or size2 of a consistency proof); Signers are the
	// trusted keys that signed it.
	Size    uint64
	Root    ledger.Hash
	Signers []string
	// Inclusion proofs: the leaf index and hash, and the entry when the
	// proof carried it (its leaf hash was checked).
	Index    uint64
	LeafHash ledger.Hash
	Entry    *ledger.Event
	// Consistency proofs: the older size the tree was proved to extend.
	OldSize uint64
}

// Proof checks a proof file: an inclusion proof (ledger.InclusionProofJSON)
// or a consistency proof (ledger.ConsistencyProofJSON), as the read API
// serves them and `aigw proof` writes them. The proof must carry the signed
// checkpoint it verifies against, signed by one of opts.Verifiers with the
// log's origin (see Options.Origin). A consistency proof from a size above
// 0 also needs the older checkpoint, as opts.Old. It returns a
// *MismatchError for a proof that does not verify.
func Proof(ctx context.Context, proofFile []byte, opts Options) (*ProofResult, error) {
	if opts.Verifiers == nil {
		return nil, errNoVerifiers
	}
	ip, cp, err := ledger.ParseProof(proofFile)
	if err != nil {
		return nil, mismatch("", KindParse, 0, "an inclusion or consistency proof", err.Error())
	}
	if ip != nil {
		return inclusion(ip, opts)
	}
	return consistency(cp, opts)
}

func inclusion(p *ledger.InclusionProofJSON, opts Options) (*ProofResult, error) {
	log := p.Log
	if !ledger.ValidLogName(log) {
		return nil, mismatch(log, KindParse, p.Index, "a log name", fmt.Sprintf("%q", log))
	}
	if p.Checkpoint == "" {
		return nil, mismatch(log, KindSignature, p.TreeSize, "the signed checkpoint of tree size "+fmt.Sprint(p.TreeSize), "a proof without a checkpoint")
	}
	c, signers, mis := openCheckpoint(log, []byte(p.Checkpoint), opts.Origin, opts.Verifiers)
	if mis != nil {
		return nil, mis
	}
	if c.Size != p.TreeSize {
		return nil, mismatch(log, KindSize, p.TreeSize, fmt.Sprintf("a checkpoint of tree size %d", p.TreeSize), fmt.Sprintf("tree size %d", c.Size))
	}
	leaf, err := ledger.DecodeHashes([]string{p.LeafHash})
	if err != nil {
		return nil, mismatch(log, KindParse, p.Index, "a base64 leaf hash", err.Error())
	}
	hashes, err := ledger.DecodeHashes(p.Hashes)
	if err != nil {
		return nil, mismatch(log, KindParse, p.Index, "base64 proof hashes", err.Error())
	}
	res := &ProofResult{Log: log, Size: c.Size, Root: c.Root, Signers: signers, Index: p.Index, LeafHash: leaf[0]}
	if p.Entry != "" {
		entry, err := base64.StdEncoding.Strict().DecodeString(p.Entry)
		if err != nil {
			return nil, mismatch(log, KindParse, p.Index, "a base64 entry", err.Error())
		}
		if got := ledger.LeafHash(entry); got != leaf[0] {
			return nil, mismatch(log, KindEntry, p.Index, "leaf hash "+leaf[0].String(), "leaf hash "+got.String()+" of the entry")
		}
		if _, err := checkEntry(entry, log); err != nil {
			return nil, mismatch(log, KindParse, p.Index, "a canonical entry of log "+log, err.Error())
		}
		if res.Entry, err = ledger.ParseEntry(entry); err != nil {
			return nil, mismatch(log, KindParse, p.Index, "a canonical entry of log "+log, err.Error())
		}
	}
	if p.Index >= p.TreeSize {
		return nil, mismatch(log, KindProof, p.Index, fmt.Sprintf("an index below the tree size %d", p.TreeSize), fmt.Sprint(p.Index))
	}
	if err := ledger.VerifyInclusion(leaf[0], p.Index, p.TreeSize, hashes, c.Root); err != nil {
		return nil, mismatch(log, KindProof, p.Index, "an inclusion proof to root "+c.Root.String(), err.Error())
	}
	return res, nil
}

func consistency(p *ledger.ConsistencyProofJSON, opts Options) (*ProofResult, error) {
	log := p.Log
	if !ledger.ValidLogName(log) {
		return nil, mismatch(log, KindParse, p.Size1, "a log name", fmt.Sprintf("%q", log))
	}
	if p.Checkpoint == "" {
		return nil, mismatch(log, KindSignature, p.Size2, "the signed checkpoint of size2", "a proof without a checkpoint")
	}
	hashes, err := ledger.DecodeHashes(p.Hashes)
	if err != nil {
		return nil, mismatch(log, KindParse, p.Size1, "base64 proof hashes", err.Error())
	}
	if p.Size1 > 0 && opts.Old == nil {
		return nil, fmt.Errorf("verify consistency proof from size %d of log %q: the older checkpoint is needed (Options.Old)", p.Size1, log)
	}
	if p.Size1 == 0 && opts.Old != nil {
		opts.Old = nil // size 0 has one root, the empty one
	}
	res, err := Consistency(log, opts.Old, []byte(p.Checkpoint), hashes, opts)
	if err != nil {
		return nil, err
	}
	if res.OldSize != p.Size1 || res.Size != p.Size2 {
		return nil, mismatch(log, KindSize, p.Size2, fmt.Sprintf("checkpoints of sizes %d and %d", p.Size1, p.Size2), fmt.Sprintf("sizes %d and %d", res.OldSize, res.Size))
	}
	return res, nil
}

// Consistency checks that the signed checkpoint newer extends the signed
// checkpoint older (nil for the empty tree) of log, by the consistency proof
// hashes: both trusted and of log's origin, older no larger, the same root
// at the same size, and the proof verified.
func Consistency(log string, older, newer []byte, hashes []ledger.Hash, opts Options) (*ProofResult, error) {
	if opts.Verifiers == nil {
		return nil, errNoVerifiers
	}
	c2, signers, mis := openCheckpoint(log, newer, opts.Origin, opts.Verifiers)
	if mis != nil {
		return nil, mis
	}
	c1 := ledger.Checkpoint{Origin: c2.Origin, Size: 0, Root: ledger.EmptyRoot}
	if older != nil {
		if c1, _, mis = openCheckpoint(log, older, opts.Origin, opts.Verifiers); mis != nil {
			mis.Want = "old checkpoint: " + mis.Want
			return nil, mis
		}
		if c1.Origin != c2.Origin {
			return nil, mismatch(log, KindOrigin, c1.Size, fmt.Sprintf("origin %q (the newer checkpoint's)", c2.Origin), fmt.Sprintf("%q", c1.Origin))
		}
	}
	for _, c := range []ledger.Checkpoint{c1, c2} {
		if c.Size == 0 && c.Root != ledger.EmptyRoot {
			return nil, mismatch(log, KindRoot, 0, "the empty root "+ledger.EmptyRoot.String(), "root "+c.Root.String())
		}
	}
	switch {
	case c1.Size > c2.Size:
		return nil, mismatch(log, KindSize, c1.Size, fmt.Sprintf("a tree of at least %d entries", c1.Size), fmt.Sprintf("%d entries", c2.Size))
	case c1.Size == c2.Size && c1.Root != c2.Root:
		return nil, mismatch(log, KindFork, c1.Size, "root "+c1.Root.String(), "root "+c2.Root.String()+" at the same size")
	}
	if err := ledger.VerifyConsistency(c1.Size, c2.Size, hashes, c1.Root, c2.Root); err != nil {
		return nil, mismatch(log, KindProof, c1.Size, fmt.Sprintf("a consistency proof from size %d to %d", c1.Size, c2.Size), err.Error())
	}
	return &ProofResult{Log: log, Size: c2.Size, Root: c2.Root, Signers: signers, OldSize: c1.Size}, nil
}
