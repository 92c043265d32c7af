package gcp

import (
	"testing"
	"time"
)

func TestBuilderErrorLine(t *testing.T) {
	for _, tc := range []struct{ log, want string }{
		{`Step #0: [image-export] 2024/05/27 10:11:12 Cloud Build ID: abc
Step #0: [image-export] 2024/05/27 10:31:12 step "wait-for-inst-export-disk" run error: WaitForInstancesSignal FailureMatch found for "inst-export-disk-x": "ExportFailed: Failed to export disk source to GCS [Privacy-> gs://b/o.tar.gz <-Privacy]."
Step #0: [Daisy] cleaning up
ERROR: build step 0 "gcr.io/compute-image-import/gce_vm_image_export:release" failed: step exited with non-zero status: 1`,
			`[image-export] 2024/05/27 10:31:12 step "wait-for-inst-export-disk" run error: WaitForInstancesSignal FailureMatch found for "inst-export-disk-x": "ExportFailed: Failed to export disk source to GCS gs://b/o.tar.gz."`},
		{"Step #0: pulling image\nERROR: build step 0 \"x\" failed: step exited with non-zero status: 2\n",
			`ERROR: build step 0 "x" failed: step exited with non-zero status: 2`},
		{"", ""},
	} {
		if got := builderErrorLine(tc.log); got != tc.want {
			t.Errorf("builderErrorLine:\n got %q\nwant %q", got, tc.want)
		}
	}
	if h := builderHint(`googleapi: Error 403: Required 'compute.disks.create' permission for 'projects/p/zones/z/disks/d', forbidden`, "123"); h !=
		"the Cloud Build service account (123@cloudbuild.gserviceaccount.com) needs roles/compute.admin, roles/iam.serviceAccountUser and roles/iam.serviceAccountTokenCreator" {
		t.Errorf("compute 403 hint: %q", h)
	}
	if h := builderHint("ExportFailed: nothing to do with permissions", ""); h != "" {
		t.Errorf("a plain failure got the hint %q", h)
	}
}

// The build timeout grows with the disk: 30 min + 1 min per GiB, at least
// 1 h, at most Cloud Build's 24 h; the builder's own is 3% shorter,
// between 30 s and 5 min shorter.
func TestBuildTimeout(t *testing.T) {
	tu := defaultTuning()
	for _, tc := range []struct {
		gib          int64
		build, daisy time.Duration
	}{
		{10, time.Hour, time.Hour - 108*time.Second},
		{100, 130 * time.Minute, 130*time.Minute - 234*time.Second},
		{1000, 1030 * time.Minute, 1030*time.Minute - 5*time.Minute},
		{4096, 24 * time.Hour, 24*time.Hour - 5*time.Minute},
	} {
		if got := tu.buildTimeout(tc.gib); got != tc.build {
			t.Errorf("%d GiB: build timeout %v, want %v", tc.gib, got, tc.build)
		}
		if got := builderTimeout(tu.buildTimeout(tc.gib)); got != tc.daisy {
			t.Errorf("%d GiB: builder timeout %v, want %v", tc.gib, got, tc.daisy)
		}
	}
}
