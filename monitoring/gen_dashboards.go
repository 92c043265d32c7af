//go:build ignore

// gen_dashboards writes the Grafana dashboards of grafana/dashboards from
// the definitions below (run by `go generate ./monitoring`): one place
// that says which metric each panel shows, and the layout, ids, data
// source and units that every panel must carry, done the same way for all.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// panel is one panel: kind is timeseries, stat, gauge or bargauge; queries
// are PromQL with their legends; unit a Grafana unit id; thresholds the
// steps above the base color (nil: green only); width in grid columns (24 a row).
type panel struct {
	kind, title, desc, unit string
	queries                 []query
	thresholds              []step
	width, height           int
	max                     *float64
	stacked                 bool
}

type query struct{ expr, legend string }

type step struct {
	color string
	value float64
}

type dashboard struct {
	uid, title, desc string
	withProvider     bool // a $provider variable filters the panels
	panels           []panel
}

func q(expr, legend string) query { return query{expr, legend} }

func ts(title, unit, desc string, qs ...query) panel {
	return panel{kind: "timeseries", title: title, unit: unit, desc: desc, queries: qs, width: 12, height: 8}
}

func stat(title, unit, desc string, th []step, qs ...query) panel {
	return panel{kind: "stat", title: title, unit: unit, desc: desc, queries: qs, thresholds: th, width: 6, height: 4}
}

func bars(title, unit, desc string, qs ...query) panel {
	return panel{kind: "bargauge", title: title, unit: unit, desc: desc, queries: qs, width: 8, height: 8}
}

func (p panel) th(steps ...step) panel { p.thresholds = steps; return p }
func (p panel) w(width int) panel      { p.width = width; return p }
func (p panel) stack() panel           { p.stacked = true; return p }
func (p panel) upTo(v float64) panel   { p.max = &v; return p }

var (
	red    = func(v float64) step { return step{"red", v} }
	orange = func(v float64) step { return step{"orange", v} }
	green  = func(v float64) step { return step{"green", v} }
)

const prov = `provider=~"$provider"`

