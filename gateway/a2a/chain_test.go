package a2a

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"aigw/gateway"
	"aigw/ledger"
)

// chain is a gateway fronting agents b, c, d and e of tenant acme (and z
// of tenant zeta): a (the test) may delegate to b, b to c, c to d (and
// to b, a loop), d to e; trees are at most 3 deep. Told "delegate", b
// delegates "wait" to c through the gateway, under its token, asking for
// less (scopes tool:search, 4e8 nano-USD, 400 tokens).
type chain struct {
	g          *testGateway
	led        *ledgerRecorder
	b, c, d, e *fakeAgent
}

const (
	bMaxUSD = 5_000_000_000
	aUSD    = 1_000_000_000 // what a gives b
	bUSD    = 400_000_000   // what b gives c
)

func newChain(t *testing.T, store TaskStore) *chain {
	t.Helper()
	ch := &chain{led: newLedger(t), b: newFakeAgent(t, "b"), c: newFakeAgent(t, "c"), d: newFakeAgent(t, "d"), e: newFakeAgent(t, "e")}
	maxB := Budget{NanoUSD: bMaxUSD, Tokens: 100_000}
	ch.g = newGateway(t, Config{Recorder: ch.led, Store: store, MaxDepth: 3, Agents: []Agent{
		{Name: "b", Tenant: "acme", URL: ch.b.srv.URL, Callers: []string{"a", "c"}, Scopes: []string{"tool:*", "model:*"}, MaxBudget: &maxB},
		{Name: "c", Tenant: "acme", URL: ch.c.srv.URL, Card: ch.c.card(), Callers: []string{"b"}},
		{Name: "d", Tenant: "acme", URL: ch.d.srv.URL, Card: ch.d.card(), Callers: []string{"c"}},
		{Name: "e", Tenant: "acme", URL: ch.e.srv.URL, Card: ch.e.card(), Callers: []string{"d"}},
		{Name: "z", Tenant: "zeta", URL: ch.e.srv.URL, Card: ch.e.card(), Callers: []string{"*"}},
	}})
	ch.b.onMessage = func(token string, m Message, task *fakeTask) error {
		if len(m.Parts) == 0 || m.Parts[0].Text != "delegate" {
			return nil
		}
		res, err := ch.g.call(rpcCall{agent: "c", key: "key-b", as: "b", token: token, method: MethodSend,
			params: textParams("wait", newMessageID(), &DelegationRequest{Scopes: []string{"tool:search"},
				Budget: &RequestBudget{NanoUSD: int64p(bUSD), Tokens: int64p(400)}})})
		if err != nil {
			return err
		}
		if res.Error != nil {
			return fmt.Errorf("delegation to c refused: %s", res.Error.Message)
		}
		var child Task
		if err := json.Unmarshal(res.Result, &child); err != nil {
			return err
		}
		task.Meta = map[string]any{"child_task": child.ID}
		return nil
	}
	return ch
}

// verifiedClaims checks a token with the gateway's signer.
func (ch *chain) verifiedClaims(t *testing.T, token string) *Claims {
	t.Helper()
	cl, err := ch.g.p.Signer().Verify(token, time.Now())
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	return cl
}

// delegate starts the chain a → b → c and returns b's task as a sees it,
// and the tokens b and c got.
func (ch *chain) delegate(t *testing.T) (task Task, tb, tc *Claims, tokB, tokC string) {
	t.Helper()
	_, res := ch.g.do(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodSend,
		params: textParams("delegate", newMessageID(), &DelegationRequest{Scopes: []string{"tool:search", "model:gpt-4o"},
			Budget: &RequestBudget{NanoUSD: int64p(aUSD), Tokens: int64p(1000)}})})
	task = mustTask(t, res)
	tokB, tokC = ch.b.lastToken(), ch.c.lastToken()
	return task, ch.verifiedClaims(t, tokB), ch.verifiedClaims(t, tokC), tokB, tokC
}

