package api

import "github.com/go-chi/chi/v5"

// Router exposes the routes to the tests that compare them with the OpenAPI
// document.
func (s *Server) Router() chi.Router { return s.router }