var dashboards = []dashboard{
	{
		uid: "hypersdk-overview", title: "HyperSDK / Overview",
		desc: "Jobs, success rate, queue, throughput and health of the hypervisord daemons.",
		panels: []panel{
			stat("Jobs running", "short", "Exports running now on all daemons of the database.", nil,
				q(`max(hypersdk_jobs_running)`, "running")),
			stat("Jobs queued", "short", "Jobs waiting to run, retries waiting for their backoff included.", []step{orange(10), red(50)},
				q(`max(hypersdk_jobs_queued)`, "queued")),
			stat("Success rate (24h)", "percentunit", "Jobs that succeeded of those that ended (succeeded or failed) in the last 24 hours.", []step{red(0), orange(0.9), green(0.98)},
				q(`sum(increase(hypersdk_jobs_total{state="succeeded"}[24h])) / sum(increase(hypersdk_jobs_total{state=~"succeeded|failed"}[24h]))`, "success")).upTo(1),
			stat("Daemons up", "short", "hypervisord instances Prometheus scrapes successfully.", []step{red(0), green(1)},
				q(`sum(up{job="hypersdk"})`, "up")),
			ts("Jobs ended per hour by state", "short", "Jobs that reached a final state, as an hourly rate.",
				q(`sum by (state) (rate(hypersdk_jobs_total[$__rate_interval])) * 3600`, "{{state}}")).stack(),
			ts("Queue", "short", "Queued and running jobs; the age of the oldest queued job is on the job performance dashboard.",
				q(`max(hypersdk_jobs_queued)`, "queued"), q(`max(hypersdk_jobs_running)`, "running")),
			ts("Export throughput", "Bps", "Bytes written by exports per second, all daemons.",
				q(`sum(rate(hypersdk_export_bytes_total[$__rate_interval]))`, "all providers")),
			stat("Provider health", "bool_on_off", "1 when the provider's last connection or health check succeeded.", []step{red(0), green(1)},
				q(`max by (provider) (hypersdk_provider_up)`, "{{provider}}")).w(12),
			stat("Webhook deliveries pending", "short", "Webhook deliveries waiting to be sent.", []step{orange(100), red(1000)},
				q(`max(hypersdk_webhook_pending)`, "pending")),
			stat("Store", "bool_on_off", "1 when each daemon's database answered a ping at the last scrape.", []step{red(0), green(1)},
				q(`min(hypersdk_store_up)`, "store up")),
			stat("Version", "none", "Versions of the running daemons (build info).", nil,
				q(`count by (version, revision) (hypersdk_build_info)`, "{{version}} ({{revision}})")).w(12),
		},
	},
	{
		uid: "hypersdk-jobs", title: "HyperSDK / Job performance", withProvider: true,
		desc: "Job rates, durations, throughput, progress of running exports and retries, by provider.",
		panels: []panel{
			ts("Jobs per hour by provider", "short", "Jobs that ended in the last hour, by provider.",
				q(`sum by (provider) (increase(hypersdk_jobs_total{`+prov+`}[1h]))`, "{{provider}}")),
			ts("Jobs submitted per hour", "short", "Jobs accepted in the last hour, by provider.",
				q(`sum by (provider) (increase(hypersdk_jobs_submitted_total{`+prov+`}[1h]))`, "{{provider}}")),
			ts("Export duration p50 / p95 (1h)", "s", "Duration of the final attempt of jobs that succeeded, from the duration histogram.",
				q(`histogram_quantile(0.5, sum by (provider, le) (rate(hypersdk_job_duration_seconds_bucket{state="succeeded",`+prov+`}[1h])))`, "p50 {{provider}}"),
				q(`histogram_quantile(0.95, sum by (provider, le) (rate(hypersdk_job_duration_seconds_bucket{state="succeeded",`+prov+`}[1h])))`, "p95 {{provider}}")),
			ts("Mean export duration (1h)", "s", "Mean duration of the final attempt of jobs that ended, by provider and state.",
				q(`sum by (provider, state) (rate(hypersdk_job_duration_seconds_sum{`+prov+`}[1h])) / sum by (provider, state) (rate(hypersdk_job_duration_seconds_count{`+prov+`}[1h]))`, "{{provider}} {{state}}")),
			ts("Throughput by provider", "Bps", "Bytes written by exports per second.",
				q(`sum by (provider) (rate(hypersdk_export_bytes_total{`+prov+`}[$__rate_interval]))`, "{{provider}}")).stack(),
			ts("Running exports: bytes remaining", "bytes", "Bytes the running exports still have to write, where their size is known, by provider.",
				q(`max by (provider) (hypersdk_export_size_bytes{`+prov+`} - hypersdk_export_progress_bytes{`+prov+`})`, "{{provider}}")),
			panel{kind: "gauge", title: "Running exports: progress", unit: "percentunit", width: 8, height: 8,
				desc:    "Bytes written of the bytes to write, summed over the running exports of each provider.",
				queries: []query{q(`max by (provider) (hypersdk_export_progress_bytes{`+prov+`}) / max by (provider) (hypersdk_export_size_bytes{`+prov+`} > 0)`, "{{provider}}")}}.upTo(1),
			bars("Active jobs by format", "short", "Queued and running jobs, by format and state.",
				q(`sum by (format, state) (max by (provider, format, state) (hypersdk_jobs_active{`+prov+`}))`, "{{format}} {{state}}")),
			stat("Oldest queued job", "s", "How long the oldest queued job has waited.", []step{orange(1800), red(3600)},
				q(`max(hypersdk_jobs_oldest_queued_age_seconds)`, "age")).w(8),
			ts("Retries per hour", "short", "Failed attempts followed by another attempt, by provider.",
				q(`sum by (provider) (increase(hypersdk_job_retries_total{`+prov+`}[1h]))`, "{{provider}}")),
			ts("Resumed bytes per hour", "bytes", "Source bytes that successful exports did not fetch again because an earlier attempt had stored them, by provider.",
				q(`sum by (provider) (increase(hypersdk_export_resumed_bytes_total{`+prov+`}[1h]))`, "{{provider}}")),
			ts("Jobs failed per hour", "short", "Jobs that failed after their retries, by provider.",
				q(`sum by (provider) (increase(hypersdk_jobs_total{state="failed",`+prov+`}[1h]))`, "{{provider}}")).th(green(0), red(1)),
		},
	},
	{
		uid: "hypersdk-system", title: "HyperSDK / System resources",
		desc: "Memory, CPU, goroutines, file descriptors, the HTTP API, the store and the vSphere session pools of each daemon.",
		panels: []panel{
			ts("Resident memory", "bytes", "Resident set size of each hypervisord process.",
				q(`process_resident_memory_bytes{job="hypersdk"}`, "{{instance}}")).th(green(0), orange(512<<20), red(1<<30)),
			ts("Go heap in use", "bytes", "Heap bytes in use by the Go runtime.",
				q(`go_memstats_heap_inuse_bytes{job="hypersdk"}`, "{{instance}}")),
			ts("CPU", "percentunit", "CPU time used per second (1 = one core).",
				q(`rate(process_cpu_seconds_total{job="hypersdk"}[$__rate_interval])`, "{{instance}}")),
			ts("Goroutines", "short", "Goroutines of each daemon.",
				q(`go_goroutines{job="hypersdk"}`, "{{instance}}")),
			ts("Open file descriptors", "percentunit", "Open file descriptors of the limit.",
				q(`process_open_fds{job="hypersdk"} / process_max_fds{job="hypersdk"}`, "{{instance}}")).upTo(1).th(green(0), orange(0.7), red(0.9)),
			ts("GC pause time", "s", "Time spent in stop-the-world GC pauses per second.",
				q(`rate(go_gc_duration_seconds_sum{job="hypersdk"}[$__rate_interval])`, "{{instance}}")),
			ts("API requests by route", "reqps", "HTTP requests per second by route template.",
				q(`sum by (route) (rate(hypersdk_http_requests_total[$__rate_interval]))`, "{{route}}")).stack(),
			ts("API latency p95 by route", "s", "95th percentile of HTTP request latency by route template.",
				q(`histogram_quantile(0.95, sum by (route, le) (rate(hypersdk_http_request_duration_seconds_bucket[$__rate_interval])))`, "{{route}}")),
			ts("API errors", "percentunit", "Share of requests answered 5xx, and 4xx.",
				q(`sum(rate(hypersdk_http_requests_total{code=~"5.."}[$__rate_interval])) / sum(rate(hypersdk_http_requests_total[$__rate_interval]))`, "5xx"),
				q(`sum(rate(hypersdk_http_requests_total{code=~"4.."}[$__rate_interval])) / sum(rate(hypersdk_http_requests_total[$__rate_interval]))`, "4xx")).upTo(1).th(green(0), red(0.05)),
			ts("Store errors", "short", "Store reads for the metrics that failed, per hour, and whether the store answers.",
				q(`sum by (query) (increase(hypersdk_store_errors_total[1h]))`, "{{query}}"),
				q(`min(hypersdk_store_up)`, "store up")).th(green(0), red(1)),
			ts("vSphere sessions", "short", "Session pool of each vSphere provider: in use, idle and the maximum.",
				q(`sum by (provider) (hypersdk_vsphere_pool_sessions_in_use)`, "in use {{provider}}"),
				q(`sum by (provider) (hypersdk_vsphere_pool_sessions_idle)`, "idle {{provider}}"),
				q(`max by (provider) (hypersdk_vsphere_pool_sessions_max)`, "max {{provider}}")),
			ts("vSphere session churn", "ops", "Logins, reuses, waits for a free session and transparent reconnects per second.",
				q(`sum by (provider) (rate(hypersdk_vsphere_pool_sessions_created_total[$__rate_interval]))`, "created {{provider}}"),
				q(`sum by (provider) (rate(hypersdk_vsphere_pool_sessions_reused_total[$__rate_interval]))`, "reused {{provider}}"),
				q(`sum by (provider) (rate(hypersdk_vsphere_pool_waits_total[$__rate_interval]))`, "waits {{provider}}"),
				q(`sum by (provider) (rate(hypersdk_vsphere_pool_reconnects_total[$__rate_interval]))`, "reconnects {{provider}}"),
				q(`sum by (provider) (rate(hypersdk_vsphere_pool_sessions_evicted_total[$__rate_interval]))`, "evicted {{provider}}")),
		},
	},
	{
		uid: "hypersdk-providers", title: "HyperSDK / Provider comparison", withProvider: true,
		desc: "Jobs, success rate, bytes, throughput, durations, health and platform API latency side by side per provider.",
		panels: []panel{
			bars("Jobs ended (24h)", "short", "Jobs that reached a final state in the last 24 hours.",
				q(`sum by (provider) (increase(hypersdk_jobs_total{`+prov+`}[24h]))`, "{{provider}}")),
			bars("Success rate (24h)", "percentunit", "Jobs that succeeded of those that ended (succeeded or failed).",
				q(`sum by (provider) (increase(hypersdk_jobs_total{state="succeeded",`+prov+`}[24h])) / sum by (provider) (increase(hypersdk_jobs_total{state=~"succeeded|failed",`+prov+`}[24h]))`, "{{provider}}")).upTo(1).th(red(0), orange(0.9), green(0.98)),
			bars("Bytes exported (24h)", "bytes", "Bytes written by exports in the last 24 hours.",
				q(`sum by (provider) (increase(hypersdk_export_bytes_total{`+prov+`}[24h]))`, "{{provider}}")),
			ts("Throughput", "Bps", "Bytes written by exports per second.",
				q(`sum by (provider) (rate(hypersdk_export_bytes_total{`+prov+`}[$__rate_interval]))`, "{{provider}}")),
			ts("Export duration p95 (6h)", "s", "95th percentile duration of jobs that succeeded.",
				q(`histogram_quantile(0.95, sum by (provider, le) (rate(hypersdk_job_duration_seconds_bucket{state="succeeded",`+prov+`}[6h])))`, "{{provider}}")),
			ts("Platform API latency p95", "s", "95th percentile latency of calls to the platform, by provider and operation.",
				q(`histogram_quantile(0.95, sum by (provider, operation, le) (rate(hypersdk_provider_request_duration_seconds_bucket{`+prov+`}[$__rate_interval])))`, "{{provider}} {{operation}}")),
			ts("Platform API errors", "ops", "Failed calls to the platform per second, by provider and operation.",
				q(`sum by (provider, operation) (rate(hypersdk_provider_request_errors_total{`+prov+`}[$__rate_interval]))`, "{{provider}} {{operation}}")).th(green(0), red(0.01)),
			stat("Health", "bool_on_off", "1 when the provider's last connection or health check succeeded.", []step{red(0), green(1)},
				q(`max by (provider) (hypersdk_provider_up{`+prov+`})`, "{{provider}}")).w(12),
			stat("Since last health check", "s", "Time since each provider's connection was last checked.", []step{green(0), orange(600), red(1800)},
				q(`time() - max by (provider) (hypersdk_provider_last_check_timestamp_seconds{`+prov+`} > 0)`, "{{provider}}")).w(12),
			ts("Retries per hour", "short", "Failed attempts followed by another attempt.",
				q(`sum by (provider) (increase(hypersdk_job_retries_total{`+prov+`}[1h]))`, "{{provider}}")),
		},
	},
	{
		uid: "hypersdk-platform-objects", title: "HyperSDK / Platform objects", withProvider: true,
		desc: "What exports create on the platforms (snapshots, grants, export tasks, staging objects): held by running exports, and left by ended jobs and removed by the orphan sweep.",
		panels: []panel{
			ts("Running exports holding platform objects", "short", "Each running export holds its snapshot, lease, grant, export task or staging objects until it ends.",
				q(`max by (provider) (sum by (instance, provider) (hypersdk_jobs_active{state="running",`+prov+`}))`, "{{provider}}")).stack(),
			bars("Left by ended jobs (24h)", "short", "Platform objects ended jobs left that the orphan sweep found and deleted: each is a clean-up that failed or a daemon killed mid-export.",
				q(`sum by (provider) (increase(hypersdk_orphans_deleted_total{`+prov+`}[24h]))`, "{{provider}}")).th(green(0), orange(1)),
			ts("Orphan sweeps by outcome", "short", "Sweeps per hour; failed sweeps leave objects of ended jobs on the platform.",
				q(`sum by (provider, outcome) (increase(hypersdk_orphan_sweeps_total{`+prov+`}[1h]))`, "{{provider}} {{outcome}}")),
			stat("Sweep failing", "bool_on_off", "1 when every sweep of the provider failed in the last 30 minutes.", []step{green(0), red(1)},
				q(`(sum by (provider) (increase(hypersdk_orphan_sweeps_total{outcome="error",`+prov+`}[30m])) > bool 0) * (sum by (provider) (increase(hypersdk_orphan_sweeps_total{outcome="ok",`+prov+`}[30m])) == bool 0)`, "{{provider}}")).w(12),
			ts("Export preparation latency p95", "s", "95th percentile of preparing exports on the platform (snapshot, grant, task).",
				q(`histogram_quantile(0.95, sum by (provider, le) (rate(hypersdk_provider_request_duration_seconds_bucket{operation="prepare_export",`+prov+`}[$__rate_interval])))`, "{{provider}}")),
			ts("Export preparation failures", "ops", "Failed export preparations per second.",
				q(`sum by (provider) (rate(hypersdk_provider_request_errors_total{operation="prepare_export",`+prov+`}[$__rate_interval]))`, "{{provider}}")).th(green(0), red(0.01)),
		},
	},
	{
		uid: "hypersdk-schedules-webhooks", title: "HyperSDK / Schedules and webhooks",
		desc: "Schedule firings, misses, next runs and lag; webhook deliveries, failures, backlog and latency.",
		panels: []panel{
			stat("Schedules", "short", "Schedules by state.", nil,
				q(`max by (state) (hypersdk_schedules)`, "{{state}}")),
			stat("Missed runs (24h)", "short", "Due runs that were not started.", []step{green(0), red(1)},
				q(`sum(increase(hypersdk_schedule_runs_total{outcome="missed"}[24h]))`, "missed")),
			stat("Webhook deliveries pending", "short", "Deliveries waiting to be sent, retries included.", []step{green(0), orange(100), red(1000)},
				q(`max(hypersdk_webhook_pending)`, "pending")),
			stat("Oldest undelivered event", "s", "Age of the oldest webhook delivery waiting.", []step{green(0), orange(600), red(1800)},
				q(`max(hypersdk_webhook_oldest_pending_age_seconds)`, "age")),
			ts("Schedule firings by outcome", "short", "Firings per hour: submitted, catch-up, manual, skipped, missed, …",
				q(`sum by (outcome) (increase(hypersdk_schedule_runs_total[1h]))`, "{{outcome}}")).stack(),
			bars("Next run in", "s", "Time until each enabled schedule is due (negative: overdue).",
				q(`max by (schedule) (hypersdk_schedule_next_run_timestamp_seconds) - time()`, "{{schedule}}")).th(red(-1e18), green(0)),
			ts("Schedule lag p95", "s", "How late scheduled runs started after their due time.",
				q(`histogram_quantile(0.95, sum by (le) (rate(hypersdk_schedule_lag_seconds_bucket[1h])))`, "p95")),
			ts("Webhook deliveries by outcome", "ops", "Delivery attempts per second: delivered, retry, failed, gone.",
				q(`sum by (outcome) (rate(hypersdk_webhook_deliveries_total[$__rate_interval]))`, "{{outcome}}")).stack(),
			ts("Webhook failures by endpoint", "ops", "Failed delivery attempts per second by endpoint.",
				q(`sum by (endpoint) (rate(hypersdk_webhook_deliveries_total{outcome=~"retry|failed|gone"}[$__rate_interval]))`, "{{endpoint}}")).th(green(0), red(0.01)),
			ts("Webhook backlog", "short", "Deliveries waiting to be sent, retries waiting for their backoff included.",
				q(`max(hypersdk_webhook_pending)`, "pending")),
			ts("Webhook delivery latency p95", "s", "95th percentile of the time from sending to the receiver's answer.",
				q(`histogram_quantile(0.95, sum by (endpoint, le) (rate(hypersdk_webhook_delivery_duration_seconds_bucket[$__rate_interval])))`, "{{endpoint}}")),
		},
	},
}

