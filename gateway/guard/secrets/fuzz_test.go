package secrets

import (
	"aigw/gateway/guard/internal/guardbench"
	"aigw/gateway/guard/textnorm"
	"slices"
	"strings"
	"testing"
)

// FuzzScan: Scan never panics, its findings are in range, ordered and
// disjoint, and skipping normalization (textnorm.Affects false) finds what
// normalizing finds.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		"AKIA" + rnd(upper32, 16), "ghp_" + rnd(alnum, 36), "password=" + rnd(alnum, 12) + "!",
		"-----BEGIN RSA PRIVATE KEY-----\n" + pemBody(3, "\n") + "-----END RSA PRIVATE KEY-----",
		"-----BEGIN RSA PRIVATE KEY-----", "-----END", "postgres://u:p4ss@h/db", "redis://:@", "https://a:b@c",
		"eyJ" + rnd(b64url, 20) + ".eyJ" + rnd(b64url, 20) + ".", "data:image/png;base64," + rnd(b64, 64),
		"api_key\\\": \\\"" + rnd(alnum, 20), "Bearer " + rnd(alnum, 30), "sk-ant-x-", "xoxb-", "SK" + rnd(hexdigits, 32),
		"key=", "secret::=", "ghp_\u200b" + rnd(alnum, 36), "\xff\xfeAKIA",
	} {
		f.Add(s)
	}
	f.Add(guardbench.Prompt())
	d := New(Config{})
	f.Fuzz(func(t *testing.T, text string) {
		fs := d.Scan(text, nil)
		for i, g := range fs {
			if g.Start < 0 || g.End > len(text) || g.Start >= g.End || g.Score <= 0 || g.Score > 1 || g.Type == "" {
				t.Fatalf("Scan(%q): bad finding %+v", text, g)
			}
			if i > 0 && g.Start < fs[i-1].End {
				t.Fatalf("Scan(%q): %+v overlaps %+v", text, g, fs[i-1])
			}
		}
		if !textnorm.Affects(text) {
			if forced := d.scan(text, nil, true, nil); !slices.Equal(fs, forced) {
				t.Fatalf("Scan(%q) = %v; normalized: %v", text, fs, forced)
			}
		}
	})
}

// adversarial are texts packed with keywords.
func adversarial() map[string]string {
	fill := func(unit string) string { return strings.Repeat(unit, (64<<10)/len(unit)+1)[:64<<10] }
	return map[string]string{
		"jwt segments":  fill("eyJaaaaaaaaaaaa-"),
		"jwt dots":      fill("eyJaaaaaaaaaaaa.eyJ."),
		"assignments":   fill("key="),
		"spaced keys":   fill("api_key: x "),
		"pem headers":   fill("-----BEGIN PRIVATE KEY-----\n"),
		"pem mentions":  fill("-----BEGIN PRIVATE KEY----- x. "),
		"pem bodies":    fill("-----BEGIN PRIVATE KEY----- aaaa ")[:64<<10-1] + ".",
		"urls":          fill("https://a:b"),
		"ghp":           fill("ghp_-"),
		"openai":        fill("sk-proj-aaaaaaaaaa-"),
		"bearer":        fill("Bearer "),
		"bearer token":  "Bearer " + fill("A"),
		"passwords":     fill("password: p4ss "),
		"random base64": rnd(b64, 64<<10),
		"slack":         fill("xoxb-1-"),
		"aws":           fill("AKIA "),
		"base64 keys":   "x" + fill("+key="+rnd(alnum, 24)),
	}
}

// TestLinearWork: texts packed with keywords run the regexes a bounded
// number of times (each run reads a bounded number of bytes: every
// unbounded repetition in the rules either ends the match or is covered
// by skipClass), and the PEM END search runs once per END (work is
// counted, not timed; BenchmarkAdversarial times it).
func TestLinearWork(t *testing.T) {
	d := New(Config{})
	for name, text := range adversarial() {
		var st stats
		d.scan(text, nil, false, &st)
		if limit := len(text)/4 + 64; st.regexCalls > limit {
			t.Errorf("%s: %d regex runs for %d bytes of text; want at most %d", name, st.regexCalls, len(text), limit)
		}
		if limit := 2*len(text) + 64<<10; st.endSearchBytes > limit {
			t.Errorf("%s: the END search read %d bytes; want at most %d", name, st.endSearchBytes, limit)
		}
	}
}
