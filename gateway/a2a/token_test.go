package a2a

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	now := time.Now()
	s, err := NewSigner("aigw", testKey)
	if err != nil {
		t.Fatal(err)
	}
	cl := testHop("acme", "", Budget{NanoUSD: 5, Tokens: Unlimited}).Claims
	cl.Expires = now.Add(time.Minute).Unix()
	tok, err := s.Sign(&cl)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Verify(tok, now)
	if err != nil || got.HopID != cl.HopID || got.Budget != cl.Budget || !slices.Equal(got.Chain, cl.Chain) || got.Issuer != "aigw" || got.Version != 1 {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	got.Scopes[0] = "changed" // the caller's copy
	if again, _ := s.Verify(tok, now); again.Scopes[0] != cl.Scopes[0] {
		t.Errorf("Verify returned the cached claims themselves")
	}
	if dc, err := DecodeToken(tok); err != nil || dc.HopID != cl.HopID {
		t.Errorf("DecodeToken = %+v, %v", dc, err)
	}
	if _, err := s.Verify(tok, now.Add(time.Minute)); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("Verify at expiry = %v; want ErrTokenExpired (cached tokens expire too)", err)
	}

	other, _ := NewSigner("aigw", mustKey(t))
	otherTok, _ := other.Sign(&cl)
	rotated, _ := NewSigner("aigw", mustKey(t), testKey.Public().(ed25519.PublicKey))
	if _, err := rotated.Verify(tok, now); err != nil {
		t.Errorf("a token of the previous key after rotation: %v", err)
	}
	otherIssuer, _ := NewSigner("elsewhere", testKey)
	foreign, _ := otherIssuer.Sign(&cl)
	payload := strings.Split(tok, ".")
	tampered := func(edit func(c *Claims)) string {
		c := cl
		edit(&c)
		c.Issuer, c.Version = "aigw", 1
		b, _ := json.Marshal(c)
		return payload[0] + "." + b64.EncodeToString(b) + "." + payload[2]
	}
	for _, test := range []struct {
		name  string
		token string
		want  error
	}{
		{"OtherKey", otherTok, ErrTokenSignature},
		{"OtherIssuer", foreign, ErrTokenIssuer},
		{"WidenedBudget", tampered(func(c *Claims) { c.Budget.NanoUSD = 1 << 40 }), ErrTokenSignature},
		{"OtherCallee", tampered(func(c *Claims) { c.Callee = "x" }), ErrTokenSignature},
		{"NoPrefix", strings.TrimPrefix(tok, tokenPrefix), ErrTokenMalformed},
		{"NoSignature", payload[0] + "." + payload[1], ErrTokenMalformed},
		{"BadBase64", payload[0] + ".!!." + payload[2], ErrTokenMalformed},
		{"ShortSignature", payload[0] + "." + payload[1] + ".AAAA", ErrTokenMalformed},
		{"Huge", tokenPrefix + strings.Repeat("A", MaxTokenBytes), ErrTokenMalformed},
		{"Empty", "", ErrTokenMalformed},
	} {
		t.Run(test.name, func(t *testing.T) {
			if _, err := s.Verify(test.token, now); !errors.Is(err, test.want) {
				t.Errorf("Verify = %v; want %v", err, test.want)
			}
		})
	}
	// Unknown members are refused even when signed.
	if _, err := decodeClaims([]byte(`{"v":1,"iss":"aigw","extra":1}`)); !errors.Is(err, ErrTokenMalformed) {
		t.Errorf("claims with an unknown member: %v", err)
	}
	if _, err := NewSigner("aigw", testKey[:10]); err == nil {
		t.Errorf("NewSigner accepted a short key")
	}
}

func TestScopes(t *testing.T) {
	for _, test := range []struct {
		parent, child string
		want          bool
	}{
		{"tool:search", "tool:search", true},
		{"tool:*", "tool:search", true},
		{"tool:*", "tool:*", true},
		{"tool:*", "tool:web*", true},
		{"*", "model:gpt-4o", true},
		{"tool:search", "tool:*", false},
		{"tool:web*", "tool:*", false},
		{"tool:search", "tool:searcher", false},
		{"model:*", "tool:x", false},
	} {
		if got := ScopeCovers(test.parent, test.child); got != test.want {
			t.Errorf("ScopeCovers(%q, %q) = %v; want %v", test.parent, test.child, got, test.want)
		}
	}
	if s, ok := ScopesWithin([]string{"tool:a", "model:b"}, []string{"tool:*"}); ok || s != "model:b" {
		t.Errorf("ScopesWithin = %q, %v", s, ok)
	}
	for _, test := range []struct {
		a, b, want []string
	}{
		{[]string{"tool:*", "model:gpt-4o"}, []string{"tool:search", "model:*"}, []string{"model:gpt-4o", "tool:search"}},
		{[]string{"*"}, []string{"tool:a", "tool:b"}, []string{"tool:a", "tool:b"}},
		{[]string{"tool:a"}, []string{"model:*"}, []string{}},
		{[]string{"tool:*"}, []string{"tool:*", "tool:x"}, []string{"tool:*"}},
	} {
		if got := intersectScopes(test.a, test.b); !slices.Equal(got, test.want) {
			t.Errorf("intersectScopes(%v, %v) = %v; want %v", test.a, test.b, got, test.want)
		}
	}
	if err := checkScopes([]string{"ok:1", "with space"}); err == nil {
		t.Errorf("checkScopes accepted a scope with a space")
	}
}

