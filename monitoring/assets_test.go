package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// requireTool returns the path of a program of Debian's prometheus
// package, failing the test with how to install it when it is missing.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install Debian's prometheus package (make test-deps, or sudo apt-get install prometheus)", name)
	}
	return path
}

// dashboardFile is what the tests read of a Grafana dashboard.
type dashboardFile struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name, Type string
			Query      any
		} `json:"list"`
	} `json:"templating"`
	Panels []dashPanel `json:"panels"`
}

type dashPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type, UID string
	} `json:"datasource"`
	GridPos *struct{ X, Y, W, H int } `json:"gridPos"`
	Targets []struct {
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
		Datasource *struct {
			Type, UID string
		} `json:"datasource"`
	} `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Unit       string `json:"unit"`
			Thresholds *struct {
				Steps []struct {
					Color string   `json:"color"`
					Value *float64 `json:"value"`
				} `json:"steps"`
			} `json:"thresholds"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

func loadDashboards(t *testing.T) map[string]dashboardFile {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("grafana", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in grafana/dashboards (%v)", err)
	}
	out := map[string]dashboardFile{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboardFile
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = d
	}
	return out
}

// grafanaVars are replaced in panel queries before parsing: Grafana
// substitutes them before the query reaches Prometheus.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h",
	"$provider", ".*",
)

// panelQueries returns every panel query of every dashboard, as
// "file: panel: expr" keys mapped to the query with Grafana's variables
// substituted.
func panelQueries(t *testing.T) map[string]string {
	out := map[string]string{}
	for f, d := range loadDashboards(t) {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				out[fmt.Sprintf("%s: panel %q (%s)", filepath.Base(f), p.Title, tg.RefID)] = grafanaVars.Replace(tg.Expr)
			}
		}
	}
	return out
}

// alertRule is a rule of alerts.yml.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadAlerts(t *testing.T) []alertRule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("alerts.yml has no rules")
	}
	return out
}

// alertQueries returns every alert expression, and the queries of its
// annotation templates ({{ query "…" }}), by alert name.
func alertQueries(t *testing.T) map[string]string {
	out := map[string]string{}
	templateQuery := regexp.MustCompile(`query "((?:[^"\\]|\\.)*)"`)
	for _, r := range loadAlerts(t) {
		out["alert "+r.Alert] = r.Expr
		for k, v := range r.Annotations {
			for i, m := range templateQuery.FindAllStringSubmatch(v, -1) {
				out[fmt.Sprintf("alert %s annotation %s query %d", r.Alert, k, i)] = strings.ReplaceAll(m[1], `\"`, `"`)
			}
		}
	}
	return out
}

// selector is a metric a query reads: its name, or a regular expression
// on __name__.
type selector struct {
	name    string
	pattern *regexp.Regexp
}

// selectors parses expr with the Prometheus parser and returns the
// metrics its vector selectors read.
func selectors(expr string) ([]selector, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var out []selector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if vs.Name != "" {
			out = append(out, selector{name: vs.Name})
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == "__name__" {
				out = append(out, selector{pattern: regexp.MustCompile("^(?:" + m.Value + ")$")})
			}
		}
		return nil
	})
	return out, nil
}

