package api

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/webui"
)

// mountFallback answers what no operation matched: unknown API paths get a
// 404 problem, and everything else outside the API, probes and metrics is
// the dashboard's (or, without one, a pointer to the API at /).
func (s *Server) mountFallback() {
	var ui http.Handler
	if s.opts.Dashboard != nil {
		h, err := webui.New(s.opts.Dashboard)
		if err != nil {
			panic(err)
		}
		ui = h
	}
	notFound := func(w http.ResponseWriter, r *http.Request) {
		switch {
		case webui.Reserved(r.URL.Path):
			writeProblem(w, http.StatusNotFound, "not-found", "no such endpoint: "+r.Method+" "+r.URL.Path+"; see "+apitypes.APIPrefix+"/openapi.json")
		case ui != nil:
			ui.ServeHTTP(w, r)
		case r.URL.Path == "/":
			webui.SetSecurityHeaders(w.Header())
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{
				"api":     apitypes.APIPrefix,
				"openapi": apitypes.APIPrefix + "/openapi.json",
				"detail":  "this daemon was built without the web dashboard",
			})
		default:
			writeProblem(w, http.StatusNotFound, "not-found", "not found: "+r.URL.Path)
		}
	}
	s.router.NotFound(notFound)
	s.router.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		if !webui.Reserved(r.URL.Path) && !strings.HasPrefix(r.URL.Path, apitypes.APIPrefix) {
			notFound(w, r)
			return
		}
		writeProblem(w, http.StatusMethodNotAllowed, "method-not-allowed", r.Method+" is not allowed on "+r.URL.Path)
	})
}

// writeProblem writes a problem outside huma (routing errors).
func writeProblem(w http.ResponseWriter, status int, slug, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem(status, slug, detail))
}
