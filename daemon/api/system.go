package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humachi"

	"github.com/hypersdk/hypersdk/apitypes"
)

type healthBody struct {
	Status string `json:"status" example:"ok"`
	Detail string `json:"detail,omitempty"`
}

type healthOutput struct {
	Body healthBody
}

type statusOutput struct {
	Body apitypes.Status
}

type whoamiOutput struct {
	Body apitypes.WhoAmI
}

func (s *Server) registerSystem() {
	huma.Register(s.api, op("healthz", http.MethodGet, "/healthz", "", "Liveness: the process serves HTTP", "system"),
		func(ctx context.Context, _ *struct{}) (*healthOutput, error) {
			return &healthOutput{Body: healthBody{Status: "ok"}}, nil
		})

	readyOp := op("readyz", http.MethodGet, "/readyz", "", "Readiness: the store is reachable and the job engine runs", "system")
	readyOp.Errors = []int{http.StatusServiceUnavailable}
	huma.Register(s.api, readyOp, func(ctx context.Context, _ *struct{}) (*healthOutput, error) {
		if s.opts.Ready != nil {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if err := s.opts.Ready(cctx); err != nil {
				return nil, problem(http.StatusServiceUnavailable, apitypes.ProblemNotReady, err.Error())
			}
		}
		return &healthOutput{Body: healthBody{Status: "ready"}}, nil
	})

	metricsOp := op("metrics", http.MethodGet, "/metrics", "", "Prometheus metrics", "system")
	metricsOp.Responses = map[string]*huma.Response{"200": {
		Description: "Prometheus text exposition format",
		Content:     map[string]*huma.MediaType{"text/plain": {Schema: &huma.Schema{Type: "string"}}},
	}}
	huma.Register(s.api, metricsOp, func(ctx context.Context, _ *struct{}) (*huma.StreamResponse, error) {
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			r, w := humachi.Unwrap(hctx)
			if s.opts.Metrics == nil {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			s.opts.Metrics.Handler().ServeHTTP(w, r)
		}}, nil
	})

	docOp := op("getOpenAPI", http.MethodGet, apitypes.APIPrefix+"/openapi.json", "viewer", "This API's OpenAPI 3.1 document", "system")
	docOp.Responses = map[string]*huma.Response{"200": {
		Description: "OpenAPI document",
		Content:     map[string]*huma.MediaType{"application/json": {Schema: &huma.Schema{Type: "object"}}},
	}}
	huma.Register(s.api, docOp, func(ctx context.Context, _ *struct{}) (*huma.StreamResponse, error) {
		b, err := s.api.OpenAPI().MarshalJSON()
		if err != nil {
			return nil, err
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			hctx.SetHeader("Content-Type", "application/json")
			_, _ = hctx.BodyWriter().Write(b)
		}}, nil
	})

	huma.Register(s.api, op("whoami", http.MethodGet, apitypes.APIPrefix+"/whoami", "viewer", "The caller: its token's name and role", "system"),
		func(ctx context.Context, _ *struct{}) (*whoamiOutput, error) {
			p := PrincipalFrom(ctx)
			return &whoamiOutput{Body: apitypes.WhoAmI{Name: p.Name, Role: p.Role}}, nil
		})

	huma.Register(s.api, op("getStatus", http.MethodGet, apitypes.APIPrefix+"/status", "viewer", "Daemon status: version, node, job counts, provider health", "system"),
		func(ctx context.Context, _ *struct{}) (*statusOutput, error) {
			counts, err := s.opts.Jobs.Counts(ctx)
			if err != nil {
				return nil, toProblem(ctx, s.log, err)
			}
			st := apitypes.Status{
				Version: s.opts.Version, Node: s.opts.NodeID, Database: s.opts.Database,
				StartedAt: s.started.UTC(), UptimeSeconds: time.Since(s.started).Seconds(), Jobs: counts,
				Providers: []apitypes.ProviderStatus{},
			}
			for _, in := range s.opts.Providers.List() {
				h := in.Health()
				st.Providers = append(st.Providers, apitypes.ProviderStatus{Name: in.Name(), Type: string(in.Type()), Healthy: h.Healthy, Error: h.Error, CheckedAt: h.CheckedAt})
			}
			return &statusOutput{Body: st}, nil
		})
}
