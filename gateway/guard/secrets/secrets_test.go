package secrets

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"aigw/gateway/guard"
	"aigw/gateway/guard/internal/ac"
)

// The fake credentials are made at run time from a seeded generator, so
// that no secret-shaped literal sits in the repository.
var rng = rand.New(rand.NewPCG(1, 2))

const (
	alnum     = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	upper32   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	hexdigits = "0123456789abcdef"
	b64       = alnum + "+/"
	b64url    = alnum + "-_"
)

func rnd(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

func pemBody(lines int, sep string) string {
	var b strings.Builder
	for range lines {
		b.WriteString(rnd(b64, 64))
		b.WriteString(sep)
	}
	return b.String()
}

func jwt() string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		enc([]byte(`{"sub":"1234567890","name":"Jane Doe","iat":1516239022}`)) + "." + rnd(b64url, 43)
}

func show(text string, fs []guard.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "[%s %.40q %.2f %s] ", f.Type, text[f.Start:f.End], f.Score, f.Rule)
	}
	return b.String()
}

type want struct{ typ, text string }

func TestDetects(t *testing.T) {
	aws := "AKIA" + rnd(upper32, 16)
	awsSecret := rnd(b64, 40)
	ghp := "ghp_" + rnd(alnum, 36)
	rsa := "-----BEGIN RSA PRIVATE KEY-----\n" + pemBody(12, "\n") + "-----END RSA PRIVATE KEY-----"
	gcpKey := `-----BEGIN PRIVATE KEY-----\n` + pemBody(10, `\n`) + `-----END PRIVATE KEY-----`
	azureKey := rnd(b64, 86) + "=="
	pgPass := "S3cr3t-" + rnd(alnum, 10)
	openssh, ec := rsaLike("OPENSSH"), rsaLike("EC")
	for _, test := range []struct {
		name string
		text string
		want []want
	}{
		// Case 8: in a user message, a tool result, model output.
		{"case8/aws key in a user message", "my key is " + aws + " ok", []want{{"aws-access-key-id", aws}}},
		{"case8/aws keys in a tool result", `{"role":"tool","content":"{\"aws_access_key_id\":\"` + aws + `\",\"aws_secret_access_key\":\"` + awsSecret + `\"}"}`,
			[]want{{"aws-access-key-id", aws}, {"aws-secret-access-key", awsSecret}}},
		{"aws/env", "AWS_SECRET_ACCESS_KEY=" + awsSecret + "\n", []want{{"aws-secret-access-key", awsSecret}}},
		{"case8/github token in model output", "Sure! Use `git clone https://" + ghp + "@github.com/acme/app`.", []want{{"github-pat", ghp}}},
		{"case8/pem block", "key:\n" + rsa + "\nthanks", []want{{"private-key", rsa}}},
		{"pem/gcp service account", `{"type": "service_account", "project_id": "p", "private_key_id": "` + rnd(hexdigits, 40) +
			`", "private_key": "` + gcpKey + `\n", "client_email": "x@p.iam.gserviceaccount.com"}`,
			[]want{{"gcp-service-account-key", gcpKey}}},
		{"pem/openssh", openssh, []want{{"private-key", openssh}}},
		{"pem/ec", ec, []want{{"private-key", ec}}},
		{"pem/pgp", "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n" + pemBody(6, "\n") + "=abcd\n-----END PGP PRIVATE KEY BLOCK-----",
			nil}, // filled below
		{"pem/truncated", "-----BEGIN PRIVATE KEY-----\n" + pemBody(3, "\n"), nil},
		{"github/oauth", "gho_" + rnd(alnum, 36), nil},
		{"github/user-to-server", "token ghu_" + rnd(alnum, 36), nil},
		{"github/server-to-server", "ghs_" + rnd(alnum, 36), nil},
		{"github/refresh", "ghr_" + rnd(alnum, 76), nil},
		{"github/fine-grained", "github_pat_" + rnd(alnum, 22) + "_" + rnd(alnum, 59), nil},
		{"gitlab", "glpat-" + rnd(alnum+"_-", 20), nil},
		{"slack/bot", "xoxb-" + rnd("0123456789", 12) + "-" + rnd("0123456789", 13) + "-" + rnd(alnum, 24), nil},
		{"slack/webhook", "https://hooks.slack.com/services/T" + rnd(upper32, 10) + "/B" + rnd(upper32, 10) + "/" + rnd(alnum, 24), nil},
		{"stripe/live", "sk_live_" + rnd(alnum, 24), nil},
		{"stripe/restricted", "rk_live_" + rnd(alnum, 24), nil},
		{"openai/project", "OPENAI_API_KEY=sk-proj-" + rnd(b64url, 74) + "T3BlbkFJ" + rnd(b64url, 74), nil},
		{"openai/legacy", "sk-" + rnd(alnum, 48), nil},
		{"anthropic", "ANTHROPIC_API_KEY=sk-ant-api03-" + rnd(b64url, 93) + "AA", nil},
		{"google", "key=AIza" + rnd(b64url, 35), nil},
		{"azure storage", "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=" + azureKey + ";EndpointSuffix=core.windows.net",
			[]want{{"azure-storage-account-key", azureKey}}},
		{"jwt", "Authorization: Bearer " + jwt(), nil},
		{"npm", "//registry.npmjs.org/:_authToken=npm_" + rnd(alnum, 36), nil},
		{"twilio/api key", "SK" + rnd(hexdigits, 32), nil},
		{"twilio/auth token", "TWILIO_AUTH_TOKEN=" + rnd(hexdigits, 32), nil},
		{"sendgrid", "SG." + rnd(b64url, 22) + "." + rnd(b64url, 43), nil},
		{"vault", "VAULT_TOKEN=hvs." + rnd(b64url, 90), nil},
		{"db/postgres", "DATABASE_URL=postgres://app:" + pgPass + "@db.internal:5432/app", []want{{"database-url-credentials", pgPass}}},
		{"db/mongodb+srv", "mongodb+srv://user:pa55w0rd@cluster0.abcd.mongodb.net/test", []want{{"database-url-credentials", "pa55w0rd"}}},
		{"db/redis empty user", "redis://:hunter2pass@cache:6379/0", []want{{"database-url-credentials", "hunter2pass"}}},
		{"db/amqp", "amqp://guest:gu3st-pw@rabbit:5672/", []want{{"database-url-credentials", "gu3st-pw"}}},
		{"url basic auth", "curl https://admin:Pa55-" + "w0rd9@internal.example.net/api", []want{{"url-basic-auth", "Pa55-w0rd9"}}},
		{"generic/password", `db_password = "Tr0ub4dor&3xK9!"`, []want{{"generic-password", "Tr0ub4dor&3xK9!"}}},
		{"generic/api key json", `{"api_key": "` + "Zq8" + rnd(alnum, 29) + `"}`, nil},
		{"generic/secret yaml", "client_secret: " + rnd(alnum, 32) + "\n", nil},
		{"generic/hex token", "api_token: " + rnd(hexdigits, 40), nil},
		{"bearer", "Authorization: Bearer " + rnd(alnum, 40), nil},
		// Invisible characters inside a token.
		{"zero-width", "ghp_" + rnd(alnum, 10) + "\u200b" + rnd(alnum, 26), nil},
	} {
		t.Run(test.name, func(t *testing.T) {
			fs := New(Config{}).Scan(test.text, nil)
			for _, f := range fs {
				if f.Start < 0 || f.End > len(test.text) || f.Start >= f.End {
					t.Fatalf("bad offsets %+v", f)
				}
			}
			if test.want == nil {
				// One finding, of the rule the name starts with or
				// whose id contains it.
				if len(fs) != 1 {
					t.Fatalf("Scan(%.60q) = %s; want one finding", test.text, show(test.text, fs))
				}
				return
			}
			var got []want
			for _, f := range fs {
				got = append(got, want{f.Type, test.text[f.Start:f.End]})
			}
			if !slices.Equal(got, test.want) {
				t.Errorf("Scan(%.60q) = %s; want %v", test.text, show(test.text, fs), test.want)
			}
		})
	}
}

