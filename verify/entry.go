package verify

import (
	"fmt"

	"aigw/ledger"
)

// checkEntry checks that an entry is one ledger.ParseEntry accepts (with
// ledger.CheckEntry's fast path) and that it belongs to log. It returns the
// entry's payload commitment (hex, empty if none).
func checkEntry(e []byte, log string) (payload []byte, err error) {
	info, err := ledger.CheckEntry(e)
	if err != nil {
		return nil, err
	}
	if info.Tenant != log {
		return nil, fmt.Errorf("entry of tenant %q in log %q", info.Tenant, log)
	}
	return []byte(info.PayloadSHA256), nil
}
