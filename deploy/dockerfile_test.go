package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// repoRoot is the repository, seen from this package's directory.
const repoRoot = ".."

// dockerfile is the repository's Dockerfile as BuildKit reads it.
type dockerfile struct {
	stages   []instructions.Stage
	metaArgs map[string]string // ARGs before the first FROM, with defaults
}

func parseDockerfile(t testing.TB) *dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: parser warning: %s", w.Short)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	d := &dockerfile{stages: stages, metaArgs: map[string]string{}}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			d.metaArgs[kv.Key] = kv.ValueString()
		}
	}
	return d
}

func (d *dockerfile) final() *instructions.Stage { return &d.stages[len(d.stages)-1] }

func (d *dockerfile) stage(name string) *instructions.Stage {
	for i := range d.stages {
		if strings.EqualFold(d.stages[i].Name, name) {
			return &d.stages[i]
		}
	}
	return nil
}

// commandsOf returns the stage's commands of type T, in order.
func commandsOf[T instructions.Command](s *instructions.Stage) []T {
	var out []T
	for _, c := range s.Commands {
		if v, ok := c.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// env is the stage's ENV after all its ENV instructions.
func stageEnv(s *instructions.Stage) map[string]string {
	env := map[string]string{}
	for _, e := range commandsOf[*instructions.EnvCommand](s) {
		for _, kv := range e.Env {
			env[kv.Key] = kv.Value
		}
	}
	return env
}

// goBuild is the build stage's `go build` RUN: its variable assignments and
// its argument words after the expansion the Dockerfile's shell would do.
type goBuild struct {
	run  *instructions.RunCommand
	env  []string // NAME=value words before `go`
	args []string // after `go`: build, flags, packages
}

// findGoBuild expands the RUN that calls `go build` with the given build
// arguments (ARG values as `docker build --build-arg` would set them).
func (d *dockerfile) findGoBuild(t testing.TB, buildArgs map[string]string) (*instructions.Stage, goBuild) {
	t.Helper()
	for i := range d.stages {
		s := &d.stages[i]
		for _, run := range commandsOf[*instructions.RunCommand](s) {
			line := strings.Join(run.CmdLine, " ")
			if !strings.Contains(line, "go build") {
				continue
			}
			if !run.PrependShell {
				t.Fatalf("Dockerfile: the go build RUN must be in shell form (it sets variables): %q", line)
			}
			vars := []string{}
			for k, v := range d.metaArgs {
				vars = append(vars, k+"="+v)
			}
			for _, a := range commandsOf[*instructions.ArgCommand](s) {
				for _, kv := range a.Args {
					v, ok := buildArgs[kv.Key]
					if !ok {
						v = kv.ValueString()
					}
					vars = append(vars, kv.Key+"="+v)
				}
			}
			words, err := shell.NewLex('\\').ProcessWords(line, shell.EnvsFromSlice(vars))
			if err != nil {
				t.Fatalf("Dockerfile: expanding %q: %v", line, err)
			}
			var gb goBuild
			gb.run = run
			for len(words) > 0 && regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(words[0]) {
				gb.env = append(gb.env, words[0])
				words = words[1:]
			}
			if len(words) < 2 || words[0] != "go" || words[1] != "build" {
				t.Fatalf("Dockerfile: the build RUN is %q; expected VAR=value… go build …", line)
			}
			gb.args = words[1:]
			return s, gb
		}
	}
	t.Fatal("Dockerfile: no RUN calls go build")
	return nil, goBuild{}
}

// flagValue returns the value of a go build flag given as "-f v" or "-f=v".
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// makefileBuild reads `make build`'s LDFLAGS and its recipe's arguments.
func makefileBuild(t testing.TB) (ldflags string, recipe []string) {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	inBuild := false
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "LDFLAGS :="); ok {
			ldflags = strings.TrimSpace(v)
		}
		switch {
		case strings.HasPrefix(line, "build:"):
			inBuild = true
		case inBuild && strings.HasPrefix(line, "\t"):
			recipe = strings.Fields(line)
			inBuild = false
		}
	}
	if ldflags == "" || len(recipe) == 0 {
		t.Fatal("Makefile: no LDFLAGS or no build recipe")
	}
	return ldflags, recipe
}

