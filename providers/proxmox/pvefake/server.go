package pvefake

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a Server.
type Options struct {
	State *State
	// Tokens are the API tokens accepted: "USER@REALM!TOKENID" to secret.
	Tokens map[string]string
	// Users are the logins accepted for tickets: "USER@REALM" to password.
	Users map[string]string
	// Cluster is the cluster's name ({{cluster}} in notes templates).
	Cluster string
	Log     *slog.Logger
}

// Request is an API call the server answered, for tests: its parameters
// (form or query) without any password.
type Request struct {
	Method, Path string
	Params       url.Values
	// Auth is "token", "ticket" or "" (none or refused).
	Auth   string
	Status int
}

// Server is a fake PVE API over HTTPS (a self-signed certificate: pin
// Thumbprint): the {"data": …} envelope, API-token and ticket
// authentication (the CSRFPreventionToken required on writes), the
// endpoints a backup tool uses, and vzdump tasks writing archives into
// the state's storages.
type Server struct {
	o   Options
	srv *httptest.Server

	mu       sync.Mutex
	tickets  map[string]ticket // ticket → session
	tasks    map[string]*task  // by UPID
	requests []Request
	pid      int
}

type ticket struct{ user, csrf string }

type task struct {
	upid, node, typ, id, user string
	start                     time.Time
	cancel                    context.CancelFunc

	mu         sync.Mutex
	log        []string
	running    bool
	exitstatus string
}

func (t *task) logf(format string, args ...any) {
	t.mu.Lock()
	t.log = append(t.log, fmt.Sprintf(format, args...))
	t.mu.Unlock()
}

func (t *task) end(status string) {
	t.mu.Lock()
	t.running, t.exitstatus = false, status
	t.mu.Unlock()
}

// New returns an unstarted server.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Cluster == "" {
		o.Cluster = "fakecluster"
	}
	s := &Server{o: o, tickets: map[string]ticket{}, tasks: map[string]*task{}, pid: 4000}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	return s
}

// Start starts the HTTPS listener on a loopback port.
func (s *Server) Start() { s.srv.StartTLS() }

// URL is the server's base URL (https://127.0.0.1:PORT).
func (s *Server) URL() string { return s.srv.URL }

// Thumbprint is the SHA-256 fingerprint of the server's certificate.
func (s *Server) Thumbprint() string {
	sum := sha256.Sum256(s.srv.Certificate().Raw)
	return hex.EncodeToString(sum[:])
}

// Close stops the server and every task.
func (s *Server) Close() {
	s.mu.Lock()
	for _, t := range s.tasks {
		t.mu.Lock()
		t.cancel()
		t.mu.Unlock()
	}
	s.mu.Unlock()
	s.srv.Close()
}

// Requests returns the calls answered so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// RunningTasks returns the UPIDs of tasks still running.
func (s *Server) RunningTasks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, t := range s.tasks {
		t.mu.Lock()
		if t.running {
			out = append(out, id)
		}
		t.mu.Unlock()
	}
	slices.Sort(out)
	return out
}

type handlerErr struct {
	status int
	msg    string
	errs   map[string]string
}

func fail(status int, format string, args ...any) *handlerErr {
	return &handlerErr{status: status, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, "/api2/json")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		s.reply(w, r, path, "", nil, fail(http.StatusBadRequest, "bad form"))
		return
	}
	auth, herr := s.authenticate(r, path)
	var data any
	if herr == nil {
		data, herr = s.route(r, path, auth)
	}
	s.reply(w, r, path, auth, data, herr)
}

func (s *Server) reply(w http.ResponseWriter, r *http.Request, path, auth string, data any, herr *handlerErr) {
	params := url.Values{}
	for k, v := range r.Form {
		if k != "password" {
			params[k] = v
		}
	}
	status := http.StatusOK
	body := map[string]any{"data": data}
	if herr != nil {
		status = herr.status
		body = map[string]any{"data": nil}
		if herr.errs != nil {
			body["errors"] = herr.errs
		}
	}
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: path, Params: params, Auth: auth, Status: status})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	if herr != nil {
		// pveproxy puts the reason into the status line.
		w.Header().Set("X-Pve-Reason", herr.msg)
		writeStatus(w, status, herr.msg)
	} else {
		w.WriteHeader(status)
	}
	_ = json.NewEncoder(w).Encode(body)
}