func TestDelegationChain(t *testing.T) {
	ch := newChain(t, nil)
	g := ch.g
	task, tb, tc, tokB, tokC := ch.delegate(t)

	t.Run("TaskNamedByTheGateway", func(t *testing.T) {
		if task.ID != tb.TaskID || task.ID != tb.HopID || strings.HasPrefix(task.ID, "b-task") || task.Status.State != StateWorking {
			t.Errorf("a got task %s (%s); want the gateway's id %s, working", task.ID, task.Status.State, tb.TaskID)
		}
		if child, _ := task.Metadata["child_task"].(string); child != tc.TaskID {
			t.Errorf("b's child task %q; want %q (the gateway's id of c's task)", child, tc.TaskID)
		}
	})

	t.Run("TokensNarrowAtEachHop", func(t *testing.T) {
		if tb.Caller != "a" || tb.Callee != "b" || tb.Depth != 1 || tb.ParentHop != "" || tb.RootTask != tb.TaskID ||
			!slices.Equal(tb.Chain, []string{"a", "b"}) || !slices.Equal(tb.Scopes, []string{"model:gpt-4o", "tool:search"}) ||
			tb.Budget != (Budget{NanoUSD: aUSD, Tokens: 1000}) || tb.Tenant != "acme" || tb.Issuer != "aigw" || tb.MaxDepth != 3 {
			t.Errorf("b's token: %+v", tb)
		}
		if tc.Caller != "b" || tc.Callee != "c" || tc.Depth != 2 || tc.ParentHop != tb.HopID || tc.RootTask != tb.TaskID ||
			!slices.Equal(tc.Chain, []string{"a", "b", "c"}) || !slices.Equal(tc.Scopes, []string{"tool:search"}) ||
			tc.Budget != (Budget{NanoUSD: bUSD, Tokens: 400}) || tc.Expires > tb.Expires || tc.TraceID != tb.TraceID {
			t.Errorf("c's token: %+v (b's: %+v)", tc, tb)
		}
		if s, ok := ScopesWithin(tc.Scopes, tb.Scopes); !ok {
			t.Errorf("c's scope %q is not b's", s)
		}
		// The callee gets its token in the header and in the message's metadata.
		ch.c.mu.Lock()
		meta := ch.c.meta[len(ch.c.meta)-1]
		ch.c.mu.Unlock()
		if meta != tokC {
			t.Errorf("c's metadata token differs from its header token")
		}
		hb, err := g.p.store.Get(bg, "acme", tb.HopID)
		if err != nil || hb.Remaining != (Budget{NanoUSD: aUSD - bUSD, Tokens: 600}) {
			t.Errorf("b's remaining budget = %+v, %v; want what it did not give c", hb.Remaining, err)
		}
	})

	t.Run("RefusedDelegations", func(t *testing.T) {
		forged := []byte(tokB)
		// Another base64url character in the signature: a well-formed token
		// whose signature does not verify (flipping a bit could leave the
		// alphabet and make it malformed instead).
		if forged[len(forged)-5] == 'A' {
			forged[len(forged)-5] = 'B'
		} else {
			forged[len(forged)-5] = 'A'
		}
		expired := *tb
		expired.Expires = time.Now().Add(-time.Minute).Unix()
		expiredTok, _ := g.p.Signer().Sign(&expired)
		otherKey := testHop("acme", "", UnlimitedBudget).Claims
		otherSigner, _ := NewSigner("aigw", mustKey(t))
		otherTok, _ := otherSigner.Sign(&otherKey)
		for _, test := range []struct {
			name         string
			call         rpcCall
			code         int
			reason       string
			refusedUnder string // the hop the refusal is recorded under
		}{
			{"WidenedScope", rpcCall{agent: "c", key: "key-b", as: "b", token: tokB,
				params: textParams("wait", newMessageID(), &DelegationRequest{Scopes: []string{"tool:search", "model:claude"}})},
				CodeDelegationWidened, ReasonWidened, tb.HopID},
			{"WidenedPatternScope", rpcCall{agent: "c", key: "key-b", as: "b", token: tokB,
				params: textParams("wait", newMessageID(), &DelegationRequest{Scopes: []string{"tool:*"}})},
				CodeDelegationWidened, ReasonWidened, tb.HopID},
			{"WidenedBudget", rpcCall{agent: "c", key: "key-b", as: "b", token: tokB,
				params: textParams("wait", newMessageID(), &DelegationRequest{Budget: &RequestBudget{NanoUSD: int64p(aUSD - bUSD + 1)}})},
				CodeDelegationWidened, ReasonWidened, tb.HopID},
			{"UnlimitedFromLimited", rpcCall{agent: "c", key: "key-b", as: "b", token: tokB,
				params: textParams("wait", newMessageID(), &DelegationRequest{Budget: &RequestBudget{Tokens: int64p(Unlimited)}})},
				CodeDelegationWidened, ReasonWidened, tb.HopID},
			{"OutlivesParent", rpcCall{agent: "c", key: "key-b", as: "b", token: tokB,
				params: textParams("wait", newMessageID(), &DelegationRequest{TTLSeconds: 2 * 3600})},
				CodeDelegationWidened, ReasonWidened, tb.HopID},
			{"DeeperThanParent", rpcCall{agent: "c", key: "key-b", as: "b", token: tokB,
				params: textParams("wait", newMessageID(), &DelegationRequest{MaxDepth: 4})},
				CodeDelegationWidened, ReasonWidened, tb.HopID},
			{"CBeyondAsScope", rpcCall{agent: "d", key: "key-c", as: "c", token: tokC,
				params: textParams("wait", newMessageID(), &DelegationRequest{Scopes: []string{"model:gpt-4o"}})},
				CodeDelegationWidened, ReasonWidened, tc.HopID},
			{"CBeyondItsBudget", rpcCall{agent: "d", key: "key-c", as: "c", token: tokC,
				params: textParams("wait", newMessageID(), &DelegationRequest{Budget: &RequestBudget{NanoUSD: int64p(bUSD + 1)}})},
				CodeDelegationWidened, ReasonWidened, tc.HopID},
			{"CBeyondAsBudget", rpcCall{agent: "d", key: "key-c", as: "c", token: tokC,
				params: textParams("wait", newMessageID(), &DelegationRequest{Budget: &RequestBudget{NanoUSD: int64p(aUSD)}})},
				CodeDelegationWidened, ReasonWidened, tc.HopID},
			{"Loop", rpcCall{agent: "b", key: "key-c", as: "c", token: tokC, params: textParams("wait", newMessageID(), nil)},
				CodeDelegationLoop, ReasonLoop, tc.HopID},
			{"NoTokenFromRegisteredAgent", rpcCall{agent: "c", key: "key-b", as: "b", params: textParams("wait", newMessageID(), nil)},
				CodeDelegationNotAllowed, ReasonTokenRequired, ""},
			{"NotAllowedCaller", rpcCall{agent: "d", key: "key-a", as: "a", params: textParams("wait", newMessageID(), nil)},
				CodeDelegationNotAllowed, ReasonNotAllowed, ""},
			{"TokenOfAnotherCallee", rpcCall{agent: "d", key: "key-c", as: "c", token: tokB, params: textParams("wait", newMessageID(), nil)},
				CodeTokenInvalid, ReasonTokenCallee, tb.HopID},
			{"BadSignature", rpcCall{agent: "c", key: "key-b", as: "b", token: string(forged), params: textParams("wait", newMessageID(), nil)},
				CodeTokenInvalid, ReasonTokenSignature, ""},
			{"SignedByAnotherKey", rpcCall{agent: "c", key: "key-b", as: "b", token: otherTok, params: textParams("wait", newMessageID(), nil)},
				CodeTokenInvalid, ReasonTokenSignature, ""},
			{"Expired", rpcCall{agent: "c", key: "key-b", as: "b", token: expiredTok, params: textParams("wait", newMessageID(), nil)},
				CodeTokenInvalid, ReasonTokenExpired, ""},
			{"NotAToken", rpcCall{agent: "c", key: "key-b", as: "b", token: "Bearer nonsense", params: textParams("wait", newMessageID(), nil)},
				CodeTokenInvalid, ReasonTokenMalformed, ""},
		} {
			t.Run(test.name, func(t *testing.T) {
				before := ch.d.count(MethodSend) + ch.c.count(MethodSend) + ch.b.count(MethodSend)
				test.call.method = MethodSend
				_, res := g.do(t, test.call)
				wantError(t, res, test.code, test.reason)
				if after := ch.d.count(MethodSend) + ch.c.count(MethodSend) + ch.b.count(MethodSend); after != before {
					t.Errorf("a refused delegation reached an agent")
				}
				evs := ch.led.events(t, "acme")
				last := attrsOf(t, evs[len(evs)-1])
				if last["event"] != EventRefused || last["reason"] != test.reason || last["callee"] != test.call.agent || last["caller"] != test.call.as {
					t.Errorf("last event %v; want the refusal recorded", last)
				}
				if test.refusedUnder != "" && last["parent_hop_id"] != test.refusedUnder {
					t.Errorf("refusal recorded under %v; want %s", last["parent_hop_id"], test.refusedUnder)
				}
			})
		}
		hb, _ := g.p.store.Get(bg, "acme", tb.HopID)
		if hb.Remaining != (Budget{NanoUSD: aUSD - bUSD, Tokens: 600}) {
			t.Errorf("refusals changed b's remaining budget: %+v", hb.Remaining)
		}
	})

	// c delegates to d within its own token (depth 3, the limit), and d can
	// go no deeper.
	var tokD string
	t.Run("NarrowerThirdHopAndDepthLimit", func(t *testing.T) {
		_, res := g.do(t, rpcCall{agent: "d", key: "key-c", as: "c", token: tokC, method: MethodSend,
			params: textParams("wait", newMessageID(), &DelegationRequest{Budget: &RequestBudget{NanoUSD: int64p(bUSD / 4)}})})
		mustTask(t, res)
		tokD = ch.d.lastToken()
		td := ch.verifiedClaims(t, tokD)
		if td.Depth != 3 || !slices.Equal(td.Scopes, []string{"tool:search"}) || td.Budget != (Budget{NanoUSD: bUSD / 4, Tokens: 400}) ||
			!slices.Equal(td.Chain, []string{"a", "b", "c", "d"}) || td.ParentHop != tc.HopID {
			t.Errorf("d's token: %+v", td)
		}
		_, res = g.do(t, rpcCall{agent: "e", key: "key-d", as: "d", token: tokD, method: MethodSend, params: textParams("wait", newMessageID(), nil)})
		wantError(t, res, CodeDepthExceeded, ReasonDepth)
		// c gave d all its tokens: nothing left for another hop asking for some.
		_, res = g.do(t, rpcCall{agent: "d", key: "key-c", as: "c", token: tokC, method: MethodSend,
			params: textParams("wait", newMessageID(), &DelegationRequest{Budget: &RequestBudget{Tokens: int64p(1)}})})
		wantError(t, res, CodeDelegationWidened, ReasonWidened)
	})

	// b gives c the rest of its budget in a second task; then it has none.
	t.Run("SecondDelegationTakesTheRest", func(t *testing.T) {
		_, res := g.do(t, rpcCall{agent: "c", key: "key-b", as: "b", token: tokB, method: MethodSend, params: textParams("wait", newMessageID(), nil)})
		mustTask(t, res)
		if cl := ch.verifiedClaims(t, ch.c.lastToken()); cl.Budget != (Budget{NanoUSD: aUSD - bUSD, Tokens: 600}) {
			t.Errorf("second child's budget %+v; want b's remaining", cl.Budget)
		}
		_, res = g.do(t, rpcCall{agent: "c", key: "key-b", as: "b", token: tokB, method: MethodSend,
			params: textParams("wait", newMessageID(), &DelegationRequest{Budget: &RequestBudget{NanoUSD: int64p(1)}})})
		wantError(t, res, CodeDelegationWidened, ReasonWidened)
	})

	t.Run("GetThroughTheGateway", func(t *testing.T) {
		_, res := g.do(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodGet, params: map[string]any{"id": task.ID}})
		if got := mustTask(t, res); got.ID != task.ID || got.Status.State != StateWorking {
			t.Errorf("tasks/get = %s %s", got.ID, got.Status.State)
		}
		// Only the caller sees its task.
		_, res = g.do(t, rpcCall{agent: "b", key: "key-c", as: "c", method: MethodGet, params: map[string]any{"id": task.ID}})
		wantError(t, res, CodeTaskNotFound, ReasonTaskNotFound)
	})

	t.Run("CancelStopsDownstream", func(t *testing.T) {
		_, res := g.do(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodCancel, params: map[string]any{"id": task.ID}})
		if got := mustTask(t, res); got.ID != task.ID || got.Status.State != StateCanceled {
			t.Fatalf("tasks/cancel = %s %s", got.ID, got.Status.State)
		}
		for _, f := range []*fakeAgent{ch.b, ch.c, ch.d} {
			f.mu.Lock()
			for id, ft := range f.tasks {
				if ft.State != StateCanceled {
					t.Errorf("agent %s's task %s is %s after a canceled its root task", f.name, id, ft.State)
				}
			}
			f.mu.Unlock()
		}
		for _, id := range []string{tb.HopID, tc.HopID} {
			if h, _ := g.p.store.Get(bg, "acme", id); h.State != StateCanceled {
				t.Errorf("hop %s is %s; want canceled", id, h.State)
			}
		}
		// b sees c's task canceled, and can delegate no more.
		_, res = g.do(t, rpcCall{agent: "c", key: "key-b", as: "b", method: MethodGet, params: map[string]any{"id": tc.TaskID}})
		if got := mustTask(t, res); got.Status.State != StateCanceled {
			t.Errorf("c's task as b sees it: %s", got.Status.State)
		}
		_, res = g.do(t, rpcCall{agent: "c", key: "key-b", as: "b", token: tokB, method: MethodSend, params: textParams("wait", newMessageID(), nil)})
		wantError(t, res, CodeTokenInvalid, ReasonParentEnded)
		_, res = g.do(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodCancel, params: map[string]any{"id": task.ID}})
		wantError(t, res, CodeTaskNotCancelable, ReasonTaskNotCancelable)
	})

	t.Run("LedgerProvesTheTree", func(t *testing.T) {
		ch.led.verifyLog(t, "acme")
		evs := ch.led.events(t, "acme")
		for _, id := range []string{task.ID, tc.TaskID} { // any task of the tree names it
			root, err := BuildTree(evs, id)
			if err != nil {
				t.Fatal(err)
			}
			if root.HopID != tb.HopID || root.Caller != "a" || root.Callee != "b" || root.State != StateCanceled || len(root.Children) != 2 {
				t.Fatalf("root %+v", root)
			}
			c := root.Children[0]
			if c.HopID != tc.HopID || c.Caller != "b" || c.Callee != "c" || c.Depth != 2 || c.State != StateCanceled || len(c.Children) != 1 {
				t.Errorf("b's child %+v", c)
			}
			if d := c.Children[0]; d.Callee != "d" || d.Depth != 3 || d.State != StateCanceled {
				t.Errorf("c's child %+v", d)
			}
			reasons := map[string]int{}
			root.Walk(func(n *Node) {
				for _, r := range n.Refused {
					reasons[r.Reason]++
				}
			})
			if reasons[ReasonWidened] < 10 || reasons[ReasonLoop] != 1 || reasons[ReasonDepth] != 1 || reasons[ReasonTokenCallee] != 1 || reasons[ReasonParentEnded] != 1 {
				t.Errorf("refusals in the tree: %v", reasons)
			}
		}
		// Every hop event's payload (the message) is committed, not in clear.
		for _, ev := range evs {
			a := attrsOf(t, ev)
			if a["event"] == EventHop && ev.PayloadSHA256 == "" {
				t.Errorf("hop event %s without a payload commitment", ev.ID)
			}
			b, _ := json.Marshal(a)
			if strings.Contains(string(b), `"delegate"`) {
				t.Errorf("message content in clear in event %s", ev.ID)
			}
		}
	})

	t.Run("TamperedTreesRefused", func(t *testing.T) {
		evs := ch.led.events(t, "acme")
		drop := func(pred func(map[string]any) bool) []ledger.Event {
			var out []ledger.Event
			for _, ev := range evs {
				if !pred(attrsOf(t, ev)) {
					out = append(out, ev)
				}
			}
			return out
		}
		// editOf sets key in the events of type event of hop ("": every
		// event of hop that has key, and its grant).
		editOf := func(event, hop, key string, v any) []ledger.Event {
			out := slices.Clone(evs)
			for i, ev := range out {
				a := attrsOf(t, ev)
				_, has := a[key]
				if a["hop_id"] == hop && (event == "" && (has || a["event"] == EventHop) || a["event"] == event) {
					a[key] = v
					out[i].RawAttrs, out[i].Attrs = nil, a
				}
			}
			return out
		}
		edit := func(hop, key string, v any) []ledger.Event { return editOf("", hop, key, v) }
		for _, test := range []struct {
			name string
			evs  []ledger.Event
			want string
		}{
			{"EventsOfAHopWithoutGrant", drop(func(a map[string]any) bool { return a["event"] == EventHop && a["hop_id"] == tc.HopID }), "orphan"},
			{"OrphanHop", drop(func(a map[string]any) bool { return a["hop_id"] == tc.HopID }), "orphan"},
			{"DepthSkipped", edit(tc.HopID, "depth", 3), "at depth 3 under hop"},
			{"EventsDisagree", editOf(EventCall, tc.HopID, "callee", "x"), "says callee"},
			{"WidenedScopes", edit(tc.HopID, "scopes", []any{"tool:search", "model:claude"}), `scope "model:claude"`},
			{"WidenedBudget", edit(tc.HopID, "budget", map[string]any{"nano_usd": int64(aUSD) + 1, "tokens": 1}), "budget"},
			{"ChildrenOverBudget", edit(tc.HopID, "budget", map[string]any{"nano_usd": int64(aUSD), "tokens": 1000}), "gave its children"},
			{"BrokenChain", edit(tc.HopID, "chain", []any{"a", "x", "c"}), "does not extend"},
			{"CallerNotParentsCallee", edit(tc.HopID, "caller", "x"), "is not its parent's callee"},
			{"OutlivesParent", edit(tc.HopID, "expires", time.Now().Add(48*time.Hour).UTC().Format(time.RFC3339)), "expires after"},
		} {
			t.Run(test.name, func(t *testing.T) {
				if _, err := BuildTree(test.evs, task.ID); !errors.Is(err, ErrTreeInconsistent) || !strings.Contains(err.Error(), test.want) {
					t.Errorf("BuildTree = %v; want ErrTreeInconsistent: ...%s...", err, test.want)
				}
			})
		}
		if _, err := BuildTree(evs, ledger.NewEventID()); !errors.Is(err, ErrTreeNotFound) {
			t.Errorf("BuildTree of an unknown task = %v; want ErrTreeNotFound", err)
		}
	})
}

