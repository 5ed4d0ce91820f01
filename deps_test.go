package aigw_test

// This test is a statement of policy (go/build deps_test.go): the dependency
// direction of DESIGN.md. DO NOT CHANGE THIS DATA TO FIX BUILDS; fix the import.

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

type pkgInfo struct {
	ImportPath string
	Deps       []string
}

func listPackages(t *testing.T) []pkgInfo {
	t.Helper()
	out, err := exec.Command("go", "list", "-json=ImportPath,Deps", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkgInfo
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkgInfo
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func under(path, prefix string) bool { return path == prefix || strings.HasPrefix(path, prefix+"/") }

func TestDependencyPolicy(t *testing.T) {
	rules := []struct {
		name    string
		applies func(pkg string) bool
		forbid  func(dep string) bool
	}{
		{"ledger imports no other aigw package",
			func(p string) bool { return p == "aigw/ledger" },
			func(d string) bool { return under(d, "aigw") && d != "aigw/ledger" }},
		{"ledger/... never imports gateway, evidence, controls or oscal",
			func(p string) bool { return under(p, "aigw/ledger") },
			func(d string) bool {
				return under(d, "aigw/gateway") || under(d, "aigw/evidence") || under(d, "aigw/controls") || under(d, "aigw/oscal")
			}},
		{"verify depends on the formats only: no store, no database driver, no NATS",
			func(p string) bool { return under(p, "aigw/verify") },
			func(d string) bool {
				return (under(d, "aigw") && d != "aigw/ledger" && !under(d, "aigw/evidence/bundle") && !under(d, "aigw/verify")) ||
					under(d, "github.com/jackc/pgx/v5") || under(d, "modernc.org/sqlite") || under(d, "github.com/nats-io/nats.go") || under(d, "github.com/nats-io/nats-server/v2")
			}},
		{"nothing imports gateway but gateway and cmd",
			func(p string) bool { return !under(p, "aigw/gateway") && !under(p, "aigw/cmd") },
			func(d string) bool { return under(d, "aigw/gateway") }},
		{"gin only in gateway/httpapi and cmd/aigw",
			func(p string) bool { return !under(p, "aigw/gateway/httpapi") && !under(p, "aigw/cmd/aigw") },
			func(d string) bool { return under(d, "github.com/gin-gonic/gin") }},
		{"test helper packages only from tests",
			func(p string) bool { return !strings.HasSuffix(p, "test") },
			func(d string) bool {
				return under(d, "aigw") && (strings.HasSuffix(d, "/storetest") || strings.HasSuffix(d, "/ledgertest") || strings.HasSuffix(d, "/providertest"))
			}},
	}
	for _, p := range listPackages(t) {
		for _, r := range rules {
			if !r.applies(p.ImportPath) {
				continue
			}
			for _, d := range p.Deps {
				if r.forbid(d) {
					t.Errorf("%s imports %s: breaks %q", p.ImportPath, d, r.name)
				}
			}
		}
	}
}