func TestNarrow(t *testing.T) {
	now := time.Now()
	parent := bounds{scopes: []string{"tool:*", "model:gpt-4o"}, budget: Budget{NanoUSD: 100, Tokens: Unlimited},
		expires: now.Add(time.Hour).Unix(), maxDepth: 4}
	capped := parent
	capped.capScope = []string{"tool:search"}
	for _, test := range []struct {
		name       string
		b          bounds
		req        *DelegationRequest
		wantScopes []string
		wantBudget Budget
		wantCode   int
	}{
		{"InheritAll", parent, nil, []string{"tool:*", "model:gpt-4o"}, Budget{NanoUSD: 100, Tokens: Unlimited}, 0},
		{"CapNarrowsDefault", capped, nil, []string{"tool:search"}, Budget{NanoUSD: 100, Tokens: Unlimited}, 0},
		{"Narrower", parent, &DelegationRequest{Scopes: []string{"tool:x", "tool:x"}, Budget: &RequestBudget{NanoUSD: int64p(40), Tokens: int64p(9)}},
			[]string{"tool:x"}, Budget{NanoUSD: 40, Tokens: 9}, 0},
		{"AllOfIt", parent, &DelegationRequest{Budget: &RequestBudget{NanoUSD: int64p(100), Tokens: int64p(Unlimited)}}, nil, Budget{NanoUSD: 100, Tokens: Unlimited}, 0},
		{"ScopeWidened", parent, &DelegationRequest{Scopes: []string{"model:claude"}}, nil, Budget{}, CodeDelegationWidened},
		{"PatternWidened", parent, &DelegationRequest{Scopes: []string{"model:*"}}, nil, Budget{}, CodeDelegationWidened},
		{"BeyondCap", capped, &DelegationRequest{Scopes: []string{"tool:web"}}, nil, Budget{}, CodeDelegationWidened},
		{"BudgetWidened", parent, &DelegationRequest{Budget: &RequestBudget{NanoUSD: int64p(101)}}, nil, Budget{}, CodeDelegationWidened},
		{"UnlimitedFromLimited", parent, &DelegationRequest{Budget: &RequestBudget{NanoUSD: int64p(Unlimited)}}, nil, Budget{}, CodeDelegationWidened},
		{"OverMax", parent, &DelegationRequest{Budget: &RequestBudget{Tokens: int64p(MaxBudgetValue + 1)}}, nil, Budget{}, CodeInvalidParams},
		{"Outlives", parent, &DelegationRequest{TTLSeconds: 7200}, nil, Budget{}, CodeDelegationWidened},
		{"NegativeTTL", parent, &DelegationRequest{TTLSeconds: -1}, nil, Budget{}, CodeInvalidParams},
		{"Deeper", parent, &DelegationRequest{MaxDepth: 5}, nil, Budget{}, CodeDelegationWidened},
		{"MaxDepthAboveHop", parent, &DelegationRequest{MaxDepth: 1}, nil, Budget{}, CodeInvalidParams},
		{"BadScope", parent, &DelegationRequest{Scopes: []string{""}}, nil, Budget{}, CodeInvalidParams},
	} {
		t.Run(test.name, func(t *testing.T) {
			scopes, budget, exp, maxDepth, rerr := narrow(test.b, test.req, 2, now)
			if test.wantCode != 0 {
				if rerr == nil || rerr.Code != test.wantCode {
					t.Fatalf("narrow = %v; want code %d", rerr, test.wantCode)
				}
				return
			}
			if rerr != nil {
				t.Fatal(rerr)
			}
			if test.wantScopes != nil && !slices.Equal(scopes, test.wantScopes) {
				t.Errorf("scopes %v; want %v", scopes, test.wantScopes)
			}
			if budget != test.wantBudget || exp > test.b.expires || maxDepth > test.b.maxDepth {
				t.Errorf("budget %+v exp %d maxDepth %d", budget, exp, maxDepth)
			}
		})
	}
	_, _, exp, _, _ := narrow(parent, &DelegationRequest{TTLSeconds: 60}, 2, now)
	if exp != now.Unix()+60 {
		t.Errorf("ttl_seconds 60: exp %d; want %d", exp, now.Unix()+60)
	}
}

