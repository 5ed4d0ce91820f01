package a2a

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"aigw/ledger"
)

// Node is one hop of a delegation tree as the ledger recorded it.
type Node struct {
	HopID       string `json:"hop_id"`
	ParentHopID string `json:"parent_hop_id,omitempty"`
	TaskID      string `json:"task_id"`
	RootTaskID  string `json:"root_task_id"`
	Caller      string `json:"caller"`
	Callee      string `json:"callee"`
	Depth       int    `json:"depth"`
	MaxDepth    int    `json:"max_depth"`
	// Chain, Scopes, Budget and Expires are what the hop's token granted.
	Chain   []string  `json:"chain"`
	Scopes  []string  `json:"scopes"`
	Budget  Budget    `json:"budget"`
	Expires time.Time `json:"expires"`
	// Granted is the time of the hop event.
	Granted time.Time `json:"granted"`
	// State is the task's last recorded state ("" if none was); States
	// every recorded state, in log order.
	State  TaskState   `json:"state,omitempty"`
	States []TaskState `json:"states,omitempty"`
	// Events are the ids of the hop's ledger events, in log order.
	Events []string `json:"events"`
	// Refused are the delegations refused to the callee under this hop.
	Refused []Refusal `json:"refused,omitempty"`
	// Children are the hops delegated under this one, in log order.
	Children []*Node `json:"children,omitempty"`
	// refunded: the hop failed before its callee answered, and its
	// budget went back to its parent.
	refunded bool
}

// Refusal is a delegation the gateway refused.
type Refusal struct {
	EventID string `json:"event_id"`
	Caller  string `json:"caller"`
	Callee  string `json:"callee"`
	Method  string `json:"method,omitempty"`
	Reason  string `json:"reason"`
	Code    int    `json:"code"`
	Error   string `json:"error"`
}

// Walk calls fn on n and its descendants, depth first.
func (n *Node) Walk(fn func(*Node)) {
	fn(n)
	for _, c := range n.Children {
		c.Walk(fn)
	}
}

// ErrTreeNotFound is returned by BuildTree when no hop of the task is
// among the events; ErrTreeInconsistent is wrapped by every check that
// fails.
var (
	ErrTreeNotFound     = errors.New("a2a: no delegation of the task in the events")
	ErrTreeInconsistent = errors.New("a2a: delegation tree inconsistent")
)

// treeEvent is a delegation event's attributes.
type treeEvent struct {
	ev    *ledger.Event
	attrs map[string]any
}

func (t treeEvent) str(k string) string {
	s, _ := t.attrs[k].(string)
	return s
}

func (t treeEvent) num(k string) (int64, bool) {
	switch v := t.attrs[k].(type) {
	case json.Number:
		n, err := v.Int64()
		return n, err == nil
	case int:
		return int64(v), true
	case int64:
		return v, true
	case float64:
		return int64(v), float64(int64(v)) == v
	}
	return 0, false
}

func (t treeEvent) strs(k string) ([]string, bool) {
	switch v := t.attrs[k].(type) {
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	case []string:
		return slices.Clone(v), true
	}
	return nil, false
}

func (t treeEvent) budget() (Budget, bool) {
	m, ok := t.attrs["budget"].(map[string]any)
	if !ok {
		return Budget{}, false
	}
	sub := treeEvent{attrs: m}
	usd, ok1 := sub.num("nano_usd")
	tok, ok2 := sub.num("tokens")
	return Budget{NanoUSD: usd, Tokens: tok}, ok1 && ok2
}

func inconsistent(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrTreeInconsistent, fmt.Sprintf(format, args...))
}

