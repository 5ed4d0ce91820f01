package httpapi

import "github.com/gin-gonic/gin"

// messages serves Anthropic's /v1/messages.
func (s *server) messages(c *gin.Context) {
	s.messagesHandler(c)
}

func (s *server) messagesHandler(c *gin.Context) {}
