package api

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humachi"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/events"
	"github.com/hypersdk/hypersdk/daemon/jobs"
	"github.com/hypersdk/hypersdk/daemon/scheduler"
	"github.com/hypersdk/hypersdk/daemon/stats"
	"github.com/hypersdk/hypersdk/daemon/webhooks"
	"github.com/hypersdk/hypersdk/providers"
)

// HTTPMetrics records served requests.
type HTTPMetrics interface {
	ObserveHTTP(route, method string, code int, d time.Duration)
	Handler() http.Handler
}

// Options are the server's dependencies.
type Options struct {
	Jobs      *jobs.Manager
	Providers *providers.Set
	// Webhooks, when set, adds the /webhooks routes.
	Webhooks *webhooks.Service
	// Scheduler, when set, adds the /schedules routes.
	Scheduler *scheduler.Scheduler
	// Events, when set, adds the /events stream.
	Events *events.Log
	// Stats, when set, adds /stats/history and the stream's stats event.
	Stats  *stats.Sampler
	Stream StreamOptions
	// Cluster, when set, adds the /cluster route.
	Cluster Cluster
	Tokens  *Tokens
	Metrics HTTPMetrics
	Logger  *slog.Logger
	// MaxBodyBytes caps request bodies.
	MaxBodyBytes int64
	Version      string
	NodeID       string
	Database     string
	// Ready reports whether the daemon can serve (store reachable…).
	Ready func(ctx context.Context) error
	// Dashboard, when set, is the built web dashboard served at / (see
	// daemon/webui); nil serves a short pointer to the API there.
	Dashboard fs.FS
}

// Server is the HTTP handler of the daemon.
type Server struct {
	opts    Options
	log     *slog.Logger
	router  chi.Router
	api     huma.API
	started time.Time
	// streams holds a token per open event stream.
	streams chan struct{}
}

// Role metadata key on operations; operations without it are public.
const metaRole = "role"

// New builds the server and registers every operation. It panics when
// opts.Dashboard holds no index.html, a build mistake.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	s := &Server{opts: opts, log: opts.Logger, started: time.Now()}
	r := chi.NewRouter()
	r.Use(middleware.RequestID, s.observe, s.recover, s.limitBody)
	s.router = r

	cfg := huma.DefaultConfig("HyperSDK API", opts.Version)
	cfg.Info.Description = "Export virtual machines from vSphere, clouds, Hyper-V and Proxmox to verifiable OVF/OVA images."
	cfg.OpenAPIPath, cfg.DocsPath, cfg.SchemasPath = "", "", ""
	cfg.CreateHooks = nil // no $schema links in bodies
	cfg.RejectUnknownQueryParameters = true
	cfg.Transformers = append(cfg.Transformers, problemTypes)
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", Description: "API token; roles: viewer (read), operator (submit/cancel), admin (everything)."},
	}
	s.api = humachi.New(r, cfg)
	s.api.UseMiddleware(s.authenticate)

	s.registerSystem()
	s.registerJobs()
	s.registerProviders()
	s.registerWebhooks()
	s.registerSchedules()
	s.registerEvents()
	s.registerStats()
	s.registerCluster()
	s.mountFallback()
	return s
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.router }

// op declares an operation; role "" makes it public.
func op(id, method, path, role, summary string, tags ...string) huma.Operation {
	o := huma.Operation{OperationID: id, Method: method, Path: path, Summary: summary, Tags: tags}
	if role != "" {
		o.Metadata = map[string]any{metaRole: role}
		o.Security = []map[string][]string{{"bearer": {}}}
		o.Errors = []int{http.StatusUnauthorized, http.StatusForbidden}
		if role != "viewer" {
			o.Description = "Requires the " + role + " role."
		}
	}
	return o
}

// authenticate enforces the operation's role.
func (s *Server) authenticate(ctx huma.Context, next func(huma.Context)) {
	role, _ := ctx.Operation().Metadata[metaRole].(string)
	if role == "" {
		next(ctx)
		return
	}
	p, ok := s.opts.Tokens.Authenticate(ctx.Header("Authorization"))
	if !ok {
		ctx.SetHeader("WWW-Authenticate", `Bearer realm="hypersdk"`)
		_ = huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "a valid bearer token is required (Authorization: Bearer <token>)")
		return
	}
	if info := requestInfoFrom(ctx.Context()); info != nil {
		info.principal = p.Name
	}
	if !p.Can(role) {
		_ = huma.WriteErr(s.api, ctx, http.StatusForbidden, fmt.Sprintf("token %q has role %s; this operation needs %s", p.Name, p.Role, role))
		return
	}
	next(huma.WithContext(ctx, withPrincipal(ctx.Context(), p)))
}

type requestInfo struct{ principal string }

type requestInfoKey struct{}

func requestInfoFrom(ctx context.Context) *requestInfo {
	i, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return i
}

// statusWriter records the status code; Unwrap lets http.ResponseController
// reach the connection's Flusher for streaming responses.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe logs every request and records HTTP metrics by route template.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info)))
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		d := time.Since(start)
		if s.opts.Metrics != nil {
			s.opts.Metrics.ObserveHTTP(route, r.Method, status, d)
		}
		level := slog.LevelInfo
		if route == "/healthz" || route == "/readyz" || route == "/metrics" {
			level = slog.LevelDebug
		}
		s.log.Log(r.Context(), level, "http request", "method", r.Method, "route", route, "status", status,
			"duration", d.Round(time.Microsecond).String(), "bytes", sw.bytes, "request_id", middleware.GetReqID(r.Context()),
			"principal", info.principal, "remote", r.RemoteAddr)
	})
}

// recover turns a handler panic into a 500 problem and a logged stack.
func (s *Server) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()),
					"request_id", middleware.GetReqID(r.Context()))
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusInternalServerError)
				fmt.Fprintf(w, `{"type":%q,"title":"Internal Server Error","status":500,"detail":"internal error; see the daemon log"}`, apitypes.ProblemTypePrefix+"internal")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// limitBody caps every request body; huma also checks per operation.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}