func TestDashboardsStructure(t *testing.T) {
	dashboards := loadDashboards(t)
	for _, want := range []string{"overview", "jobs", "system", "providers", "platform-objects", "schedules-webhooks"} {
		if _, ok := dashboards[filepath.Join("grafana", "dashboards", "hypersdk-"+want+".json")]; !ok {
			t.Errorf("dashboard hypersdk-%s.json missing", want)
		}
	}
	uids := map[string]string{}
	for f, d := range dashboards {
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid %q, title %q: both are required", f, d.UID, d.Title)
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s: uid %q also used by %s", f, d.UID, other)
		}
		uids[d.UID] = f
		vars := map[string]string{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v.Type
		}
		if vars["datasource"] != "datasource" {
			t.Errorf("%s: no ${datasource} variable of type datasource (have %v)", f, vars)
		}
		if len(d.Panels) == 0 {
			t.Errorf("%s: no panels", f)
		}
		ids := map[int]bool{}
		for _, p := range d.Panels {
			where := fmt.Sprintf("%s: panel %d %q", f, p.ID, p.Title)
			if p.ID <= 0 || ids[p.ID] {
				t.Errorf("%s: id missing or duplicate", where)
			}
			ids[p.ID] = true
			if p.Title == "" || p.Type == "" || p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("%s: needs a title, a type and a grid position within 24 columns", where)
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: datasource must be ${datasource}, is %+v", where, p.Datasource)
			}
			if p.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s: no unit", where)
			}
			if th := p.FieldConfig.Defaults.Thresholds; th == nil || len(th.Steps) == 0 || th.Steps[0].Value != nil {
				t.Errorf("%s: thresholds must start with a base step (value null)", where)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no query", where)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s (%s): empty query", where, tg.RefID)
				}
				if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
					t.Errorf("%s (%s): query datasource must be ${datasource}", where, tg.RefID)
				}
				for _, v := range regexp.MustCompile(`\$\{?(\w+)`).FindAllStringSubmatch(tg.Expr, -1) {
					if _, ok := vars[v[1]]; !ok && !strings.HasPrefix(v[1], "__") {
						t.Errorf("%s (%s): variable $%s is not defined", where, tg.RefID, v[1])
					}
				}
			}
		}
	}
	// Every query parses as PromQL.
	for where, expr := range panelQueries(t) {
		if _, err := selectors(expr); err != nil {
			t.Errorf("%s: %v\n%s", where, err, expr)
		}
	}
}

// The committed dashboards are what gen_dashboards.go writes.
func TestDashboardsGenerated(t *testing.T) {
	goTool := goCommand(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "grafana", "dashboards"), 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := filepath.Abs("gen_dashboards.go")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goTool, "run", src)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run gen_dashboards.go: %v\n%s", err, out)
	}
	gen, _ := filepath.Glob(filepath.Join(dir, "grafana", "dashboards", "*.json"))
	have, _ := filepath.Glob(filepath.Join("grafana", "dashboards", "*.json"))
	if len(gen) != len(have) {
		t.Fatalf("gen_dashboards.go writes %d dashboards, %d are committed: run go generate ./monitoring", len(gen), len(have))
	}
	for _, g := range gen {
		want, _ := os.ReadFile(g)
		got, err := os.ReadFile(filepath.Join("grafana", "dashboards", filepath.Base(g)))
		if err != nil || string(got) != string(want) {
			t.Errorf("grafana/dashboards/%s differs from what gen_dashboards.go writes: run go generate ./monitoring", filepath.Base(g))
		}
	}
}