// The Dockerfile follows the rules of the image: a Go build stage on go.mod's
// release with module and build caches, the same build as `make build`,
// static (no cgo); a final stage without a shell that runs as a numeric
// non-root user, keeps its state on a volume, and has an exec-form
// HEALTHCHECK naming a binary the image contains.
func TestDockerfileRules(t *testing.T) {
	d := parseDockerfile(t)
	if len(d.stages) < 2 {
		t.Fatalf("Dockerfile: %d stage(s); want a build stage and a final stage", len(d.stages))
	}

	// The Go release is go.mod's.
	goMod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(goMod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	if got := d.metaArgs["GO_VERSION"]; got != string(m[1]) {
		t.Errorf("Dockerfile: ARG GO_VERSION=%q, go.mod says go %s", got, m[1])
	}

	buildStage, gb := d.findGoBuild(t, map[string]string{"VERSION": "v0.0.0-test", "TARGETOS": "linux", "TARGETARCH": "amd64"})
	if !strings.HasPrefix(buildStage.BaseName, "golang:${GO_VERSION}") {
		t.Errorf("Dockerfile: build stage FROM %s; want golang:${GO_VERSION}…", buildStage.BaseName)
	}
	if !slicesContains(gb.env, "CGO_ENABLED=0") {
		t.Errorf("Dockerfile: go build without CGO_ENABLED=0 (env %v): the final image has no libc", gb.env)
	}
	if err := gb.run.Expand(func(s string) (string, error) { return s, nil }); err != nil {
		t.Fatal(err)
	}
	caches := map[string]bool{}
	for _, mnt := range instructions.GetMounts(gb.run) {
		if mnt.Type == instructions.MountTypeCache {
			caches[mnt.Target] = true
		}
	}
	for _, want := range []string{"/go/pkg/mod", "/root/.cache/go-build"} {
		if !caches[want] {
			t.Errorf("Dockerfile: the go build RUN has no --mount=type=cache,target=%s (has %v)", want, caches)
		}
	}

	// The same build as `make build`: same ldflags (with the Makefile's
	// $(VERSION) as the image's VERSION build argument), same packages,
	// output to a directory.
	mkLDFlags, recipe := makefileBuild(t)
	wantLD := strings.ReplaceAll(mkLDFlags, "$(VERSION)", "v0.0.0-test")
	if got, _ := flagValue(gb.args, "-ldflags"); got != wantLD {
		t.Errorf("Dockerfile: go build -ldflags %q; the Makefile builds with %q", got, wantLD)
	}
	mkPkgs := recipe[len(recipe)-1]
	if got := gb.args[len(gb.args)-1]; got != mkPkgs {
		t.Errorf("Dockerfile: go build of %q; the Makefile builds %q", got, mkPkgs)
	}
	if out, ok := flagValue(gb.args, "-o"); !ok || !strings.HasSuffix(out, "/") {
		t.Errorf("Dockerfile: go build -o %q; want a directory (ending in /) for every command", out)
	}

	final := d.final()
	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static") {
		t.Errorf("Dockerfile: final stage FROM %s; want distroless/static (no shell, no libc needed)", final.BaseName)
	}
	if runs := commandsOf[*instructions.RunCommand](final); len(runs) > 0 {
		t.Errorf("Dockerfile: the final stage has RUN %q, but its base has no shell", runs[0].CmdLine)
	}

	// USER numeric and not root: Kubernetes' runAsNonRoot can only check a
	// numeric user.
	users := commandsOf[*instructions.UserCommand](final)
	if len(users) == 0 {
		t.Fatal("Dockerfile: the final stage has no USER")
	}
	uid, gid := parseUser(t, users[len(users)-1].User)
	if uid == 0 || gid == 0 {
		t.Errorf("Dockerfile: USER %s runs as root", users[len(users)-1].User)
	}

	// What the final stage contains: COPY destinations, by file.
	contains := map[string]bool{}
	for _, c := range commandsOf[*instructions.CopyCommand](final) {
		for _, src := range c.SourcePaths {
			dst := c.DestPath
			if strings.HasSuffix(dst, "/") {
				dst = path.Join(dst, path.Base(src))
			}
			contains[path.Clean(dst)] = true
		}
		if c.From == "" {
			continue
		}
		if d.stage(c.From) == nil {
			t.Errorf("Dockerfile: COPY --from=%s names no stage", c.From)
		}
		if c.Chown != "" {
			t.Errorf("Dockerfile: COPY --from=%s --chown: ownership comes from the build stage", c.From)
		}
	}
	for _, bin := range []string{"/usr/local/bin/hypervisord", "/usr/local/bin/hyperctl"} {
		if !contains[bin] {
			t.Errorf("Dockerfile: the final stage does not COPY %s", bin)
		}
	}

	hcs := commandsOf[*instructions.HealthCheckCommand](final)
	if len(hcs) != 1 {
		t.Fatalf("Dockerfile: %d HEALTHCHECK instructions in the final stage; want 1", len(hcs))
	}
	hc := hcs[0].Health.Test
	if len(hc) < 2 || hc[0] != "CMD" {
		t.Fatalf("Dockerfile: HEALTHCHECK %q: it must be exec form, CMD [\"…\"]: the image has no shell", hc)
	}
	if !contains[hc[1]] {
		t.Errorf("Dockerfile: HEALTHCHECK runs %s, which the final stage does not COPY", hc[1])
	}
	eps := commandsOf[*instructions.EntrypointCommand](final)
	if len(eps) != 1 || eps[0].PrependShell || len(eps[0].CmdLine) == 0 || !contains[eps[0].CmdLine[0]] {
		t.Errorf("Dockerfile: want one exec-form ENTRYPOINT naming a binary the image contains, got %+v", eps)
	}

	env := stageEnv(final)
	if cfg := env["HYPERSDK_CONFIG"]; !contains[cfg] {
		t.Errorf("Dockerfile: HYPERSDK_CONFIG=%q is not a file the final stage copies", cfg)
	}
	if env["TMPDIR"] == "" {
		t.Error("Dockerfile: no TMPDIR: say where temporary files go on a read-only root")
	}
	dataDir := env["HYPERSDK_DATA_DIR"]
	var volumes []string
	for _, v := range commandsOf[*instructions.VolumeCommand](final) {
		volumes = append(volumes, v.Volumes...)
	}
	if dataDir == "" || !slicesContains(volumes, dataDir) {
		t.Errorf("Dockerfile: HYPERSDK_DATA_DIR=%q must be a VOLUME (volumes %v)", dataDir, volumes)
	}

	labels := map[string]string{}
	for _, l := range commandsOf[*instructions.LabelCommand](final) {
		for _, kv := range l.Labels {
			labels[kv.Key] = kv.Value
		}
	}
	for _, k := range []string{"title", "description", "source", "version"} {
		if labels["org.opencontainers.image."+k] == "" {
			t.Errorf("Dockerfile: no LABEL org.opencontainers.image.%s", k)
		}
	}

	// Every source COPY takes from the build context exists and is not
	// excluded by .dockerignore.
	ignore := dockerignore(t)
	for i := range d.stages {
		for _, c := range commandsOf[*instructions.CopyCommand](&d.stages[i]) {
			if c.From != "" {
				continue
			}
			for _, src := range c.SourcePaths {
				if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
					t.Errorf("Dockerfile: COPY %s: %v", src, err)
				}
				if src != "." && excluded(t, ignore, src) {
					t.Errorf("Dockerfile: COPY %s, but .dockerignore excludes it", src)
				}
			}
		}
	}
}

