package azure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/hypersdk/hypersdk/pipeline"
	"github.com/hypersdk/hypersdk/providers"
	"github.com/hypersdk/hypersdk/providers/azure/azblobfake"
	"github.com/hypersdk/hypersdk/providers/azure/azurefake"
)

// rangesOf yields rs, then err (when set).
func rangesOf(err error, rs ...pageRange) iter.Seq2[pageRange, error] {
	return func(yield func(pageRange, error) bool) {
		for _, r := range rs {
			if !yield(r, nil) {
				return
			}
		}
		if err != nil {
			yield(pageRange{}, err)
		}
	}
}

func TestCellBlocks(t *testing.T) {
	const cell, capacity = 4096, 5*4096 + 1024 // the last cell is partial
	type b = providers.Block
	errList := errors.New("OperationTimedOut")
	for _, tc := range []struct {
		name     string
		ranges   iter.Seq2[pageRange, error]
		want     []b
		fallback bool
		wantErr  string
	}{
		{"ranges sharing a cell merge; a range across cells splits", rangesOf(nil,
			pageRange{512, 1024}, pageRange{2048, 2560}, pageRange{3584, 9216}, pageRange{12288, 12800}),
			[]b{{Offset: 512, Length: 3584}, {Offset: 4096, Length: 4096}, {Offset: 8192, Length: 1024}, {Offset: 12288, Length: 512}}, false, ""},
		{"data in the last partial cell, the footer page left out", rangesOf(nil, pageRange{20480, 21504}, pageRange{21504, 22016}),
			[]b{{Offset: 20480, Length: 1024}}, false, ""},
		{"no ranges: no blocks", rangesOf(nil), nil, false, ""},
		{"listing fails at once: every cell", rangesOf(errList),
			[]b{{Offset: 0, Length: 4096}, {Offset: 4096, Length: 4096}, {Offset: 8192, Length: 4096}, {Offset: 12288, Length: 4096}, {Offset: 16384, Length: 4096}, {Offset: 20480, Length: 1024}}, true, ""},
		{"listing fails midway: the cell being built whole, then every later cell", rangesOf(errList, pageRange{512, 1024}, pageRange{8704, 9216}),
			[]b{{Offset: 512, Length: 512}, {Offset: 8192, Length: 4096}, {Offset: 12288, Length: 4096}, {Offset: 16384, Length: 4096}, {Offset: 20480, Length: 1024}}, true, ""},
		{"ranges out of order", rangesOf(nil, pageRange{8192, 8704}, pageRange{512, 1024}), nil, false, "not ascending"},
		{"a range not on pages", rangesOf(nil, pageRange{100, 612}), nil, false, "whole pages"},
		{"a cancelled listing is an error, not a fallback", rangesOf(context.Canceled, pageRange{512, 1024}), nil, false, "context canceled"},
	} {
		var got []b
		var gotErr error
		fellBack := false
		for blk, err := range cellBlocks(tc.ranges, cell, capacity, func(error) { fellBack = true }) {
			if err != nil {
				gotErr = err
				break
			}
			got = append(got, blk)
		}
		if !slices.Equal(got, tc.want) || fellBack != tc.fallback {
			t.Errorf("%s: blocks %v (fallback %v), want %v (fallback %v)", tc.name, got, fellBack, tc.want, tc.fallback)
		}
		if (tc.wantErr == "") != (gotErr == nil) || gotErr != nil && !strings.Contains(gotErr.Error(), tc.wantErr) {
			t.Errorf("%s: error %v, want %q", tc.name, gotErr, tc.wantErr)
		}
	}
}

func TestRedactURLs(t *testing.T) {
	in := `Get "https://md-x.blob.core.windows.net/c/abcd?sv=2018&sig=S3CR3T%3D&se=x": dial tcp: connection refused; also http://h/p?sig=Z`
	out := redactURLs(in)
	if strings.Contains(out, "S3CR3T") || strings.Contains(out, "sig=") || !strings.Contains(out, "https://md-x.blob.core.windows.net/c/abcd?REDACTED") {
		t.Errorf("redactURLs: %s", out)
	}
}

// No SAS — its signature, or anything with sig= — shows in a log line
// (the provider's, the SDK's, the pipeline's), an error or an export's
// result, through exports that renew expired grants, ride out throttling
// and fail; nor does the client secret.
func TestSASNeverShown(t *testing.T) {
	t.Parallel()
	spec := testSpec(t)
	blobs := fakeBlobs(t, azblobfake.Options{ExpireSASAfter: 5, FailRate: 0.1, Seed: 9})
	f := newFixture(t, spec, blobs, azurefake.Faults{})
	p := f.connected(t)
	ctx := context.Background()
	var shown []string
	for i, vm := range []string{"web-1", "pair"} {
		res, err := pipeline.Export(ctx, p, vm, providers.ExportOptions{
			OutputDir: t.TempDir(), Format: providers.FormatDisks, DiskFormat: providers.DiskRaw, JobID: fmt.Sprintf("job-secret-%d", i), Logger: f.log,
		})
		if err != nil {
			t.Fatalf("%s: %v", vm, err)
		}
		b, _ := json.Marshal(res)
		shown = append(shown, string(b))
	}
	// Failures: a bad footer, a grant elsewhere.
	f.arm.SetFaults(azurefake.Faults{BadFooter: true})
	_, err := pipeline.Export(ctx, p, "pair", providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatOVF, JobID: "job-secret-footer", Logger: f.log})
	if err == nil {
		t.Fatal("a bad footer was accepted")
	}
	shown = append(shown, err.Error())
	f.arm.SetFaults(azurefake.Faults{})
	cfg := f.config(testSecret)
	cfg.Endpoints.Blob = "http://127.0.0.1:1/elsewhere"
	other := f.provider(t, cfg)
	if err := other.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = pipeline.Export(ctx, other, "web-1", providers.ExportOptions{OutputDir: t.TempDir(), Format: providers.FormatOVF, JobID: "job-secret-elsewhere", Logger: f.log})
	if err == nil {
		t.Fatal("a SAS elsewhere was accepted")
	}
	shown = append(shown, err.Error(), f.logs.String(), fmt.Sprintf("%+v %#v", p, p.cfg))
	sigs := f.arm.SASSignatures()
	if len(sigs) < 6 {
		t.Fatalf("%d grants: the test proves little", len(sigs))
	}
	for _, s := range shown {
		if strings.Contains(s, "sig=") || strings.Contains(s, testSecret) {
			t.Errorf("a secret shows in %.300s", s)
		}
		for _, sig := range sigs {
			if strings.Contains(s, sig) || strings.Contains(s, url.QueryEscape(sig)) {
				t.Errorf("SAS signature %.6s… shows in %.300s", sig, s)
			}
		}
	}
	leftovers(t, f)
}
