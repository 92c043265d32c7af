package monitoring

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// daemon is a hypervisord started by a test.
type daemon struct {
	url, token string
	metricsURL string
}

// freePort returns a loopback port nothing listens on (now).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startDaemon builds hypervisord and runs it with --demo and config in a
// fresh data directory until the test ends.
func startDaemon(t *testing.T, config string) *daemon {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hypervisord")
	build := exec.Command(goCommand(t), "build", "-o", bin, "./cmd/hypervisord")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building hypervisord: %v\n%s", err, out)
	}
	dataDir := t.TempDir()
	cfgPath := filepath.Join(dataDir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--demo", "--config", cfgPath, "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--log-level", "debug")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("hypervisord log (last 8 KiB):\n%s", tail(logs.String(), 8<<10))
		}
	})
	endpointFile := filepath.Join(dataDir, "endpoint")
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if b, err := os.ReadFile(endpointFile); err == nil && len(b) > 0 {
			tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
			if err != nil {
				t.Fatal(err)
			}
			u := strings.TrimSpace(string(b))
			return &daemon{url: u, token: strings.TrimSpace(string(tok)), metricsURL: u + "/metrics"}
		}
		select {
		case err := <-exited:
			t.Fatalf("hypervisord exited before it listened: %v\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("hypervisord did not start within 3 minutes\n%s", logs.String())
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// call sends an API request and decodes the JSON answer into out.
func (d *daemon) call(t *testing.T, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, d.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %s\n%s", method, path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

type job struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Error string `json:"error"`
}

// waitJob polls a job until it is in a final state and returns it.
func (d *daemon) waitJob(t *testing.T, id string) job {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var j job
		d.call(t, "GET", "/api/v1/jobs/"+id, nil, &j)
		switch j.State {
		case "succeeded", "failed", "cancelled":
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after 5 minutes", id, j.State)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// scrape fetches /metrics and returns the body and the metric families.
func scrape(t *testing.T, u string) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %v %s", err, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the scrape: %v", err)
	}
	return body, fams
}

// exported is every series name a scrape offers Prometheus: a
// histogram's or summary's samples are <name>_bucket/_sum/_count.
func exported(fams map[string]*dto.MetricFamily) map[string]bool {
	out := map[string]bool{}
	for name, f := range fams {
		if len(f.Metric) == 0 {
			continue
		}
		out[name] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			out[name+"_sum"], out[name+"_count"] = true, true
		}
	}
	// Made by Prometheus for every scrape target, not by the target.
	for _, n := range []string{"up", "scrape_duration_seconds", "scrape_samples_scraped"} {
		out[n] = true
	}
	return out
}

// missingMetrics lists "where: name" for every metric the queries read
// that the scrape lacks.
func missingMetrics(t *testing.T, queries map[string]string, have map[string]bool) []string {
	var missing []string
	for where, expr := range queries {
		sels, err := selectors(expr)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		for _, s := range sels {
			switch {
			case s.name != "" && !have[s.name]:
				missing = append(missing, where+": "+s.name)
			case s.pattern != nil && !anyMatch(s.pattern, have):
				missing = append(missing, where+": "+s.pattern.String())
			}
		}
	}
	sort.Strings(missing)
	return missing
}

func anyMatch(re *regexp.Regexp, names map[string]bool) bool {
	for n := range names {
		if re.MatchString(n) {
			return true
		}
	}
	return false
}

// prometheus is a real Prometheus started by a test.
type prometheus struct{ url string }

