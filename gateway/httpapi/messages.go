package httpapi

import "github.com/gin-gonic/gin"

// messages serves Anthropic's /v1/messages (see anthropic.go once wired).
func (s *server) messages(c *gin.Context) {
	s.messagesHandler(c)
}