// writeStatus writes a status line with PVE's reason phrase: net/http
// always writes its own text, so the reason travels through a hijacked
// connection when the writer allows it.
func writeStatus(w http.ResponseWriter, status int, reason string) {
	reason = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, reason)
	if hj, ok := w.(http.Hijacker); ok {
		conn, buf, err := hj.Hijack()
		if err == nil {
			body, _ := json.Marshal(map[string]any{"data": nil})
			fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
				status, reason, len(body), body)
			buf.Flush()
			conn.Close()
			return
		}
	}
	w.WriteHeader(status)
}

// authenticate checks the request's token or ticket (and, on writes with
// a ticket, the CSRF token). /access/ticket needs none.
func (s *Server) authenticate(r *http.Request, path string) (string, *handlerErr) {
	if path == "/access/ticket" {
		return "", nil
	}
	if h := r.Header.Get("Authorization"); h != "" {
		v, ok := strings.CutPrefix(h, "PVEAPIToken=")
		id, secret, ok2 := strings.Cut(v, "=")
		if !ok || !ok2 {
			return "", fail(http.StatusUnauthorized, "authentication failure")
		}
		want, known := s.o.Tokens[id]
		if !known || subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1 {
			return "", fail(http.StatusUnauthorized, "authentication failure")
		}
		return "token", nil
	}
	c, err := r.Cookie("PVEAuthCookie")
	if err != nil {
		return "", fail(http.StatusUnauthorized, "No ticket")
	}
	s.mu.Lock()
	t, ok := s.tickets[c.Value]
	s.mu.Unlock()
	if !ok {
		return "", fail(http.StatusUnauthorized, "invalid PVE ticket")
	}
	if r.Method != http.MethodGet && subtle.ConstantTimeCompare([]byte(r.Header.Get("CSRFPreventionToken")), []byte(t.csrf)) != 1 {
		return "", fail(http.StatusUnauthorized, "Permission check failed (invalid csrf token)")
	}
	return "ticket", nil
}

var (
	reQemu      = regexp.MustCompile(`^/nodes/([^/]+)/qemu/(\d+)/(config|status/current|snapshot)$`)
	reLXC       = regexp.MustCompile(`^/nodes/([^/]+)/lxc/(\d+)/config$`)
	reVzdump    = regexp.MustCompile(`^/nodes/([^/]+)/vzdump$`)
	reTask      = regexp.MustCompile(`^/nodes/([^/]+)/tasks/([^/]+)(/status|/log)?$`)
	reContent   = regexp.MustCompile(`^/nodes/([^/]+)/storage/([^/]+)/content$`)
	reContentID = regexp.MustCompile(`^/nodes/([^/]+)/storage/([^/]+)/content/(.+)$`)
)