func rsaLike(kind string) string {
	return "-----BEGIN " + kind + " PRIVATE KEY-----\n" + pemBody(5, "\n") + "-----END " + kind + " PRIVATE KEY-----"
}

// TestTypes checks that each rule fires where it should, naming it.
func TestTypes(t *testing.T) {
	for typ, text := range map[string]string{
		"github-oauth":                     "gho_" + rnd(alnum, 36),
		"github-app-token":                 "ghs_" + rnd(alnum, 36),
		"github-refresh-token":             "ghr_" + rnd(alnum, 76),
		"github-fine-grained-pat":          "github_pat_" + rnd(alnum, 22) + "_" + rnd(alnum, 59),
		"gitlab-token":                     "glpat-" + rnd(alnum, 20),
		"gitlab-runner-registration-token": "GR1348941" + rnd(alnum, 20),
		"slack-token":                      "xoxp-" + rnd("0123456789", 12) + "-" + rnd(alnum, 24),
		"slack-webhook-url":                "https://hooks.slack.com/services/T" + rnd(upper32, 10) + "/B" + rnd(upper32, 10) + "/" + rnd(alnum, 24),
		"stripe-secret-key":                "sk_test_" + rnd(alnum, 24),
		"openai-api-key":                   "sk-proj-" + rnd(b64url, 80),
		"anthropic-api-key":                "sk-ant-admin01-" + rnd(b64url, 93) + "AA",
		"gcp-api-key":                      "AIza" + rnd(b64url, 35),
		"jwt":                              jwt(),
		"npm-access-token":                 "npm_" + rnd(alnum, 36),
		"twilio-api-key":                   "SK" + rnd(hexdigits, 32),
		"twilio-auth-token":                "twilio_token: " + rnd(hexdigits, 32),
		"sendgrid-api-key":                 "SG." + rnd(b64url, 22) + "." + rnd(b64url, 43),
		"hashicorp-vault-token":            "hvs." + rnd(b64url, 24),
		"generic-api-key":                  "SESSION_SECRET=" + rnd(alnum, 40),
		"bearer-token":                     "-H 'Authorization: Bearer " + rnd(alnum, 40) + "'",
		"private-key":                      "-----BEGIN ENCRYPTED PRIVATE KEY-----\n" + pemBody(4, "\n") + "-----END ENCRYPTED PRIVATE KEY-----",
	} {
		fs := New(Config{}).Scan(text, nil)
		if len(fs) != 1 || fs[0].Type != typ {
			t.Errorf("Scan(%.50q) = %s; want one %s", text, show(text, fs), typ)
		}
	}
}