func parseUser(t testing.TB, user string) (uid, gid int) {
	t.Helper()
	u, g, ok := strings.Cut(user, ":")
	var err1, err2 error
	uid, err1 = strconv.Atoi(u)
	gid, err2 = strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("Dockerfile: USER %q: want numeric uid:gid", user)
	}
	return uid, gid
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func dockerignore(t testing.TB) *patternmatcher.PatternMatcher {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	return pm
}

func excluded(t testing.TB, pm *patternmatcher.PatternMatcher, rel string) bool {
	t.Helper()
	ex, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// .dockerignore keeps every file the image's build reads: the Go and
// embedded files of every package of this module that ./cmd/... links,
// and go.mod and go.sum. (It may exclude anything else.)
func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	pm := dockerignore(t)
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .EmbedFiles}} {{.}}{{end}}{{range .SFiles}} {{.}}{{end}}{{end}}{{end}}`,
		"./cmd/...")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"go.mod", "go.sum"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dir, err := filepath.Rel(root, f[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range f[1:] {
			files = append(files, filepath.Join(dir, name))
		}
	}
	if len(files) < 100 {
		t.Fatalf("go list named only %d files; expected the whole daemon", len(files))
	}
	for _, f := range files {
		if excluded(t, pm, f) {
			t.Errorf(".dockerignore excludes %s, which go build ./cmd/... reads", f)
		}
	}
	// And it keeps out what must never reach a build context.
	for _, f := range []string{".git/config", "bin/hypervisord", "web/dashboard/node_modules/x/index.js"} {
		if !excluded(t, pm, f) {
			t.Errorf(".dockerignore lets %s into the build context", f)
		}
	}
}
