package mcp_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	gwmcp "aigw/gateway/mcp"
)

// A tenant's MCP server is freed once the tenant has had no session for
// TenantIdleTimeout, never while it has one; its next session makes it
// anew, with the tools of its upstreams.
func TestIdleTenantFreed(t *testing.T) {
	t.Parallel()
	h := twoTenantHarness(t, func(c *gwmcp.Config) { c.TenantIdleTimeout = 50 * time.Millisecond })
	a := mustConnect(t, h.url, "key-a")
	b := mustConnect(t, h.url, "key-b")
	if got := h.gw.TenantServers(); !slices.Equal(got, []string{"tenant-a", "tenant-b"}) {
		t.Fatalf("tenant servers = %q; want tenant-a and tenant-b", got)
	}
	h.gw.FreeIdleTenants()
	if got := h.gw.TenantServers(); len(got) != 2 || !h.gw.ServesSession("tenant-a", a.ID()) {
		t.Fatalf("tenant servers = %q after freeing idle ones; want both (each has a session)", got)
	}
	b.Close()
	waitFor(t, "tenant-b's server freed", func() bool { return slices.Equal(h.gw.TenantServers(), []string{"tenant-a"}) })
	if _, err := call(t, a, "up__echo", map[string]any{"text": "x"}); err != nil {
		t.Errorf("tenant-a's session after tenant-b's server was freed: %v", err)
	}
	b = mustConnect(t, h.url, "key-b")
	if tl := toolNames(t, b); tl["up__echo"] == nil || tl[gwmcp.ToolModels] == nil {
		t.Errorf("tools of tenant-b's new server = %v", keys(tl))
	}
	if r, err := call(t, b, "up__echo", map[string]any{"text": "again"}); err != nil || text(r) != "u: again" {
		t.Errorf("tenant-b's new session: %v, %v", r, err)
	}
}

// Freeing idle tenants does not race new sessions: a session is never
// connected to a server the gateway has let go (which would miss its
// upstreams' tool changes).
func TestIdleTenantFreeRace(t *testing.T) {
	t.Parallel()
	h := twoTenantHarness(t, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				h.gw.FreeIdleTenants()
			}
		}
	})
	var mu sync.Mutex
	var errs []string
	var workers sync.WaitGroup
	for w := range 4 {
		workers.Go(func() {
			key, tenant := "key-a", "tenant-a"
			if w%2 == 1 {
				key, tenant = "key-b", "tenant-b"
			}
			for i := range 25 {
				cs, err := connect(t, h.url, key)
				if err == nil && !h.gw.ServesSession(tenant, cs.ID()) {
					err = fmt.Errorf("session %d of %s is not on the tenant's live server", i, tenant)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
					return
				}
				cs.Close()
			}
		})
	}
	workers.Wait()
	close(stop)
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
}
