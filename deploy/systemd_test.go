package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const unitFile = "packaging/hypervisord.service"

// unit is a systemd unit file: section -> key -> values in order.
type unit map[string]map[string][]string

func parseUnit(t testing.TB, file string) unit {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: cannot read %q", file, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unit) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// systemdRoot lays out a root directory for systemd-analyze --root: the
// system's own unit directory (targets the unit depends on), the unit
// under /etc/systemd/system, and the binary at its ExecStart path.
func systemdRoot(t *testing.T, u unit, binary string) (root, unitPath string) {
	t.Helper()
	root = t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copying the system's units: %v\n%s", err, out)
	}
	unitPath = "/etc/systemd/system/hypervisord.service"
	data, err := os.ReadFile(filepath.Join(repoRoot, unitFile))
	if err != nil {
		t.Fatal(err)
	}
	for p, d := range map[string][]byte{unitPath: data} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), d, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exe := strings.Fields(u.get("Service", "ExecStart"))[0]
	bin, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, filepath.Dir(exe)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, exe), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return root, unitPath
}

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not found: install Debian's systemd package (make test-deps does)")
	}
	return p
}

// The systemd unit passes `systemd-analyze verify` without a single warning
// (an unknown or misspelt key is only a warning there), with the real
// hypervisord binary at its ExecStart path; `systemd-analyze security`
// rates its sandbox at most 2.0 ("OK"); and it agrees with the daemon and
// the README: the binary and configuration paths the README installs, the
// data directory as systemd's StateDirectory, no reload the daemon does
// not support, time to stop that covers the daemon's shutdown.
func TestSystemdUnit(t *testing.T) {
	analyze := systemdAnalyze(t)
	u := parseUnit(t, filepath.Join(repoRoot, unitFile))
	root, unitPath := systemdRoot(t, u, filepath.Join(buildLikeImage(t), "hypervisord"))

	out, err := exec.Command(analyze, "verify", "--root="+root, unitPath).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=true", "--no-pager", "--threshold=20", "--root="+root, unitPath).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for hypervisord\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no exposure level:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.0 {
		t.Errorf("systemd-analyze security: exposure %s; want at most 2.0\n%s", m[1], out)
	}

	argv := strings.Fields(u.get("Service", "ExecStart"))
	flags := map[string]string{}
	for i := 1; i+1 < len(argv); i += 2 {
		flags[argv[i]] = argv[i+1]
	}
	if argv[0] != "/usr/local/bin/hypervisord" {
		t.Errorf("ExecStart runs %s; the README installs /usr/local/bin/hypervisord", argv[0])
	}
	if want := "/var/lib/" + u.get("Service", "StateDirectory"); flags["--data-dir"] != want {
		t.Errorf("ExecStart --data-dir %q; StateDirectory makes %s", flags["--data-dir"], want)
	}
	if want := "/etc/" + u.get("Service", "ConfigurationDirectory") + "/"; !strings.HasPrefix(flags["--config"], want) {
		t.Errorf("ExecStart --config %q is not in the ConfigurationDirectory %s", flags["--config"], want)
	}
	if u.get("Service", "ExecReload") != "" {
		t.Error("ExecReload: hypervisord has no reload (a SIGTERM \"reload\" stops the service for good)")
	}
	if u.get("Service", "DynamicUser") != "yes" && u.get("Service", "User") == "" {
		t.Error("the unit runs hypervisord as root")
	}
	if stop, err := strconv.Atoi(u.get("Service", "TimeoutStopSec")); err != nil || stop < 60 {
		t.Errorf("TimeoutStopSec=%s; the daemon's shutdown takes up to a minute", u.get("Service", "TimeoutStopSec"))
	}

	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"install -m 0755 bin/hypervisord bin/hyperctl /usr/local/bin/",
		"install -m 0644 " + unitFile + " /etc/systemd/system/",
		flags["--config"],
	} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README: the Deployment section does not say %q", want)
		}
	}
}
