package mcp

import (
	"maps"
	"slices"
	"time"
)

// TenantServers returns the tenants whose MCP server is live, sorted.
func (s *Server) TenantServers() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Sorted(maps.Keys(s.tenants))
}

// FreeIdleTenants frees, as if their idle time had run out, the servers
// of the tenants without a session.
func (s *Server) FreeIdleTenants() { s.freeIdle(time.Now(), true) }

// ServesSession reports whether the tenant's live server holds the
// session.
func (s *Server) ServesSession(tenant, id string) bool {
	s.mu.RLock()
	t := s.tenants[tenant]
	s.mu.RUnlock()
	if t == nil {
		return false
	}
	for ss := range t.srv.Sessions() {
		if ss.ID() == id {
			return true
		}
	}
	return false
}

// WriteSSE writes data to w as one event of a relay's event stream.
var WriteSSE = writeSSE
