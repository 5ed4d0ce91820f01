package a2a

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// TestRedisReplicasAndRestart runs two gateway replicas on one Redis
// store: b delegates to c through the other replica than a used, retries
// go to either without a second call to the agent, and a new replica
// (the gateway restarted) knows every task and cancels the tree.
func TestRedisReplicasAndRestart(t *testing.T) {
	rc := newRedisClient(t)
	prefix := testPrefix(t, rc)
	led := newLedger(t)
	b, c := newFakeAgent(t, "b"), newFakeAgent(t, "c")
	agents := []Agent{
		{Name: "b", Tenant: "acme", URL: b.srv.URL, Callers: []string{"a"}, Scopes: []string{"tool:*"}},
		{Name: "c", Tenant: "acme", URL: c.srv.URL, Callers: []string{"b"}},
	}
	replica := func() *testGateway {
		// Each replica has its own Redis client and store: they share
		// only what Redis holds (and the signing key).
		return newGateway(t, Config{Recorder: led, Store: NewRedisStore(newRedisClient(t), prefix, time.Hour), Agents: agents})
	}
	g1, g2 := replica(), replica()
	// b delegates through g2, with its token in the message's metadata.
	b.onMessage = func(token string, m Message, task *fakeTask) error {
		params := textParams("wait", newMessageID(), &DelegationRequest{Scopes: []string{"tool:search"}})
		params["message"].(map[string]any)["metadata"] = map[string]any{MetaDelegation: token}
		res, err := g2.call(rpcCall{agent: "c", key: "key-b", as: "b", method: MethodSend, params: params})
		if err != nil {
			return err
		}
		if res.Error != nil {
			return fmt.Errorf("delegation to c refused: %s", res.Error.Message)
		}
		var child Task
		json.Unmarshal(res.Result, &child)
		task.Meta = map[string]any{"child_task": child.ID}
		return nil
	}
	mid := newMessageID()
	send := func(g *testGateway) Task {
		t.Helper()
		_, res := g.do(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodSend, params: textParams("delegate", mid, nil)})
		return mustTask(t, res)
	}
	task := send(g1)
	childID, _ := task.Metadata["child_task"].(string)
	if childID == "" {
		t.Fatalf("b did not delegate: %+v", task)
	}
	if tc := ch(t, c.lastToken()); tc.Caller != "b" || tc.Depth != 2 || !equal(tc.Scopes, "tool:search") {
		t.Errorf("c's token (issued by the other replica): %+v", tc)
	}

	t.Run("ReplicasShareTasks", func(t *testing.T) {
		_, res := g2.do(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodGet, params: map[string]any{"id": task.ID}})
		if got := mustTask(t, res); got.ID != task.ID || got.Status.State != StateWorking {
			t.Errorf("tasks/get on the other replica: %s %s", got.ID, got.Status.State)
		}
		if again := send(g2); again.ID != task.ID || b.count(MethodSend) != 1 {
			t.Errorf("retry on the other replica got %s, agent called %d times; want %s, once", again.ID, b.count(MethodSend), task.ID)
		}
	})

	t.Run("SurvivesRestart", func(t *testing.T) {
		g1.srv.Close()
		g2.srv.Close()
		g3 := replica()
		if again := send(g3); again.ID != task.ID || b.count(MethodSend) != 1 {
			t.Errorf("retry after the restart got %s, agent called %d times", again.ID, b.count(MethodSend))
		}
		_, res := g3.do(t, rpcCall{agent: "c", key: "key-b", as: "b", method: MethodGet, params: map[string]any{"id": childID}})
		if got := mustTask(t, res); got.Status.State != StateWorking {
			t.Errorf("c's task after the restart: %s", got.Status.State)
		}
		_, res = g3.do(t, rpcCall{agent: "b", key: "key-a", as: "a", method: MethodCancel, params: map[string]any{"id": task.ID}})
		if got := mustTask(t, res); got.Status.State != StateCanceled {
			t.Fatalf("cancel after the restart: %s", got.Status.State)
		}
		if st := c.task("c-task-1").State; st != StateCanceled {
			t.Errorf("c's task is %s; want canceled through the restarted gateway", st)
		}
	})

	root, err := BuildTree(led.events(t, "acme"), task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(root.Children) != 1 || root.Children[0].HopID != childID || root.State != StateCanceled || root.Children[0].State != StateCanceled {
		t.Errorf("tree %+v", root)
	}
}

func ch(t *testing.T, token string) *Claims {
	t.Helper()
	s, _ := NewSigner("aigw", testKey)
	cl, err := s.Verify(token, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func equal(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