func (s *Server) route(r *http.Request, path, auth string) (any, *handlerErr) {
	inv, err := s.o.State.Read()
	if err != nil {
		return nil, fail(http.StatusInternalServerError, "%v", err)
	}
	get, post, del := r.Method == http.MethodGet, r.Method == http.MethodPost, r.Method == http.MethodDelete
	switch m := (func(re *regexp.Regexp) []string { return re.FindStringSubmatch(path) }); {
	case path == "/access/ticket" && post:
		return s.login(r)
	case path == "/version" && get:
		return map[string]any{"version": "8.2.4", "release": "8.2", "repoid": "faa83925c9641325"}, nil
	case path == "/cluster/resources" && get:
		return resources(inv, r.Form.Get("type")), nil
	case m(reQemu) != nil:
		g := m(reQemu)
		vm, herr := findVM(inv, g[1], g[2], "qemu")
		if herr != nil {
			return nil, herr
		}
		switch {
		case g[3] == "config" && get:
			cfg := map[string]any{}
			for k, v := range vm.Config {
				cfg[k] = v
			}
			sum := sha256.Sum256([]byte(QemuServerConf(inv, vm)))
			cfg["digest"] = hex.EncodeToString(sum[:20])
			return cfg, nil
		case g[3] == "status/current" && get:
			qmp := vm.Status
			return map[string]any{"vmid": vm.VMID, "name": vm.Name, "status": vm.Status, "qmpstatus": qmp}, nil
		case g[3] == "snapshot" && get:
			out := []map[string]any{}
			parent := ""
			for _, sn := range inv.SnapshotsOf(vm.VMID) {
				e := map[string]any{"name": sn.Name, "snaptime": sn.Time, "description": sn.Description}
				if parent != "" {
					e["parent"] = parent
				}
				parent = sn.Name
				out = append(out, e)
			}
			cur := map[string]any{"name": "current", "description": "You are here!", "running": b2i(vm.Status == "running")}
			if parent != "" {
				cur["parent"] = parent
			}
			return append(out, cur), nil
		}
	case m(reLXC) != nil && get:
		g := m(reLXC)
		vm, herr := findVM(inv, g[1], g[2], "lxc")
		if herr != nil {
			return nil, herr
		}
		return vm.Config, nil
	case m(reVzdump) != nil && post:
		return s.startVzdump(r, inv, m(reVzdump)[1], auth)
	case reTask.MatchString(strings.TrimPrefix(r.URL.EscapedPath(), "/api2/json")):
		// A UPID may hold a "/" (a volume id), escaped in the path.
		g := reTask.FindStringSubmatch(strings.TrimPrefix(r.URL.EscapedPath(), "/api2/json"))
		upid, err := url.PathUnescape(g[2])
		if err != nil {
			return nil, fail(http.StatusBadRequest, "bad upid")
		}
		return s.taskCall(r, upid, g[3])
	case m(reContent) != nil && get:
		g := m(reContent)
		return s.listContent(g[2], r.Form.Get("content"))
	case m(reContentID) != nil && del:
		g := m(reContentID)
		return s.deleteContent(g[1], g[2], g[3])
	}
	return nil, fail(http.StatusNotImplemented, "Method '%s %s' not implemented", r.Method, path)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *Server) login(r *http.Request) (any, *handlerErr) {
	user, pass := r.Form.Get("username"), r.Form.Get("password")
	want, ok := s.o.Users[user]
	if !ok || pass == "" || subtle.ConstantTimeCompare([]byte(want), []byte(pass)) != 1 {
		return nil, fail(http.StatusUnauthorized, "authentication failure")
	}
	t := ticket{user: user, csrf: randomHex(16) + ":" + randomHex(20)}
	id := "PVE:" + user + ":" + strings.ToUpper(randomHex(4)) + "::" + randomHex(32)
	s.mu.Lock()
	s.tickets[id] = t
	s.mu.Unlock()
	return map[string]any{"username": user, "ticket": id, "CSRFPreventionToken": t.csrf, "cap": map[string]any{}}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func resources(inv *Inventory, typ string) []map[string]any {
	out := []map[string]any{}
	if typ != "" && typ != "vm" {
		return out
	}
	for _, vm := range inv.VMs {
		var disk int64
		for _, d := range inv.Drives(&vm) {
			disk += d.Volume.Size
		}
		mem, _ := strconv.ParseInt(vm.Config["memory"], 10, 64)
		cores, _ := strconv.Atoi(vm.Config["cores"])
		sockets, _ := strconv.Atoi(vm.Config["sockets"])
		out = append(out, map[string]any{
			"id": fmt.Sprintf("%s/%d", vm.Type, vm.VMID), "type": vm.Type, "vmid": vm.VMID, "node": vm.Node, "name": vm.Name,
			"status": vm.Status, "template": b2i(vm.Template), "maxcpu": max(1, cores) * max(1, sockets), "maxmem": mem << 20, "maxdisk": disk,
		})
	}
	return out
}

func findVM(inv *Inventory, node, vmidText, typ string) (*VM, *handlerErr) {
	vmid, _ := strconv.Atoi(vmidText)
	vm := inv.VM(vmid)
	if vm == nil || vm.Node != node || vm.Type != typ {
		dir := "qemu-server"
		if typ == "lxc" {
			dir = "lxc"
		}
		return nil, fail(http.StatusInternalServerError, "Configuration file 'nodes/%s/%s/%d.conf' does not exist", node, dir, vmid)
	}
	return vm, nil
}

// newTask registers a running task.
func (s *Server) newTask(node, typ, id, user string) *task {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pid++
	now := time.Now()
	t := &task{node: node, typ: typ, id: id, user: user, start: now, cancel: func() {}, running: true}
	t.upid = fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", node, s.pid, s.pid*7, now.Unix(), typ, id, user)
	s.tasks[t.upid] = t
	return t
}

// startVzdump runs POST /nodes/{node}/vzdump as PVE does: a task that
// writes the archive into the storage's dump directory (a temporary name,
// renamed when complete), then the notes from notes-template, logging as
// vzdump logs.
func (s *Server) startVzdump(r *http.Request, inv *Inventory, node, auth string) (any, *handlerErr) {
	f := r.Form
	errs := map[string]string{}
	for k := range f {
		switch k {
		case "vmid", "mode", "compress", "storage", "remove", "notes-template", "node":
		default:
			errs[k] = "property is not defined in schema and the schema does not allow additional properties"
		}
	}
	if f.Get("stdout") != "" {
		errs["stdout"] = "property is not defined in schema"
	}
	storage := f.Get("storage")
	dir, ok := inv.Storages[storage]
	if storage == "" || !ok {
		errs["storage"] = fmt.Sprintf("storage '%s' does not exist", storage)
	}
	vmid, err := strconv.Atoi(f.Get("vmid"))
	if err != nil {
		errs["vmid"] = "value does not look like a valid VM ID"
	}
	if len(errs) > 0 {
		return nil, &handlerErr{status: http.StatusBadRequest, msg: "Parameter verification failed.", errs: errs}
	}
	vm := inv.VM(vmid)
	if vm == nil || vm.Node != node {
		return nil, fail(http.StatusInternalServerError, "guest %d is not on node %s", vmid, node)
	}
	user := "token"
	if auth == "ticket" {
		user = "ticket"
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := s.newTask(node, "vzdump", strconv.Itoa(vmid), user+"@pve")
	t.mu.Lock()
	t.cancel = cancel
	t.mu.Unlock()
	go s.runVzdumpTask(ctx, t, inv, vm, dir, f)
	return t.upid, nil
}

func (s *Server) runVzdumpTask(ctx context.Context, t *task, inv *Inventory, vm *VM, dir string, f url.Values) {
	t.logf("INFO: starting new backup job: vzdump %d --storage %s --mode %s --compress %s --remove %s", vm.VMID, f.Get("storage"), f.Get("mode"), f.Get("compress"), f.Get("remove"))
	t.logf("INFO: Starting Backup of VM %d (qemu)", vm.VMID)
	ext := ".vma"
	switch f.Get("compress") {
	case "zstd", "1":
		ext += ".zst"
	case "gzip":
		ext += ".gz"
	}
	base := fmt.Sprintf("vzdump-qemu-%d-%s", vm.VMID, t.start.UTC().Format("2006_01_02-15_04_05"))
	target := filepath.Join(dir, "dump", base+ext)
	tmp := filepath.Join(dir, "dump", base+".tmp")
	t.logf("INFO: creating vzdump archive '%s'", target)
	err := func() error {
		out, err := os.Create(tmp)
		if err != nil {
			return err
		}
		defer out.Close()
		if err := WriteArchive(&faultWriter{ctx: ctx, w: out, faults: inv.Faults}, inv, vm, f.Get("compress")); err != nil {
			return err
		}
		return out.Sync()
	}()
	if err == nil {
		err = os.Rename(tmp, target)
	}
	if err != nil {
		os.Remove(tmp)
		t.logf("ERROR: Backup of VM %d failed - %v", vm.VMID, err)
		t.logf("INFO: Failed at %s", time.Now().Format(time.DateTime))
		t.end("job errors")
		return
	}
	fi, _ := os.Stat(target)
	t.logf("INFO: archive file size: %d", fi.Size())
	if tmpl := f.Get("notes-template"); tmpl != "" {
		t.logf("INFO: adding notes to backup")
		notes := strings.NewReplacer("{{vmid}}", strconv.Itoa(vm.VMID), "{{guestname}}", vm.Name, "{{node}}", vm.Node,
			"{{cluster}}", s.o.Cluster, `\n`, "\n", `\\`, `\`).Replace(tmpl)
		_ = os.WriteFile(filepath.Join(dir, "dump", base+ext+".notes"), []byte(notes), 0o600)
	}
	_ = os.WriteFile(filepath.Join(dir, "dump", base+".log"), []byte("vzdump log\n"), 0o600)
	t.logf("INFO: Finished Backup of VM %d", vm.VMID)
	t.logf("INFO: Backup job finished successfully")
	t.end("OK")
}

func (s *Server) taskCall(r *http.Request, upid, what string) (any, *handlerErr) {
	s.mu.Lock()
	t, ok := s.tasks[upid]
	s.mu.Unlock()
	if !ok {
		return nil, fail(http.StatusInternalServerError, "unable to parse worker upid '%s'", upid)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case what == "/status" && r.Method == http.MethodGet:
		st := map[string]any{"upid": t.upid, "node": t.node, "type": t.typ, "id": t.id, "user": t.user,
			"starttime": t.start.Unix(), "status": "running"}
		if !t.running {
			st["status"], st["exitstatus"] = "stopped", t.exitstatus
		}
		return st, nil
	case what == "/log" && r.Method == http.MethodGet:
		start, _ := strconv.Atoi(r.Form.Get("start"))
		limit, _ := strconv.Atoi(r.Form.Get("limit"))
		if limit <= 0 {
			limit = 50
		}
		out := []map[string]any{}
		for i := start; i < len(t.log) && len(out) < limit; i++ {
			out = append(out, map[string]any{"n": i + 1, "t": t.log[i]})
		}
		return out, nil
	case what == "" && r.Method == http.MethodDelete:
		t.cancel()
		return nil, nil
	}
	return nil, fail(http.StatusNotImplemented, "not implemented")
}

func (s *Server) listContent(storage, content string) (any, *handlerErr) {
	backups, err := s.o.State.Backups()
	if err != nil {
		return nil, fail(http.StatusInternalServerError, "%v", err)
	}
	out := []map[string]any{}
	if content != "" && content != "backup" {
		return out, nil
	}
	for _, b := range backups {
		if b.Storage != storage {
			continue
		}
		name := filepath.Base(b.Path)
		e := map[string]any{"volid": b.VolID, "content": "backup", "format": name[strings.Index(name, ".vma")+1:],
			"size": b.Size, "ctime": b.CTime, "vmid": b.VMID, "subtype": "qemu"}
		if b.Notes != "" {
			e["notes"] = b.Notes
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *Server) deleteContent(node, storage, volume string) (any, *handlerErr) {
	backups, err := s.o.State.Backups()
	if err != nil {
		return nil, fail(http.StatusInternalServerError, "%v", err)
	}
	for _, b := range backups {
		if b.Storage == storage && (b.VolID == volume || strings.TrimPrefix(b.VolID, storage+":") == volume) {
			t := s.newTask(node, "imgdel", b.VolID, "root@pam")
			base := strings.TrimSuffix(strings.TrimSuffix(b.Path, filepath.Ext(b.Path)), ".vma")
			for _, p := range []string{b.Path, b.Path + ".notes", base + ".log"} {
				if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
					t.logf("TASK ERROR: %v", err)
					t.end(err.Error())
					return t.upid, nil
				}
			}
			t.logf("Removed volume '%s'", b.VolID)
			t.end("OK")
			return t.upid, nil
		}
	}
	return nil, fail(http.StatusInternalServerError, "volume '%s' does not exist", volume)
}