// BuildTree reconstructs, from a tenant log's events (in log order, e.g.
// from the ledger's entries), the delegation tree of a task: the whole
// tree its hop belongs to (taskID may name any task of it). It checks
// what the gateway promises, from the ledger alone: one root at depth 1;
// every other hop's parent recorded (no orphan), its depth its parent's
// + 1 and at most the max depth, its caller its parent's callee, its
// chain its parent's + callee without repeats (no loop); its scopes,
// budget, expiry and max depth within its parent's; the budgets of a
// hop's children within its own; every event of a hop agreeing on its
// links; every state change one A2A allows. Events of other kinds and
// trees are ignored.
func BuildTree(evs []ledger.Event, taskID string) (*Node, error) {
	var all []treeEvent
	root := ""
	for i := range evs {
		ev := &evs[i]
		if ev.Kind != ledger.KindDelegation {
			continue
		}
		attrs, err := ev.DecodeAttrs()
		if err != nil {
			return nil, inconsistent("event %s: attributes: %v", ev.ID, err)
		}
		te := treeEvent{ev: ev, attrs: attrs}
		all = append(all, te)
		if root == "" && (te.str("hop_id") == taskID || te.str("task_id") == taskID) && te.str("root_task_id") != "" {
			root = te.str("root_task_id")
		}
	}
	if root == "" {
		return nil, fmt.Errorf("%w: %s", ErrTreeNotFound, taskID)
	}
	nodes := map[string]*Node{}
	var order []*Node
	var rest []treeEvent
	for _, te := range all {
		if te.str("root_task_id") != root {
			continue
		}
		if te.str("event") != EventHop {
			rest = append(rest, te)
			continue
		}
		n, err := nodeOf(te)
		if err != nil {
			return nil, err
		}
		if nodes[n.HopID] != nil {
			return nil, inconsistent("hop %s granted twice (events %s and %s)", n.HopID, nodes[n.HopID].Events[0], te.ev.ID)
		}
		nodes[n.HopID] = n
		order = append(order, n)
	}
	for _, te := range rest {
		if te.str("event") == EventRefused {
			p := nodes[te.str("parent_hop_id")]
			if p == nil {
				return nil, inconsistent("refusal %s under hop %q, which is not in the tree (orphan)", te.ev.ID, te.str("parent_hop_id"))
			}
			code, _ := te.num("error_code")
			p.Refused = append(p.Refused, Refusal{EventID: te.ev.ID, Caller: te.str("caller"), Callee: te.str("callee"),
				Method: te.str("method"), Reason: te.str("reason"), Code: int(code), Error: te.str("error")})
			continue
		}
		id := te.str("hop_id")
		n := nodes[id]
		if n == nil {
			return nil, inconsistent("event %s of hop %q, whose grant is not in the events (orphan)", te.ev.ID, id)
		}
		if err := n.agrees(te); err != nil {
			return nil, err
		}
		n.Events = append(n.Events, te.ev.ID)
		if te.str("event") == EventState {
			st := TaskState(te.str("state"))
			from := TaskState(te.str("from"))
			if !CanTransition(from, st) {
				return nil, inconsistent("event %s: hop %s went from %s to %s", te.ev.ID, id, stateName(from), stateName(st))
			}
			if from == "" && st == StateFailed {
				n.refunded = true
			}
			n.States = append(n.States, st)
			if !n.State.Terminal() || st.Terminal() {
				n.State = st
			}
		}
	}
	var top *Node
	for _, n := range order {
		if n.ParentHopID == "" {
			if n.HopID != root || top != nil {
				return nil, inconsistent("hop %s has no parent but is not the root %s", n.HopID, root)
			}
			top = n
			continue
		}
		p := nodes[n.ParentHopID]
		if p == nil {
			return nil, inconsistent("hop %s's parent %s is not in the events (orphan)", n.HopID, n.ParentHopID)
		}
		if err := checkChild(p, n); err != nil {
			return nil, err
		}
		p.Children = append(p.Children, n)
	}
	if top == nil {
		return nil, inconsistent("the root hop %s is not in the events", root)
	}
	if top.Depth != 1 {
		return nil, inconsistent("root hop %s at depth %d, not 1", top.HopID, top.Depth)
	}
	if len(top.Chain) != 2 || top.Chain[0] != top.Caller || top.Chain[1] != top.Callee {
		return nil, inconsistent("root hop %s's chain %v is not [caller callee]", top.HopID, top.Chain)
	}
	seen := 0
	var err error
	top.Walk(func(n *Node) {
		seen++
		if err == nil {
			err = checkAllocations(n)
		}
	})
	if err != nil {
		return nil, err
	}
	if seen != len(nodes) {
		return nil, inconsistent("%d hops are not reachable from the root", len(nodes)-seen)
	}
	return top, nil
}