// TestIgnores is the false-positive control: case 9 (UUIDs, git SHAs,
// base64 images) and placeholders.
func TestIgnores(t *testing.T) {
	img := "data:image/png;base64," + rnd(b64, 3000) + "AKIA" + rnd(upper32, 16) + "eyJ" + rnd(b64, 40) + "key=" + rnd(b64, 40) + "=="
	for _, text := range []string{
		// High-entropy strings that are not secrets.
		"request 550e8400-e29b-41d4-a716-446655440000 failed",
		"session_token: 550e8400-e29b-41d4-a716-446655440000",
		"commit 3f786850e387550fdab836ed7e6dc881de23001b fixes the retry loop",
		"cache_key: 3f786850e387550fdab836ed7e6dc881de23001b",
		"GITHUB_SHA=3f786850e387550fdab836ed7e6dc881de23001b",
		`{"key_fingerprint": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}`,
		"private_key_id: 3f786850e387550fdab836ed7e6dc881de23001b",
		"token_url: https://oauth2.googleapis.com/token",
		"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		`<img src="` + img + `">`,
		"![chart](" + img + ")",
		"integrity=\"sha512-" + rnd(b64, 86) + "==\"",
		// Placeholders.
		"AKIAIOSFODNN7EXAMPLE",
		"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		"ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		"GITHUB_TOKEN=ghp_your_token_here",
		"sk_live_<your-key>",
		"api_key=${API_KEY}",
		"password: <your-password>",
		"token = os.getenv('SERVICE_TOKEN')",
		"OPENAI_API_KEY=sk-...your-key-here",
		"password = 'changeme'",
		"password=hunter2",
		"postgres://user:password@localhost/db",
		"postgres://user:${DB_PASS}@host/db",
		"mysql://root@localhost/test",
		"https://user@github.com/acme/repo.git",
		"secret_key: {{ .Values.secretKey }}",
		"export TOKEN=$GITHUB_TOKEN",
		"client_secret: ********************************",
		"-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
		"-----BEGIN CERTIFICATE-----\n" + pemBody(5, "\n") + "-----END CERTIFICATE-----",
		"-----BEGIN PUBLIC KEY-----\n" + pemBody(5, "\n") + "-----END PUBLIC KEY-----",
		// Prose.
		"The key to success is a good password policy and short-lived tokens.",
		"Please rotate your token: it expires soon. The secret: keep it safe.",
		"A PEM file starts with -----BEGIN RSA PRIVATE KEY----- and ends with a matching END line.",
		"task-based, risk-free, desk-top, ask skill sky",
		"keyboard: mechanical, password_policy: strict, auth: enabled",
		"Bearer of bad news",
	} {
		if fs := New(Config{}).Scan(text, nil); len(fs) != 0 {
			t.Errorf("Scan(%.80q) = %s; want nothing", text, show(text, fs))
		}
	}
}

