package webui

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// ContentSecurityPolicy is sent with every dashboard response: nothing
// inline, nothing from elsewhere. (Styles a script sets through the DOM,
// as React does, are not inline styles in CSP's sense.)
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

// Cache policies of the two kinds of files.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
)

// reserved are the path prefixes the dashboard never answers for.
var reserved = []string{"/api/", "/metrics", "/healthz", "/readyz"}

// Reserved reports whether p belongs to the daemon rather than the
// dashboard (the API, probes and metrics), so the fallback must not serve
// index.html for it.
func Reserved(p string) bool {
	if p == "/api" {
		return true
	}
	for _, r := range reserved {
		if p == strings.TrimSuffix(r, "/") || strings.HasPrefix(p, r) {
			return true
		}
	}
	return false
}

// Handler serves the dashboard in fsys: index.html at its root and the
// build's hashed files under assets/.
type Handler struct {
	fsys  fs.FS
	index []byte
	mod   time.Time
}

// New checks that fsys holds index.html and returns its handler.
func New(fsys fs.FS) (*Handler, error) {
	index, err := fs.ReadFile(fsys, "index.html")
	if err != nil {
		return nil, errors.New("webui: the dashboard bundle has no index.html (build it with npm run build in web/dashboard)")
	}
	h := &Handler{fsys: fsys, index: index}
	if fi, err := fs.Stat(fsys, "index.html"); err == nil {
		h.mod = fi.ModTime()
	}
	return h, nil
}

// ServeHTTP serves a file of the bundle, or index.html for client routes.
// Callers route reserved paths elsewhere; it answers them 404 regardless.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	SetSecurityHeaders(w.Header())
	if Reserved(r.URL.Path) {
		http.NotFound(w, r)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" || name == "index.html" {
		h.serveIndex(w, r)
		return
	}
	f, err := h.fsys.Open(name)
	if err != nil {
		if strings.HasPrefix(name, "assets/") || path.Ext(name) != "" {
			// A missing asset is a 404, never index.html: a browser must
			// not run HTML as a script of an outdated page.
			http.NotFound(w, r)
			return
		}
		h.serveIndex(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.IsDir() {
		h.serveIndex(w, r)
		return
	}
	if strings.HasPrefix(name, "assets/") {
		w.Header().Set("Cache-Control", cacheImmutable)
	} else {
		w.Header().Set("Cache-Control", cacheRevalidate)
	}
	rs, ok := f.(io.ReadSeeker)
	if !ok {
		b, err := io.ReadAll(f)
		if err != nil {
			http.Error(w, "read error", http.StatusInternalServerError)
			return
		}
		rs = bytes.NewReader(b)
	}
	http.ServeContent(w, r, name, fi.ModTime(), rs)
}

func (h *Handler) serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", cacheRevalidate)
	http.ServeContent(w, r, "index.html", h.mod, bytes.NewReader(h.index))
}

// SetSecurityHeaders sets the headers every dashboard response carries.
func SetSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}