func main() {
	dir := filepath.Join("grafana", "dashboards")
	for _, d := range dashboards {
		b, err := json.MarshalIndent(render(d), "", "  ")
		if err != nil {
			panic(err)
		}
		path := filepath.Join(dir, d.uid+".json")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			panic(err)
		}
		fmt.Println("wrote", path)
	}
}

type obj = map[string]any

var datasource = obj{"type": "prometheus", "uid": "${datasource}"}

func render(d dashboard) obj {
	vars := []any{obj{
		"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
		"current": obj{}, "hide": 0, "refresh": 1, "options": []any{},
	}}
	if d.withProvider {
		vars = append(vars, obj{
			"name": "provider", "label": "Provider", "type": "query", "datasource": datasource,
			"query":      obj{"query": "label_values(hypersdk_provider_up, provider)", "refId": "provider"},
			"definition": "label_values(hypersdk_provider_up, provider)",
			"refresh":    2, "multi": true, "includeAll": true, "allValue": ".*",
			"current": obj{"text": []string{"All"}, "value": []string{"$__all"}}, "options": []any{}, "sort": 1, "hide": 0,
		})
	}
	var panels []any
	x, y, rowH := 0, 0, 0
	for i, p := range d.panels {
		if x+p.width > 24 {
			x, y, rowH = 0, y+rowH, 0
		}
		panels = append(panels, renderPanel(i+1, p, x, y))
		x += p.width
		rowH = max(rowH, p.height)
	}
	return obj{
		"uid": d.uid, "title": d.title, "description": d.desc, "tags": []string{"hypersdk"},
		"editable": true, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
		"time": obj{"from": "now-6h", "to": "now"}, "refresh": "30s", "timezone": "browser",
		"templating":  obj{"list": vars},
		"annotations": obj{"list": []any{}},
		"links":       []any{obj{"title": "HyperSDK dashboards", "type": "dashboards", "tags": []string{"hypersdk"}, "asDropdown": true}},
		"panels":      panels,
	}
}