// TestPEMStream (case 8): a PEM block streamed over 30 chunks is caught as soon as
// its header is whole, from the header on (case 8).
func TestPEMStream(t *testing.T) {
	key := "-----BEGIN OPENSSH PRIVATE KEY-----\n" + pemBody(20, "\n") + "-----END OPENSSH PRIVATE KEY-----\n"
	text := "Here is the deploy key:\n" + key + "Keep it safe."
	start := strings.Index(text, "-----BEGIN")
	hdrEnd := strings.Index(text, "KEY-----") + len("KEY-----")
	d := New(Config{})
	size := (len(text) + 29) / 30
	for k := 1; k <= 30; k++ {
		acc := text[:min(len(text), k*size)]
		fs := d.Scan(acc, nil)
		if len(acc) < hdrEnd {
			if len(fs) != 0 {
				t.Errorf("chunk %d: %s before the header is whole", k, show(acc, fs))
			}
			continue
		}
		if len(fs) != 1 || fs[0].Type != "private-key" || fs[0].Start != start || fs[0].Score < 0.5 {
			t.Fatalf("chunk %d (%d bytes): %s; want private-key from %d", k, len(acc), show(acc, fs), start)
		}
		if complete := strings.Contains(acc, "-----END OPENSSH PRIVATE KEY-----"); complete {
			if got := acc[fs[0].Start:fs[0].End]; got != strings.TrimSuffix(key, "\n") || fs[0].Score != 1 {
				t.Errorf("chunk %d: whole block %.40q… score %v; want the block, 1", k, got, fs[0].Score)
			}
		}
	}
	// Chunk by chunk too: a header alone in a chunk is reported (0.5).
	if fs := d.Scan("-----BEGIN RSA PRIVATE KEY-----\n", nil); len(fs) != 1 || fs[0].Score != 0.5 {
		t.Errorf("header alone: %v", fs)
	}
}

func TestConfig(t *testing.T) {
	text := "SESSION_SECRET=" + rnd(alnum, 40)
	if fs := New(Config{}).Scan(text, nil); len(fs) != 1 || fs[0].Score <= 0.5 || fs[0].Score > 1 {
		t.Errorf("generic score: %v", fs)
	}
	if fs := New(Config{MinEntropy: 7}).Scan(text, nil); len(fs) != 0 {
		t.Errorf("MinEntropy 7: %v", fs)
	}
	if err := (Config{MinEntropy: 9}).Validate(); err == nil {
		t.Error("Validate accepted min entropy 9")
	}
	if ids := New(Config{}).Rules(); len(ids) < 20 || ids[len(ids)-1] != "bearer-token" {
		t.Errorf("Rules() = %v", ids)
	}
	out := New(Config{}).Scan("x npm_"+rnd(alnum, 36), []guard.Finding{{Type: "X"}})
	if len(out) != 2 || out[1].Type != "npm-access-token" {
		t.Errorf("Scan did not append: %v", out)
	}
}

func TestRuleFile(t *testing.T) {
	if _, err := compileRules(rulesJSON); err != nil {
		t.Fatalf("embedded rules: %v", err)
	}
	for _, bad := range []string{
		`{"rules": []}`,
		`{"rules": [{"id": "a", "regex": "(", "keywords": ["a"], "kind": "plain", "maxLen": 5}]}`,
		`{"rules": [{"id": "a", "regex": "a", "keywords": [], "kind": "plain", "maxLen": 5}]}`,
		`{"rules": [{"id": "a", "regex": "a", "keywords": ["a"], "kind": "nope", "maxLen": 5}]}`,
		`{"rules": [{"id": "a", "regex": "a", "keywords": ["a"], "kind": "plain", "maxLen": 5, "secretGroup": 1}]}`,
		`{"rules": [{"id": "a", "regex": "a", "keywords": ["a"], "kind": "plain", "maxLen": 5, "unknown": 1}]}`,
	} {
		if _, err := compileRules([]byte(bad)); err == nil {
			t.Errorf("compileRules(%s) succeeded", bad)
		}
	}
}

func TestMatcher(t *testing.T) {
	m, err := ac.New([]string{"he", "she", "his", "hers", "sk-", "sk-ant-"}, ac.Options{Fold: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	text := "uSHErs and SK-ANT-x"
	for _, h := range m.Append(nil, text) {
		got = append(got, fmt.Sprintf("%d:%s", h.End, text[h.Start:h.End]))
	}
	want := []string{"4:SHE", "4:HE", "6:HErs", "14:SK-", "18:SK-ANT-"}
	if !slices.Equal(got, want) {
		t.Errorf("scan = %v; want %v", got, want)
	}
}

// The keyword automaton, which walks long texts as four quarters at once,
// finds what one pass from the start finds, keywords across the quarters'
// boundaries included.
func TestMatcherSplit(t *testing.T) {
	d := New(Config{})
	m := d.rs.kw
	words := []string{"ghp_", "AKIA", "sk-ant-", "xoxb-", "password", "secret", "token", " ", "-----BEGIN ", "api_key=", "x", "ab"}
	rng := rand.New(rand.NewPCG(3, 3))
	for range 300 {
		var sb strings.Builder
		for sb.Len() < 512+rng.IntN(2048) {
			sb.WriteString(words[rng.IntN(len(words))])
		}
		s := sb.String()
		want, _ := m.Walk(nil, s, 0, 0)
		if got := m.Append(nil, s); !slices.Equal(got, want) {
			t.Fatalf("Append(%q) = %v; one pass: %v", s, got, want)
		}
	}
}