// nodeOf reads a hop event.
func nodeOf(te treeEvent) (*Node, error) {
	n := &Node{HopID: te.str("hop_id"), ParentHopID: te.str("parent_hop_id"), TaskID: te.str("task_id"), RootTaskID: te.str("root_task_id"),
		Caller: te.str("caller"), Callee: te.str("callee"), Granted: te.ev.Time, Events: []string{te.ev.ID}}
	var ok [6]bool
	var depth, maxDepth int64
	depth, ok[0] = te.num("depth")
	maxDepth, ok[1] = te.num("max_depth")
	n.Depth, n.MaxDepth = int(depth), int(maxDepth)
	n.Chain, ok[2] = te.strs("chain")
	n.Scopes, ok[3] = te.strs("scopes")
	n.Budget, ok[4] = te.budget()
	exp, err := time.Parse(time.RFC3339, te.str("expires"))
	n.Expires, ok[5] = exp, err == nil
	if n.HopID == "" || n.TaskID == "" || n.Caller == "" || n.Callee == "" || slices.Contains(ok[:], false) {
		return nil, inconsistent("hop event %s lacks attributes (hop_id, task_id, caller, callee, depth, max_depth, chain, scopes, budget, expires)", te.ev.ID)
	}
	return n, nil
}

// agrees checks that an event of a hop names the same links as its grant.
func (n *Node) agrees(te treeEvent) error {
	depth, _ := te.num("depth")
	for _, f := range []struct{ name, got, want string }{
		{"parent_hop_id", te.str("parent_hop_id"), n.ParentHopID},
		{"task_id", te.str("task_id"), n.TaskID},
		{"caller", te.str("caller"), n.Caller},
		{"callee", te.str("callee"), n.Callee},
		{"depth", strconv.FormatInt(depth, 10), strconv.Itoa(n.Depth)},
	} {
		if f.got != f.want {
			return inconsistent("event %s of hop %s says %s %q, its grant %q", te.ev.ID, n.HopID, f.name, f.got, f.want)
		}
	}
	return nil
}

// checkChild checks that hop n narrows its parent p.
func checkChild(p, n *Node) error {
	switch {
	case n.Depth != p.Depth+1:
		return inconsistent("hop %s at depth %d under hop %s at depth %d", n.HopID, n.Depth, p.HopID, p.Depth)
	case n.Depth > p.MaxDepth || n.MaxDepth > p.MaxDepth:
		return inconsistent("hop %s (depth %d, max %d) is deeper than its parent %s allows (%d)", n.HopID, n.Depth, n.MaxDepth, p.HopID, p.MaxDepth)
	case n.Caller != p.Callee:
		return inconsistent("hop %s's caller %q is not its parent's callee %q", n.HopID, n.Caller, p.Callee)
	case n.RootTaskID != p.RootTaskID:
		return inconsistent("hop %s's root %s differs from its parent's %s", n.HopID, n.RootTaskID, p.RootTaskID)
	case !slices.Equal(n.Chain, append(slices.Clone(p.Chain), n.Callee)):
		return inconsistent("hop %s's chain %v does not extend its parent's %v", n.HopID, n.Chain, p.Chain)
	case slices.Contains(p.Chain, n.Callee):
		return inconsistent("hop %s delegates back to %q, already on the chain (loop)", n.HopID, n.Callee)
	case !n.Budget.Within(p.Budget):
		return inconsistent("hop %s's budget %+v is over its parent's %+v", n.HopID, n.Budget, p.Budget)
	case n.Expires.After(p.Expires):
		return inconsistent("hop %s expires after its parent %s", n.HopID, p.HopID)
	}
	if s, ok := ScopesWithin(n.Scopes, p.Scopes); !ok {
		return inconsistent("hop %s's scope %q is not among its parent's %v", n.HopID, s, p.Scopes)
	}
	return nil
}

// checkAllocations checks that the budgets given to n's children (but
// those refunded) add up to no more than n's own.
func checkAllocations(n *Node) error {
	var usd, tok int64
	for _, c := range n.Children {
		if c.refunded {
			continue
		}
		usd += max(c.Budget.NanoUSD, 0)
		tok += max(c.Budget.Tokens, 0)
	}
	if (n.Budget.NanoUSD >= 0 && usd > n.Budget.NanoUSD) || (n.Budget.Tokens >= 0 && tok > n.Budget.Tokens) {
		return inconsistent("hop %s gave its children %d nano-USD and %d tokens, over its budget %+v", n.HopID, usd, tok, n.Budget)
	}
	return nil
}