// goCommand is the go command of the toolchain running the tests.
func goCommand(t *testing.T) string {
	t.Helper()
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go command is not in PATH")
	}
	return p
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestAlertRules(t *testing.T) {
	promtool := requireTool(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
		{"check", "config", "prometheus.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	runbook, err := os.ReadFile(filepath.Join("..", "docs", "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (\S+)\s*$`).FindAllStringSubmatch(string(runbook), -1) {
		anchors[strings.ToLower(m[1])] = true
	}
	testFile, err := os.ReadFile(filepath.Join("prometheus", "alerts_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(testFile, &tests); err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	const runbookURL = "https://github.com/hypersdk/hypersdk/blob/main/docs/runbook.md#"
	names := map[string]bool{}
	for _, r := range loadAlerts(t) {
		if names[r.Alert] {
			t.Errorf("alert %s is defined twice", r.Alert)
		}
		names[r.Alert] = true
		for _, k := range []string{"summary", "description", "runbook_url"} {
			if r.Annotations[k] == "" {
				t.Errorf("alert %s: no %s annotation", r.Alert, k)
			}
		}
		if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
			t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, sev)
		}
		anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookURL)
		if !ok || !anchors[anchor] || anchor != strings.ToLower(r.Alert) {
			t.Errorf("alert %s: runbook_url %q must be %s%s, a section of docs/runbook.md", r.Alert, r.Annotations["runbook_url"], runbookURL, strings.ToLower(r.Alert))
		}
		if !fires[r.Alert] || !silent[r.Alert] {
			t.Errorf("alert %s: alerts_test.yml must test that it fires (%v) and that it stays silent (%v)", r.Alert, fires[r.Alert], silent[r.Alert])
		}
		if _, err := selectors(r.Expr); err != nil {
			t.Errorf("alert %s: %v", r.Alert, err)
		}
	}
	var extra []string
	for a := range anchors {
		if !slices.ContainsFunc(loadAlerts(t), func(r alertRule) bool { return strings.ToLower(r.Alert) == a }) {
			extra = append(extra, a)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("docs/runbook.md has sections for alerts that do not exist: %v", extra)
	}
}

// Docker is not available here: the compose file is checked for what
// would break `docker compose up` — services, the files it mounts, the
// ports and the scrape target.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Build       string   `yaml:"build"`
			Image       string   `yaml:"image"`
			Command     []string `yaml:"command"`
			Entrypoint  []string `yaml:"entrypoint"`
			Ports       []string `yaml:"ports"`
			Volumes     []string `yaml:"volumes"`
			DependsOn   []string `yaml:"depends_on"`
			Environment map[string]string
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, name := range []string{"hypervisord", "prometheus", "grafana"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}
	d := c.Services["hypervisord"]
	if d.Build == "" {
		t.Error("hypervisord must be built from the repository (build: ..)")
	} else if _, err := os.Stat(filepath.Join(d.Build, "go.mod")); err != nil {
		t.Errorf("hypervisord build context %q is not the repository root: %v", d.Build, err)
	}
	if !slices.Contains(d.Command, "--demo") || !slices.Contains(d.Command, "0.0.0.0:8080") {
		t.Errorf("hypervisord command %v: want --demo and --listen 0.0.0.0:8080 (reachable by Prometheus)", d.Command)
	}
	for name, s := range c.Services {
		if s.Build == "" && s.Image == "" {
			t.Errorf("service %s: neither build nor image", name)
		}
		for _, dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("service %s depends on unknown service %s", name, dep)
			}
		}
		for _, p := range s.Ports {
			if !regexp.MustCompile(`^(127\.0\.0\.1:)?\d+:\d+$`).MatchString(p) {
				t.Errorf("service %s: port %q is not host:container", name, p)
			}
		}
		for _, v := range s.Volumes {
			src, _, ok := strings.Cut(v, ":")
			if !ok {
				t.Errorf("service %s: volume %q has no target", name, v)
				continue
			}
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("service %s mounts %s, which does not exist: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("service %s: named volume %s is not declared", name, src)
			}
		}
	}
	// Prometheus scrapes the daemon by its service name and port.
	pb, err := os.ReadFile(filepath.Join("prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pb), `"hypervisord:8080"`) || !strings.Contains(string(pb), "job_name: hypersdk") {
		t.Error(`prometheus.yml must scrape job "hypersdk" at hypervisord:8080`)
	}
	// Grafana's provisioning points at the mounted dashboards and at the Prometheus service.
	for _, f := range []string{"grafana/provisioning/datasources/prometheus.yml", "grafana/provisioning/dashboards/hypersdk.yml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := yaml.Unmarshal(b, &v); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if ds, _ := os.ReadFile("grafana/provisioning/datasources/prometheus.yml"); !strings.Contains(string(ds), "http://prometheus:9090") {
		t.Error("the Grafana data source must point at http://prometheus:9090")
	}
	if !slices.Contains(c.Services["grafana"].Volumes, "./grafana/dashboards:/var/lib/grafana/dashboards:ro") {
		t.Error("grafana must mount ./grafana/dashboards where the dashboard provider reads them")
	}
}
