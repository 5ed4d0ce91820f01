package a2a

import (
	"bytes"
	"testing"
	"time"

	"aigw/ledger"
)

// TestAttrBuf checks that an event with attributes built by attrBuf has
// the entry it has with the same attributes in a map.
func TestAttrBuf(t *testing.T) {
	odd := "é<&>\"\\\n\x01\u2028 \U0001F600"
	cl := testHop("acme", "01a21dc5-29df-7517-988f-a212094be2b6", Budget{NanoUSD: 1e9, Tokens: -1}).Claims
	cl.Chain, cl.Scopes = []string{"a", odd}, nil
	for _, test := range []struct {
		name  string
		build func() *attrBuf
		want  map[string]any
	}{
		{"Grant", func() *attrBuf { return grantAttrs(&cl, MethodSend) }, map[string]any{
			"event": EventHop, "method": MethodSend, "hop_id": cl.HopID, "task_id": cl.TaskID, "root_task_id": cl.RootTask,
			"caller": cl.Caller, "callee": cl.Callee, "depth": cl.Depth, "parent_hop_id": cl.ParentHop,
			"scopes": []any{}, "budget": map[string]any{"nano_usd": int64(1e9), "tokens": int64(-1)}, "max_depth": cl.MaxDepth,
			"chain": []any{"a", odd}, "expires": time.Unix(cl.Expires, 0).UTC().Format(time.RFC3339)}},
		{"Values", func() *attrBuf {
			a := newAttrs()
			a.set("s", odd)
			a.set("dup", "first")
			a.set("n", int64(-1)<<52)
			a.set("b", true)
			a.set("nil", nil)
			a.set("u", uint32(7))
			a.set("nested", map[string]any{"z": []any{1, "x", false, map[string]any{odd: 2.5}}, "a": nil})
			a.set("dup", 3)
			errAttrs(a, rpcErr(CodeInvalidParams, ReasonInvalidParams, "bad %s", odd))
			return a
		}, map[string]any{"s": odd, "n": int64(-1) << 52, "b": true, "nil": nil, "u": uint32(7),
			"nested": map[string]any{"z": []any{1, "x", false, map[string]any{odd: 2.5}}, "a": nil}, "dup": 3,
			"error_code": CodeInvalidParams, "error": "bad " + odd, "reason": ReasonInvalidParams}},
	} {
		t.Run(test.name, func(t *testing.T) {
			ev := ledger.Event{ID: ledger.NewEventID(), Tenant: "acme", Kind: ledger.KindDelegation, Time: time.Now()}
			ev.Attrs = test.want
			want, err := ev.Entry()
			if err != nil {
				t.Fatal(err)
			}
			ev.Attrs, ev.RawAttrs = nil, test.build().json()
			got, err := ev.Entry()
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("entry with attrBuf = %s, %v;\nwith a map: %s", got, err, want)
			}
		})
	}
	// A string the ledger refuses in a map, it refuses from attrBuf.
	a := newAttrs()
	a.set("s", "bad \xff")
	ev := ledger.Event{ID: ledger.NewEventID(), Tenant: "acme", Kind: ledger.KindDelegation, Time: time.Now(), RawAttrs: a.json()}
	if _, err := ev.Entry(); err == nil {
		t.Errorf("entry with invalid UTF-8 in an attribute: no error")
	}
}
