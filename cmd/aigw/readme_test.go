package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestREADMEConfigs: every YAML config in the README loads (known fields
// only) and validates, so the documentation cannot drift from the code.
func TestREADMEConfigs(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(b), -1)
	if len(blocks) < 3 {
		t.Fatalf("found %d YAML blocks in README.md", len(blocks))
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)\}`).FindAllStringSubmatch(string(b), -1) {
		t.Setenv(m[1], "whsec_"+strings.Repeat("QUJD", 8)) // a syntactically valid secret for every ${VAR}
	}
	for i, blk := range blocks {
		path := filepath.Join(t.TempDir(), "aigw.yaml")
		os.WriteFile(path, []byte(blk[1]), 0o600)
		cfg, err := loadConfig(path)
		if err != nil {
			t.Errorf("README YAML block %d does not load: %v\n%s", i+1, err, blk[1])
			continue
		}
		if err := cfg.validate(); err != nil {
			t.Errorf("README YAML block %d does not validate: %v\n%s", i+1, err, blk[1])
		}
		if bs := cfg.Budgets.Budgets; len(bs) == 3 {
			// Money and durations are read as written, not as floats.
			if *bs[0].LimitUSD != 5000_000_000_000 || time.Duration(bs[2].Window.Period) != 168*time.Hour || bs[2].Scope.AgentID != "planner" {
				t.Errorf("README budgets read as %+v", bs)
			}
		}
	}
}
