package verify_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies checks that verify can be trusted without aigw's storage
// code: besides the standard library it reaches only the ledger formats,
// golang.org/x/mod (signed notes), transparency-dev/merkle and uuid (both
// through ledger). No database driver, database/sql, NATS or other aigw
// package. (The root deps_test.go states the project-wide policy.)
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "aigw/verify").Output()
	if err != nil {
		t.Fatalf("go list -deps aigw/verify: %v", err)
	}
	allowed := []string{"aigw/verify", "aigw/ledger", "golang.org/x/mod/", "github.com/transparency-dev/merkle", "github.com/google/uuid"}
	for _, dep := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(dep, "/")
		std := !strings.Contains(first, ".") && first != "aigw"
		// database/sql/driver is only interfaces (uuid implements driver.Valuer);
		// database/sql itself would mean a database.
		if std && dep != "database/sql" {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || dep == a || strings.HasPrefix(dep, a) && (strings.HasSuffix(a, "/") || strings.HasPrefix(dep, a+"/"))
		}
		if !ok {
			t.Errorf("verify depends on %s", dep)
		}
	}
}