func TestCanTransition(t *testing.T) {
	for _, test := range []struct {
		from, to TaskState
		want     bool
	}{
		{"", StateCompleted, true},
		{"", StateRejected, true},
		{StateSubmitted, StateWorking, true},
		{StateSubmitted, StateRejected, true},
		{StateWorking, StateInputRequired, true},
		{StateInputRequired, StateWorking, true},
		{StateAuthRequired, StateCompleted, true},
		{StateWorking, StateWorking, true},
		{StateCompleted, StateCompleted, true},
		{StateWorking, StateSubmitted, false},
		{StateWorking, StateRejected, false},
		{StateCompleted, StateWorking, false},
		{StateCanceled, StateCompleted, false},
		{StateFailed, StateCanceled, false},
		{StateWorking, "unknown", false},
		{"", "", false},
	} {
		if got := CanTransition(test.from, test.to); got != test.want {
			t.Errorf("CanTransition(%q, %q) = %v; want %v", test.from, test.to, got, test.want)
		}
	}
}

func TestTranslate(t *testing.T) {
	const up, gw = "up-1", "gw-9"
	for _, test := range []struct {
		name     string
		in, want string
		task     bool
	}{
		{"TaskIDAndNested", `{"kind":"task","id":"up-1","status":{"state":"working","message":{"taskId":"up-1","parts":[]}},"history":[{"taskId":"up-1"}]}`,
			`{"kind":"task","id":"gw-9","status":{"state":"working","message":{"taskId":"gw-9","parts":[]}},"history":[{"taskId":"gw-9"}]}`, true},
		{"StatusUpdate", `{"kind":"status-update","taskId":"up-1","contextId":"up-1"}`, `{"kind":"status-update","taskId":"gw-9","contextId":"up-1"}`, false},
		{"NestedIDUntouched", `{"kind":"task","id":"up-1","artifacts":[{"artifactId":"a","parts":[{"kind":"data","data":{"id":"up-1"}}]}]}`,
			`{"kind":"task","id":"gw-9","artifacts":[{"artifactId":"a","parts":[{"kind":"data","data":{"id":"up-1"}}]}]}`, true},
		{"NotATask", `{"kind":"message","id":"up-1","taskId":"up-1"}`, `{"kind":"message","id":"up-1","taskId":"gw-9"}`, false},
		{"ValuesInArraysAndTextUntouched", `{"taskId":"x","list":["up-1"],"text":"up-1 \"up-1\""}`, `{"taskId":"x","list":["up-1"],"text":"up-1 \"up-1\""}`, false},
		{"Spaces", `{ "taskId" : "up-1" }`, `{ "taskId" : "gw-9" }`, false},
		{"Absent", `{"taskId":"other"}`, `{"taskId":"other"}`, false},
	} {
		t.Run(test.name, func(t *testing.T) {
			got, err := translate(json.RawMessage(test.in), up, gw, test.task)
			if err != nil || string(got) != test.want {
				t.Errorf("translate = %s, %v; want %s", got, err, test.want)
			}
		})
	}
	if _, err := translate(json.RawMessage(`{"taskId":"up-1","x":"cut`), up, gw, false); err == nil {
		t.Errorf("translate of a cut string: no error")
	}
}

func TestAppendMembers(t *testing.T) {
	m := map[string]json.RawMessage{"b": json.RawMessage(`[1, 2]`), "a": json.RawMessage(`{"x":"y"}`), "é\"": json.RawMessage(`null`)}
	got := string(appendMembers(nil, membersOf(m), nil, nil))
	if got != `{"a":{"x":"y"},"b":[1, 2],"é\"":null}` || !json.Valid([]byte(got)) {
		t.Errorf("appendMembers = %s", got)
	}
}

func FuzzTranslate(f *testing.F) {
	f.Add([]byte(`{"kind":"task","id":"up-1","status":{"message":{"taskId":"up-1"}}}`), true)
	f.Add([]byte(`{"a":"up-1\\"","taskId":["up-1"]}`), false)
	f.Fuzz(func(t *testing.T, in []byte, task bool) {
		if !json.Valid(in) {
			return
		}
		out, err := translate(in, "up-1", "gw-9", task)
		if err != nil {
			t.Fatalf("translate of valid JSON: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("translate(%s) = %s: not JSON", in, out)
		}
	})
}

func TestAppendClaims(t *testing.T) {
	odd := "é<&>\"\\\n\x01\xff\u2028"
	for _, cl := range []Claims{
		{},
		testHop("acme", "", Budget{NanoUSD: 1e9, Tokens: -1}).Claims,
		{Version: 1, Issuer: odd, Tenant: "t", HopID: odd, TaskID: "x", ParentHop: "p", RootTask: odd, Caller: odd, Callee: "b",
			Chain: []string{}, Depth: -3, MaxDepth: 1 << 40, Scopes: []string{"tool:*", odd}, Budget: Budget{NanoUSD: MaxBudgetValue, Tokens: Unlimited},
			TraceID: odd, IssuedAt: -1, Expires: 1 << 62},
	} {
		want, err := json.Marshal(&cl)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendClaims(nil, &cl); !bytes.Equal(got, want) {
			t.Errorf("appendClaims = %s; json.Marshal: %s", got, want)
		}
	}
}