func TestStreamingPassesThrough(t *testing.T) {
	ch := newChain(t, nil)
	ch.b.gate = make(chan struct{})
	req := ch.g.request(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodStream, id: "s1", params: textParams("stream", newMessageID(), nil)})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if !isEventStream(resp.Header) || resp.Header.Get(HeaderTraceID) == "" {
		t.Fatalf("content type %q, trace %q", resp.Header.Get("Content-Type"), resp.Header.Get(HeaderTraceID))
	}
	rd := gateway.NewSSEReader(resp.Body, 0)
	next := func() (Response, resultHead) {
		t.Helper()
		ev, err := rd.Next()
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		var res Response
		var head resultHead
		if err := json.Unmarshal(ev.Data, &res); err != nil || res.Error != nil || string(res.ID) != `"s1"` {
			t.Fatalf("event %s: %v", ev.Data, err)
		}
		json.Unmarshal(res.Result, &head)
		return res, head
	}
	// The first event arrives while b still holds the rest: no buffering.
	_, first := next()
	if first.Kind != KindTask || first.state() != StateSubmitted {
		t.Fatalf("first event %+v", first)
	}
	gid := first.ID
	if strings.HasPrefix(gid, "b-task") {
		t.Errorf("streamed task id %s is b's, not the gateway's", gid)
	}
	close(ch.b.gate)
	var kinds []string
	for {
		_, h := next()
		kinds = append(kinds, h.Kind)
		if h.task() != gid {
			t.Errorf("event of task %q; want %q", h.task(), gid)
		}
		if h.Final {
			break
		}
	}
	if !slices.Equal(kinds, []string{KindStatusUpdate, KindArtifactUpdate, KindStatusUpdate}) {
		t.Errorf("events %v", kinds)
	}
	if _, err := rd.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the final event: %v; want the end of the stream", err)
	}
	h, err := ch.g.p.store.Get(bg, "acme", gid)
	if err != nil || h.State != StateCompleted {
		t.Fatalf("hop after the stream: %+v, %v", h, err)
	}
	var snap Task
	json.Unmarshal(h.Result, &snap)
	if snap.ID != gid || snap.Status.State != StateCompleted || len(snap.Artifacts) != 1 {
		t.Errorf("stored snapshot %s", h.Result)
	}
	var states []string
	for _, ev := range ch.led.events(t, "acme") {
		if a := attrsOf(t, ev); a["event"] == EventState && a["hop_id"] == gid {
			states = append(states, a["state"].(string))
		}
	}
	if !slices.Equal(states, []string{"submitted", "working", "completed"}) {
		t.Errorf("recorded states %v", states)
	}
	root, err := BuildTree(ch.led.events(t, "acme"), gid)
	if err != nil || root.State != StateCompleted {
		t.Errorf("BuildTree = %+v, %v", root, err)
	}
}

func mustKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestResubscribe: a caller reconnects to the stream of a task it
// delegated (tasks/resubscribe): the callee's updates pass through with the
// gateway's task id and are folded into the hop; once the task has ended,
// the stored last state is the one event; another caller's or an unknown
// task is not found.
func TestResubscribe(t *testing.T) {
	ch := newChain(t, nil)
	_, res := ch.g.do(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodSend, params: textParams("wait", newMessageID(), nil)})
	task := mustTask(t, res)
	if task.Status.State != StateWorking {
		t.Fatalf("task %s is %s; want working", task.ID, task.Status.State)
	}
	resub := func(id string) (http.Header, []Response) {
		t.Helper()
		resp, err := http.DefaultClient.Do(ch.g.request(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodResubscribe, id: "r1",
			params: map[string]any{"id": id}}))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if !isEventStream(resp.Header) {
			var r Response
			json.NewDecoder(resp.Body).Decode(&r)
			return resp.Header, []Response{r}
		}
		var out []Response
		rd := gateway.NewSSEReader(resp.Body, 0)
		for {
			ev, err := rd.Next()
			if errors.Is(err, io.EOF) {
				return resp.Header, out
			}
			if err != nil {
				t.Fatal(err)
			}
			var r Response
			if err := json.Unmarshal(ev.Data, &r); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
	}
	_, evs := resub(task.ID)
	var kinds []string
	for _, r := range evs {
		var h resultHead
		if r.Error != nil || json.Unmarshal(r.Result, &h) != nil || string(r.ID) != `"r1"` {
			t.Fatalf("event %+v", r)
		}
		if h.task() != task.ID {
			t.Errorf("event of task %q; want the gateway's %q", h.task(), task.ID)
		}
		kinds = append(kinds, h.Kind)
	}
	if !slices.Equal(kinds, []string{KindTask, KindStatusUpdate, KindArtifactUpdate, KindStatusUpdate}) {
		t.Fatalf("events %v", kinds)
	}
	h, err := ch.g.p.store.Get(bg, "acme", task.ID)
	if err != nil || h.State != StateCompleted {
		t.Fatalf("hop after the resubscription: %+v, %v", h, err)
	}
	if ch.b.count(MethodResubscribe) != 1 {
		t.Errorf("b got %d resubscriptions", ch.b.count(MethodResubscribe))
	}

	// Ended: the stored state, without asking b.
	_, evs = resub(task.ID)
	var last Task
	if len(evs) != 1 || json.Unmarshal(evs[0].Result, &last) != nil || last.ID != task.ID || last.Status.State != StateCompleted {
		t.Fatalf("resubscription to an ended task: %+v", evs)
	}
	if ch.b.count(MethodResubscribe) != 1 {
		t.Errorf("b asked again for an ended task")
	}

	for _, id := range []string{"no-such-task", ""} {
		if _, evs := resub(id); len(evs) != 1 || evs[0].Error == nil || (id != "" && evs[0].Error.Code != CodeTaskNotFound) {
			t.Errorf("resubscribe %q: %+v", id, evs)
		}
	}
	_, other := ch.g.do(t, rpcCall{agent: "b", key: "key-c", as: "c", method: MethodResubscribe, params: map[string]any{"id": task.ID}})
	wantError(t, other, CodeTaskNotFound, ReasonTaskNotFound)

	var calls int
	for _, ev := range ch.led.events(t, "acme") {
		if a := attrsOf(t, ev); a["event"] == EventCall && a["method"] == MethodResubscribe && a["hop_id"] == task.ID {
			calls++
		}
	}
	if calls != 2 {
		t.Errorf("%d resubscriptions recorded; want 2", calls)
	}
}
