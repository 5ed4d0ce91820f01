package verify_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"aigw/verify"

	"golang.org/x/mod/sumdb/note"
)

// An auditor verifies an exported log with the log's verifier key (printed
// by `aigw keys`), keeping the checkpoint of the previous audit to prove
// that nothing was rewritten since.
func ExampleLog() {
	ctx := context.Background()
	v, err := note.NewVerifier("aigw.local/ledger+e0b9ac3d+AZ0ldlRl4V9c1MmE6IxTqTIO+qkKYQlVNoM9qVMfRUhc")
	if err != nil {
		fmt.Println(err)
		return
	}
	previous, _ := os.ReadFile("audit-2026-10/acme.checkpoint")
	res, err := verify.Log(ctx, verify.DirSource("export"), "acme", verify.Options{
		Verifiers: note.VerifierList(v),
		Origin:    "aigw.example.com/ledger/acme",
		Old:       previous,
	})
	var mis *verify.MismatchError
	switch {
	case errors.As(err, &mis):
		fmt.Printf("log acme is not intact: %s mismatch at %d: %v\n", mis.Kind, mis.Index, mis)
	case err != nil:
		fmt.Println("could not read the log:", err)
	default:
		fmt.Printf("log acme verified: %d entries, root %s, signed by %v\n", res.Size, res.Root, res.Signers)
	}
}

// A proof fetched from the read API, checked offline.
func ExampleProof() {
	v, err := note.NewVerifier("aigw.local/ledger+e0b9ac3d+AZ0ldlRl4V9c1MmE6IxTqTIO+qkKYQlVNoM9qVMfRUhc")
	if err != nil {
		fmt.Println(err)
		return
	}
	proof, _ := os.ReadFile("inclusion-acme-1234.json") // GET /ledger/acme/proof/inclusion?index=1234
	res, err := verify.Proof(context.Background(), proof, verify.Options{Verifiers: note.VerifierList(v)})
	if err != nil {
		fmt.Println("proof rejected:", err)
		return
	}
	fmt.Printf("entry %d (%s) is in log %s at size %d\n", res.Index, res.LeafHash, res.Log, res.Size)
}