// startPrometheus runs Debian's prometheus scraping target every second
// and evaluating rules (a copy of alerts.yml with every `for` shortened
// to 1s — the expressions are the same) every second.
func startPrometheus(t *testing.T, target string) *prometheus {
	t.Helper()
	bin := requireTool(t, "prometheus")
	dir := t.TempDir()
	rules := shortenedAlerts(t)
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: hypersdk
    static_configs:
      - targets: [%q]
`, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("prometheus log (last 4 KiB):\n%s", tail(logs.String(), 4<<10))
		}
	})
	p := &prometheus{url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if resp, err := http.Get(p.url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("prometheus exited: %v\n%s", err, logs.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 2 minutes\n%s", logs.String())
		}
	}
}

// shortenedAlerts is alerts.yml with every `for:` set to 1s, so that an
// alert fires as soon as its expression holds (the real durations are
// minutes). Expressions, labels and annotations are unchanged.
func shortenedAlerts(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, g := range doc["groups"].([]any) {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			rule := r.(map[string]any)
			if _, ok := rule["for"]; ok {
				rule["for"] = "1s"
			}
		}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// query runs an instant query and returns its vector.
func (p *prometheus) query(t *testing.T, q string) []struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
} {
	t.Helper()
	resp, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: %v %s", q, err, r.Status)
	}
	return r.Data.Result
}

type alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
}

func (p *prometheus) alerts(t *testing.T) []alert {
	t.Helper()
	resp, err := http.Get(p.url + "/api/v1/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Alerts []alert `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r.Data.Alerts
}

