package api_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
)

// BenchmarkSubmitJob measures POST /api/v1/jobs end to end (HTTP, auth,
// validation, job row and River job in one transaction) against GET
// /healthz as the HTTP baseline of the same server.
func BenchmarkSubmitJob(b *testing.B) {
	for _, d := range storetest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			ts := newBenchServer(b, d)
			base := measure(b, 200, func() { ts.get(b, "/healthz") })
			body := `{"provider":"lab","vm":"vm-001"}`
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				ts.post(b, "/api/v1/jobs", body)
			}
			elapsed := time.Since(start)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N)/float64(base.p50.Nanoseconds()), "x_healthz")
		})
	}
}

// BenchmarkListJobs measures GET /api/v1/jobs pages with 10,000 jobs stored:
// the first page, a filtered page and a deep cursor page, reporting p50 and
// p99 latency and the ratio to GET /healthz on the same server.
func BenchmarkListJobs(b *testing.B) {
	for _, d := range storetest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			ts := newBenchServer(b, d)
			ids := seedJobs(b, ts.db, 10000)
			base := measure(b, 200, func() { ts.get(b, "/healthz") })
			for _, q := range []struct{ name, path string }{
				{"first-page", "/api/v1/jobs?limit=50"},
				{"state-filter", "/api/v1/jobs?state=failed&limit=50"},
				{"deep-cursor", "/api/v1/jobs?limit=50&cursor=" + ids[len(ids)/10]},
			} {
				b.Run(q.name, func(b *testing.B) {
					b.ResetTimer()
					lat := measure(b, b.N, func() { ts.get(b, q.path) })
					b.ReportMetric(float64(lat.p50.Microseconds()), "p50_us")
					b.ReportMetric(float64(lat.p99.Microseconds()), "p99_us")
					b.ReportMetric(float64(lat.p50)/float64(base.p50), "x_healthz")
				})
			}
		})
	}
}

type latencies struct{ p50, p99 time.Duration }

func measure(b *testing.B, n int, f func()) latencies {
	b.Helper()
	d := make([]time.Duration, 0, n)
	for range n {
		s := time.Now()
		f()
		d = append(d, time.Since(s))
	}
	slices.Sort(d)
	return latencies{p50: d[len(d)/2], p99: d[min(len(d)-1, len(d)*99/100)]}
}

type benchServer struct {
	*testServer
	db *store.DB
}

func newBenchServer(b *testing.B, d store.Dialect) *benchServer {
	b.Helper()
	db := storetest.Open(b, d)
	ts := newTestServer(b, db)
	return &benchServer{testServer: ts, db: db}
}

func (s *benchServer) get(b *testing.B, path string) {
	req, _ := http.NewRequest("GET", s.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+viewerToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	drain(resp)
	if resp.StatusCode != 200 {
		b.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
}

func (s *benchServer) post(b *testing.B, path, body string) {
	req, _ := http.NewRequest("POST", s.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+operatorToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	drain(resp)
	if resp.StatusCode != 201 {
		b.Fatalf("POST %s: %d", path, resp.StatusCode)
	}
}

func drain(resp *http.Response) {
	buf := make([]byte, 32<<10)
	for {
		if _, err := resp.Body.Read(buf); err != nil {
			break
		}
	}
	resp.Body.Close()
}

// seedJobs stores n finished jobs directly (the engine's own submit path is
// what BenchmarkSubmitJob measures) and returns their IDs, oldest first.
func seedJobs(b *testing.B, db *store.DB, n int) []string {
	b.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	spec := `{"provider":"lab","vm":"vm-001","options":{"output_dir":"/x","format":"ovf"},"max_attempts":3}`
	result := `{"output_dir":"/x","format":"ovf","files":[{"path":"a.vmdk","size":1048576,"sha256":"00","kind":"disk"}],"bytes":1048576}`
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		now := time.Now().Add(-time.Duration(n) * time.Second)
		for i := range n {
			id, _ := uuid.NewV7()
			ids[i] = id.String()
			state := []string{"succeeded", "failed", "cancelled", "succeeded"}[i%4]
			at := store.Micros(now.Add(time.Duration(i) * time.Second))
			if _, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, provider, vm, spec, state, max_attempts, attempt, result, created_at, updated_at, finished_at)
				VALUES ($1, 'lab', $2, $3, $4, 3, 1, $5, $6, $6, $6)`, ids[i], fmt.Sprintf("vm-%03d", i%16), spec, state, result, at); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return ids
}