func renderPanel(id int, p panel, x, y int) obj {
	var targets []any
	for i, t := range p.queries {
		targets = append(targets, obj{
			"refId": string(rune('A' + i)), "datasource": datasource, "expr": t.expr, "legendFormat": t.legend,
			"range": true, "instant": false, "editorMode": "code",
		})
	}
	steps := []any{obj{"color": "green", "value": nil}}
	if len(p.thresholds) > 0 {
		steps = []any{obj{"color": p.thresholds[0].color, "value": nil}}
		for _, s := range p.thresholds[1:] {
			steps = append(steps, obj{"color": s.color, "value": s.value})
		}
	}
	defaults := obj{"unit": p.unit, "thresholds": obj{"mode": "absolute", "steps": steps}, "min": 0}
	if p.unit == "s" && p.kind == "bargauge" {
		delete(defaults, "min") // overdue schedules are negative
	}
	if p.max != nil {
		defaults["max"] = *p.max
	}
	options := obj{}
	switch p.kind {
	case "timeseries":
		stack := "none"
		if p.stacked {
			stack = "normal"
		}
		thresholdsStyle := "off"
		if len(p.thresholds) > 0 {
			thresholdsStyle = "line"
		}
		defaults["color"] = obj{"mode": "palette-classic"}
		defaults["custom"] = obj{"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
			"stacking": obj{"mode": stack, "group": "A"}, "thresholdsStyle": obj{"mode": thresholdsStyle}}
		options = obj{"legend": obj{"displayMode": "list", "placement": "bottom", "showLegend": true},
			"tooltip": obj{"mode": "multi", "sort": "desc"}}
	case "stat":
		defaults["color"] = obj{"mode": "thresholds"}
		options = obj{"reduceOptions": obj{"calcs": []string{"lastNotNull"}, "fields": "", "values": false},
			"colorMode": "background", "graphMode": "none", "textMode": "value_and_name", "justifyMode": "auto", "orientation": "auto"}
		if p.unit == "bool_on_off" {
			defaults["mappings"] = []any{obj{"type": "value", "options": obj{
				"0": obj{"text": "DOWN", "color": "red"}, "1": obj{"text": "UP", "color": "green"}}}}
		}
	case "gauge", "bargauge":
		defaults["color"] = obj{"mode": "thresholds"}
		options = obj{"reduceOptions": obj{"calcs": []string{"lastNotNull"}, "fields": "", "values": false},
			"orientation": "horizontal", "showThresholdMarkers": true, "displayMode": "gradient"}
	}
	return obj{
		"id": id, "type": p.kind, "title": p.title, "description": p.desc, "datasource": datasource,
		"gridPos": obj{"x": x, "y": y, "w": p.width, "h": p.height},
		"targets": targets, "fieldConfig": obj{"defaults": defaults, "overrides": []any{}}, "options": options,
	}
}