// TestRealDaemonAndPrometheus runs hypervisord --demo with a webhook
// endpoint nothing listens on, and real Prometheus scraping it. The daemon
// exports a VM, fails an export of a VM that does not exist and runs a
// schedule; then every metric the dashboards and alerts read must be in
// its scrape, promtool must accept the scrape, and Prometheus must fire
// the job-failure and webhook alerts (with `for` shortened, see
// shortenedAlerts) — and not the daemon-down or provider alerts.
func TestRealDaemonAndPrometheus(t *testing.T) {
	promtool := requireTool(t, "promtool")
	requireTool(t, "prometheus")
	deadPort := freePort(t) // nothing listens: every delivery fails
	d := startDaemon(t, fmt.Sprintf(`
jobs:
  retry_backoff: 100ms
  retry_backoff_max: 200ms
webhooks:
  - url: http://127.0.0.1:%d/hook
    events: ["job.*"]
webhook_delivery:
  allow_private_targets: true
  retry_schedule: [300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms]
`, deadPort))
	u, _ := url.Parse(d.url)
	prom := startPrometheus(t, u.Host)

	// Prometheus must have seen the counters at 0 before the work: a
	// counter's first sample has no increase.
	deadline := time.Now().Add(2 * time.Minute)
	for len(prom.query(t, `hypersdk_jobs_total{provider="demo",state="failed"} == 0`)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Prometheus did not scrape the daemon within 2 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}

	var good, bad job
	d.call(t, "POST", "/api/v1/jobs", map[string]any{"provider": "demo", "vm": "/DC0/vm/production/db/db-01", "format": "ova"}, &good)
	d.call(t, "POST", "/api/v1/jobs", map[string]any{"provider": "demo", "vm": "no-such-vm"}, &bad)
	if j := d.waitJob(t, good.ID); j.State != "succeeded" {
		t.Fatalf("demo export: %s (%s)", j.State, j.Error)
	}
	if j := d.waitJob(t, bad.ID); j.State != "failed" {
		t.Fatalf("export of a missing VM: %s, want failed", j.State)
	}
	d.call(t, "POST", "/api/v1/schedules", map[string]any{
		"name": "nightly-web", "schedule": "0 3 * * *",
		"job": map[string]any{"provider": "demo", "vm": "db-01", "format": "disks", "disk_format": "raw"},
	}, nil)
	var run struct {
		JobID string `json:"job_id"`
	}
	d.call(t, "POST", "/api/v1/schedules/nightly-web/run", nil, &run)
	if run.JobID == "" {
		t.Fatal("the schedule run submitted no job")
	}
	if j := d.waitJob(t, run.JobID); j.State != "succeeded" {
		t.Fatalf("scheduled export: %s (%s)", j.State, j.Error)
	}
	// The webhook endpoint has failed at least one delivery.
	deadline = time.Now().Add(2 * time.Minute)
	for {
		_, fams := scrape(t, d.metricsURL)
		if f := fams["hypersdk_webhook_deliveries_total"]; f != nil && len(f.Metric) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no webhook delivery attempt within 2 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}

	body, fams := scrape(t, d.metricsURL)

	t.Run("promtool check metrics", func(t *testing.T) {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	})

	t.Run("every metric of the dashboards and alerts is exported", func(t *testing.T) {
		have := exported(fams)
		queries := panelQueries(t)
		for k, v := range alertQueries(t) {
			queries[k] = v
		}
		if missing := missingMetrics(t, queries, have); len(missing) > 0 {
			t.Errorf("%d metric(s) read by dashboards or alerts are not in the daemon's scrape:\n  %s", len(missing), strings.Join(missing, "\n  "))
		}
	})

	t.Run("no unbounded labels", func(t *testing.T) {
		for name, f := range fams {
			for _, m := range f.Metric {
				for _, l := range m.Label {
					if strings.Contains(l.GetValue(), good.ID) || strings.Contains(l.GetValue(), "db-01") {
						t.Errorf("%s{%s=%q}: a job id or VM name as a label", name, l.GetName(), l.GetValue())
					}
				}
			}
		}
	})

	t.Run("alerts fire in Prometheus", func(t *testing.T) {
		want := map[string]map[string]string{
			"HypersdkJobFailureRatioHigh":    {"provider": "demo"},
			"HypersdkWebhookEndpointFailing": {},
		}
		deadline := time.Now().Add(3 * time.Minute)
		for {
			firing := map[string]alert{}
			var all []string
			for _, a := range prom.alerts(t) {
				all = append(all, a.Labels["alertname"]+"="+a.State)
				if a.State == "firing" {
					firing[a.Labels["alertname"]] = a
				}
			}
			done := true
			for name, labels := range want {
				a, ok := firing[name]
				if !ok {
					done = false
					continue
				}
				for k, v := range labels {
					if a.Labels[k] != v {
						t.Fatalf("%s fired with %s=%q, want %q", name, k, a.Labels[k], v)
					}
				}
				if a.Annotations["runbook_url"] == "" || a.Annotations["summary"] == "" {
					t.Fatalf("%s fired without its annotations: %v", name, a.Annotations)
				}
			}
			for _, quiet := range []string{"HypersdkDaemonDown", "HypersdkProviderUnhealthy", "HypersdkStoreUnavailable", "HypersdkExportsStalled"} {
				if _, ok := firing[quiet]; ok {
					t.Errorf("%s fires against a healthy daemon", quiet)
				}
			}
			if done {
				if out := os.Getenv(screenshotEnv); out != "" {
					screenshot(t, prom, out)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("alerts %v not all firing within 3 minutes; Prometheus has: %v", want, all)
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
}

// screenshotEnv names a PNG file to write a screenshot of Prometheus'
// graph of the test's jobs to (Chromium headless), for the README:
//
//	HYPERSDK_MONITORING_SCREENSHOT=$PWD/docs/monitoring-panel.png go test ./monitoring -run TestRealDaemonAndPrometheus
const screenshotEnv = "HYPERSDK_MONITORING_SCREENSHOT"

func screenshot(t *testing.T, prom *prometheus, out string) {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("%s is set but chromium is not installed (apt-get install chromium)", screenshotEnv)
	}
	q := url.Values{}
	q.Set("g0.expr", `sum by (state) (hypersdk_jobs_total{provider="demo"}) or sum by (outcome) (hypersdk_webhook_deliveries_total)`)
	q.Set("g0.tab", "0")
	q.Set("g0.range_input", "1m")
	q.Set("g0.stacked", "0")
	q.Set("g0.show_exemplars", "0")
	profile := t.TempDir()
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--hide-scrollbars", "--user-data-dir="+profile,
		"--window-size=1100,1000", "--virtual-time-budget=15000", "--screenshot="+out, prom.url+"/graph?"+q.Encode())
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, b)
	}
	t.Logf("wrote %s", out)
}
