package deploy

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if imageBuild.dir != "" {
		_ = os.RemoveAll(imageBuild.dir)
	}
	os.Exit(code)
}

// imageBuild holds the commands built as the Dockerfile's build stage
// builds them, once per test process.
var imageBuild struct {
	once sync.Once
	dir  string
	err  error
}

// buildLikeImage runs the Dockerfile's `go build` RUN, with its variables
// and flags, on the repository (the build stage's COPY . .) for this
// machine's platform, and returns the directory it wrote, which stands for
// the build stage's output directory.
func buildLikeImage(t testing.TB) string {
	t.Helper()
	imageBuild.once.Do(func() {
		d := parseDockerfile(t)
		_, gb := d.findGoBuild(t, map[string]string{"VERSION": "v0.0.0-imagetest", "TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH})
		dir, err := os.MkdirTemp("", "hypersdk-image-")
		if err != nil {
			imageBuild.err = err
			return
		}
		imageBuild.dir = dir
		args := append([]string(nil), gb.args...)
		for i := range args {
			if args[i] == "-o" && i+1 < len(args) {
				args[i+1] = dir + "/"
			}
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), gb.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			imageBuild.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if imageBuild.err != nil {
		t.Fatal(imageBuild.err)
	}
	return imageBuild.dir
}

// fsRoot is a directory laid out as a container's root file system. Its
// processes run chrooted into it under the container's user, so that
// everything but the directories a container would mount writable (and
// which are owned by that user here) is read-only to them, as on a
// read-only root file system.
type fsRoot struct {
	t        testing.TB
	dir      string
	uid, gid int
	groups   []uint32 // supplementary groups (a pod's fsGroup)
	env      []string // KEY=value, as the container gets it
	writable []string // mount points that may change
}

func newFSRoot(t testing.TB) *fsRoot {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test lays out a container root file system and starts hypervisord chrooted into it as the image's user: run it as root (CI does)")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &fsRoot{t: t, dir: dir}
}

func (r *fsRoot) path(p string) string { return filepath.Join(r.dir, filepath.FromSlash(p)) }

// mkdir creates p and missing parents (root-owned, 0755) and gives p the
// owner and mode.
func (r *fsRoot) mkdir(p string, mode fs.FileMode, uid, gid int) {
	r.t.Helper()
	if err := os.MkdirAll(r.path(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	r.own(p, mode, uid, gid)
}

func (r *fsRoot) writeFile(p string, data []byte, mode fs.FileMode, uid, gid int) {
	r.t.Helper()
	r.mkdir(path.Dir(p), 0o755, 0, 0)
	if err := os.WriteFile(r.path(p), data, mode); err != nil {
		r.t.Fatal(err)
	}
	r.own(p, mode, uid, gid)
}

func (r *fsRoot) own(p string, mode fs.FileMode, uid, gid int) {
	r.t.Helper()
	if err := os.Chown(r.path(p), uid, gid); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Chmod(r.path(p), mode); err != nil { // after chown, which clears setuid/setgid bits
		r.t.Fatal(err)
	}
}

// mountWritable makes p a writable mount point of the container's user.
func (r *fsRoot) mountWritable(p string, mode fs.FileMode) {
	r.mkdir(p, mode, r.uid, r.gid)
	r.writable = append(r.writable, p)
}

// command runs argv inside the root as the container's user, with the
// container's environment plus extra.
func (r *fsRoot) command(argv []string, extra ...string) *exec.Cmd {
	cmd := &exec.Cmd{Path: argv[0], Args: argv, Dir: "/", Env: append(append([]string(nil), r.env...), extra...)}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     r.dir,
		Credential: &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid), Groups: append([]uint32{uint32(r.gid)}, r.groups...)},
		Setpgid:    true,
	}
	return cmd
}

// snapshot records every path outside the writable mounts with its mode,
// owner, size and modification time.
func (r *fsRoot) snapshot() map[string]string {
	r.t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(r.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(filepath.ToSlash(strings.TrimPrefix(p, r.dir)), "/")
		if slicesContains(r.writable, rel) {
			return fs.SkipDir // a mount point: a volume, not the image
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		out[rel] = fmt.Sprintf("%v %d:%d %d %d", fi.Mode(), st.Uid, st.Gid, fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

// unchangedSince reports every path outside the writable mounts that was
// created, changed or removed since before.
func (r *fsRoot) unchangedSince(before map[string]string) {
	r.t.Helper()
	after := r.snapshot()
	var diffs []string
	for p, v := range after {
		if before[p] != v {
			diffs = append(diffs, fmt.Sprintf("%s: %q -> %q", p, before[p], v))
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			diffs = append(diffs, p+": removed")
		}
	}
	sort.Strings(diffs)
	for _, d := range diffs {
		r.t.Errorf("written outside the writable mounts %v: %s", r.writable, d)
	}
}

// imageRoot lays out the final stage of the Dockerfile: the distroless
// base's relevant parts (/tmp, the nonroot home), then each COPY of the
// final stage, ENV and USER. The data volume is writable as a Docker volume
// would be; /tmp as the README's --tmpfs /tmp.
func imageRoot(t testing.TB) *fsRoot {
	t.Helper()
	d := parseDockerfile(t)
	bins := buildLikeImage(t)
	r := newFSRoot(t)
	final := d.final()
	users := commandsOf[*instructions.UserCommand](final)
	if len(users) == 0 {
		t.Fatal("Dockerfile: no USER in the final stage")
	}
	r.uid, r.gid = parseUser(t, users[len(users)-1].User)

	// distroless/static: /etc/passwd names nonroot, whose home exists.
	r.writeFile("/etc/passwd", []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"), 0o644, 0, 0)
	r.mkdir("/home/nonroot", 0o700, 65532, 65532)

	build := d.stage("build")
	if build == nil {
		t.Fatal("Dockerfile: no stage named build")
	}
	for _, c := range commandsOf[*instructions.CopyCommand](final) {
		for _, src := range c.SourcePaths {
			switch {
			case c.From == "" && c.DestPath != "" && !strings.HasSuffix(c.DestPath, "/"):
				data, err := os.ReadFile(filepath.Join(repoRoot, src))
				if err != nil {
					t.Fatal(err)
				}
				r.writeFile(c.DestPath, data, 0o644, 0, 0)
			case c.From == "build" && strings.HasPrefix(src, "/out/"):
				data, err := os.ReadFile(filepath.Join(bins, path.Base(src)))
				if err != nil {
					t.Fatal(err)
				}
				r.writeFile(path.Join(c.DestPath, path.Base(src)), data, 0o755, 0, 0)
			case c.From == "build" && src == "/rootfs/var/lib/":
				// The build stage's RUN creates the data directory for the
				// runtime user with mode 0700; COPY --from keeps both.
				want := fmt.Sprintf("chown %d:%d /rootfs/var/lib/hypersdk", r.uid, r.gid)
				found := false
				for _, run := range commandsOf[*instructions.RunCommand](build) {
					line := strings.Join(run.CmdLine, " ")
					found = found || (strings.Contains(line, want) && strings.Contains(line, "chmod 0700 /rootfs/var/lib/hypersdk"))
				}
				if !found {
					t.Fatalf("Dockerfile: the build stage does not %s and chmod 0700 it", want)
				}
				r.mkdir(path.Join(c.DestPath, "hypersdk"), 0o700, r.uid, r.gid)
			default:
				t.Fatalf("Dockerfile: COPY --from=%q %s %s: this test does not know how to lay it out", c.From, src, c.DestPath)
			}
		}
	}
	env := stageEnv(final)
	for k, v := range env {
		r.env = append(r.env, k+"="+v)
	}
	r.env = append(r.env, "HOME=/home/nonroot", "PATH=/usr/local/bin:/usr/bin:/bin")
	for _, v := range commandsOf[*instructions.VolumeCommand](final) {
		for _, p := range v.Volumes {
			r.writable = append(r.writable, p)
		}
	}
	r.mkdir(env["TMPDIR"], 0o1777, 0, 0) // the tmpfs
	r.writable = append(r.writable, env["TMPDIR"])
	return r
}

// freeListen returns a loopback address with a port free right now: the
// tests override api.listen with it, since a fixed port may be taken on a
// shared machine.
func freeListen(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// process is a daemon started in an fsRoot.
type process struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start runs argv in the root and waits until the daemon has written its
// endpoint file into dataDir (its last start-up step).
func (r *fsRoot) start(dataDir string, argv []string, extraEnv ...string) *process {
	r.t.Helper()
	p := &process{out: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = r.command(argv, extraEnv...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		r.t.Fatalf("start %v in %s: %v", argv, r.dir, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	r.t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if b, err := os.ReadFile(r.path(path.Join(dataDir, apitypes.EndpointFile))); err == nil && len(b) > 0 {
			return p
		}
		select {
		case err := <-p.done:
			r.t.Fatalf("%v exited during start: %v\n%s", argv, err, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%v did not start within 3 minutes:\n%s", argv, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and requires a clean exit.
func (p *process) stop(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.out.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("no exit 2 minutes after SIGTERM\n%s", p.out.String())
	}
}

// run runs argv to completion in the root and returns its exit code and output.
func (r *fsRoot) run(argv []string, extraEnv ...string) (int, string) {
	r.t.Helper()
	cmd := r.command(argv, extraEnv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out.String()
		}
		r.t.Fatalf("%v: %v", argv, err)
	}
	return 0, out.String()
}

// isStatic reports whether the ELF file has no program interpreter, i.e.
// needs no dynamic loader or libc from the image.
func isStatic(t testing.TB, file string) bool {
	t.Helper()
	f, err := elf.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}
