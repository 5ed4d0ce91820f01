package httpapi

import "github.com/gin-gonic/gin"

// Admin is the admin API.
type Admin struct{}

func (a *Admin) mount(e *gin.Engine, s *server) {}

func (s *server) messagesHandler(c *gin.Context) {}
