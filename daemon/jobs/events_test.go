package jobs_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/daemon/jobs"
	"github.com/hypersdk/hypersdk/daemon/store"
	"github.com/hypersdk/hypersdk/daemon/store/storetest"
	"github.com/hypersdk/hypersdk/daemon/webhooks"
)

// A receiver that hangs does not hold up jobs: the whole lifecycle of a job
// commits while the receiver still sits on the first event, and every
// event arrives once it answers.
func TestJobsDoNotWaitForWebhookReceivers(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		release := make(chan struct{})
		var mu sync.Mutex
		var inFlight, answered int
		var types []string
		rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var p struct{ Type string }
			_ = json.NewDecoder(r.Body).Decode(&p)
			mu.Lock()
			inFlight++
			types = append(types, p.Type)
			mu.Unlock()
			select { // hangs for up to 60 s, as in the issue
			case <-release:
			case <-time.After(60 * time.Second):
			}
			mu.Lock()
			inFlight--
			answered++
			mu.Unlock()
		}))
		defer rcv.Close()
		defer close(release)

		hooks, err := webhooks.New(db, webhooks.Options{NodeID: "node-a", AllowPrivateTargets: true, Workers: 1,
			PollInterval: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		timeout := "2m"
		if _, _, err := hooks.Create(context.Background(), apitypes.EndpointSpec{URL: rcv.URL, Events: []string{"job.*"}, Timeout: timeout}); err != nil {
			t.Fatal(err)
		}
		if err := hooks.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = hooks.Stop(ctx)
		}()
		e := newEnv(t, db, 0)
		m := e.start(func(o *jobs.Options) { o.Events = hooks })
		j := waitState(t, m, submit(t, m, "vm-001").ID, apitypes.JobSucceeded)

		mu.Lock()
		done := answered
		mu.Unlock()
		if done != 0 {
			t.Fatalf("job %s finished after the receiver answered %d request(s)", j.ID, done)
		}
		pending, _ := hooks.Pending(context.Background())
		if pending != 3 {
			t.Fatalf("%d deliveries pending, want created, started, completed", pending)
		}
		// The receiver does get the first event, and sits on it.
		for deadline := time.Now().Add(30 * time.Second); ; {
			mu.Lock()
			hanging := inFlight
			mu.Unlock()
			if hanging == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the first event never reached the receiver")
			}
			time.Sleep(10 * time.Millisecond)
		}
		release <- struct{}{} // let the first answer; the rest follow
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			n := len(types)
			mu.Unlock()
			if n >= 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d events arrived", n)
			}
			select {
			case release <- struct{}{}:
			case <-time.After(10 * time.Millisecond):
			}
		}
		mu.Lock()
		defer mu.Unlock()
		want := map[string]bool{"job.created": true, "job.started": true, "job.completed": true}
		for _, typ := range types {
			delete(want, typ)
		}
		if len(want) != 0 {
			t.Fatalf("events %v, missing %v", types, want)
		}
	})
}
