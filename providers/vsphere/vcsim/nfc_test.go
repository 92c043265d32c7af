package vcsim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"

	"github.com/vmware/govmomi/nfc"
	"github.com/vmware/govmomi/vim25/types"
)

// nfcFixture starts an Env with one exported VM and returns the lease, its
// first disk's URL and the served file's bytes.
func nfcFixture(t *testing.T, b NFCBehavior) (*Env, *nfc.Lease, *nfc.LeaseInfo, []byte) {
	t.Helper()
	env := start(t, Options{NFC: b, VMs: []VMSpec{twoDiskVM("nfc")}})
	vi, _ := env.VM("nfc")
	c := login(t, env)
	lease, info := exportLease(t, findVM(t, c, vi.InventoryPath))
	served, err := os.ReadFile(vi.Disks[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	if len(served) < 300_000 {
		t.Fatalf("fixture disk too small (%d bytes)", len(served))
	}
	return env, lease, info, served
}

func get(t *testing.T, env *Env, url, rng string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := httpClient(env).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestNFCFaithfulByDefault(t *testing.T) {
	env, _, info, served := nfcFixture(t, NFCBehavior{})
	url := info.DeviceUrl[0].Url
	// Like vSphere NFC: 200, chunked, no length, Range ignored.
	resp, body, err := get(t, env, url, "bytes=1000-")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.ContentLength != -1 || len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("status %d, length %d, transfer encoding %v", resp.StatusCode, resp.ContentLength, resp.TransferEncoding)
	}
	if resp.Header.Get("Content-Range") != "" || !bytes.Equal(body, served) {
		t.Fatal("the Range header must be ignored and the whole file sent")
	}
	reqs := env.NFCRequests()
	if len(reqs) != 1 || reqs[0].Range != "bytes=1000-" || reqs[0].Status != 200 || reqs[0].Bytes != int64(len(served)) || reqs[0].File != "disk-0.vmdk" {
		t.Fatalf("request log %+v", reqs)
	}
	// Unknown files and tickets are 404s.
	if resp, _, _ := get(t, env, url[:len(url)-len("disk-0.vmdk")]+"disk-9.vmdk", ""); resp.StatusCode != 404 {
		t.Fatalf("unknown file: %d", resp.StatusCode)
	}
	if resp, _, _ := get(t, env, "https://"+env.URL().Host+"/nfc/0123/disk-0.vmdk", ""); resp.StatusCode != 404 {
		t.Fatalf("unknown ticket: %d", resp.StatusCode)
	}
}

func TestNFCRangesAndResume(t *testing.T) {
	env, _, info, served := nfcFixture(t, NFCBehavior{Ranges: true})
	url := info.DeviceUrl[0].Url
	size := len(served)

	resp, body, err := get(t, env, url, "")
	if err != nil || resp.StatusCode != 200 || resp.ContentLength != int64(size) || !bytes.Equal(body, served) {
		t.Fatalf("full GET: %v status %d length %d", err, resp.StatusCode, resp.ContentLength)
	}
	resp, body, err = get(t, env, url, "bytes=1000-")
	if err != nil || resp.StatusCode != 206 || !bytes.Equal(body, served[1000:]) {
		t.Fatalf("ranged GET: %v status %d", err, resp.StatusCode)
	}
	if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 1000-%d/%d", size-1, size) {
		t.Fatalf("Content-Range %q", cr)
	}
	if resp, _, _ := get(t, env, url, fmt.Sprintf("bytes=%d-", size+10)); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("unsatisfiable range: %d", resp.StatusCode)
	}

	// Cut the first two requests of each file after 100,000 bytes; a client
	// resumes from where it stopped and ends with identical bytes.
	env.SetNFCBehavior(NFCBehavior{Ranges: true, DropAfter: 100_000, DropFirst: 2})
	var got []byte
	for attempt := 1; ; attempt++ {
		rng := ""
		if len(got) > 0 {
			rng = "bytes=" + strconv.Itoa(len(got)) + "-"
		}
		resp, body, err := get(t, env, url, rng)
		got = append(got, body...)
		if err == nil {
			if attempt != 3 || resp.StatusCode != 206 {
				t.Fatalf("finished on attempt %d with status %d", attempt, resp.StatusCode)
			}
			break
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) || len(body) != 100_000 || attempt > 2 {
			t.Fatalf("attempt %d: %v after %d bytes", attempt, err, len(body))
		}
	}
	if hexSHA(got) != hexSHA(served) {
		t.Fatal("resumed download differs from the served file")
	}
	var dropped int
	for _, r := range env.NFCRequests() {
		if r.Dropped {
			dropped++
			if r.Bytes != 100_000 {
				t.Fatalf("dropped request sent %d bytes", r.Bytes)
			}
		}
	}
	if dropped != 2 {
		t.Fatalf("%d dropped requests, want 2", dropped)
	}
	// Counts are per file: the second disk's first request is cut too.
	if _, body, err := get(t, env, info.DeviceUrl[1].Url, ""); !errors.Is(err, io.ErrUnexpectedEOF) || len(body) != 100_000 {
		t.Fatalf("second file: %v after %d bytes", err, len(body))
	}
}

func TestNFCDropWithoutRanges(t *testing.T) {
	// The NFC-faithful mode can drop too: a client must then restart the file.
	env, _, info, served := nfcFixture(t, NFCBehavior{DropAfter: 70_000})
	url := info.DeviceUrl[0].Url
	resp, body, err := get(t, env, url, "")
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(body) != 70_000 || resp.StatusCode != 200 {
		t.Fatalf("first GET: %v after %d bytes", err, len(body))
	}
	resp, body, err = get(t, env, url, "bytes=70000-")
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, served) {
		t.Fatalf("retry: %v status %d; want the whole file again", err, resp.StatusCode)
	}
}

func TestNFCHoldRelease(t *testing.T) {
	env, _, info, served := nfcFixture(t, NFCBehavior{HoldAfter: 128 << 10})
	done := make(chan []byte, 1)
	go func() {
		_, body, _ := get(t, env, info.DeviceUrl[0].Url, "")
		done <- body
	}()
	if err := env.WaitNFCHeld(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	env.ReleaseNFC()
	if body := <-done; !bytes.Equal(body, served) {
		t.Fatalf("released download: %d bytes, want %d", len(body), len(served))
	}
}

func TestLeaseEndCutsDownloads(t *testing.T) {
	cases := []struct {
		name    string
		end     func(env *Env, l *nfc.Lease) error
		outcome LeaseOutcome
	}{
		{"client abort", func(_ *Env, l *nfc.Lease) error { return l.Abort(context.Background(), nil) }, LeaseAborted},
		{"server failure", func(env *Env, l *nfc.Lease) error {
			return env.FailLease(l.Reference(), &types.HostCommunication{})
		}, LeaseFailed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, lease, info, served := nfcFixture(t, NFCBehavior{HoldAfter: 200_000})
			type result struct {
				body []byte
				err  error
			}
			done := make(chan result, 1)
			go func() {
				_, body, err := get(t, env, info.DeviceUrl[0].Url, "")
				done <- result{body, err}
			}()
			if err := env.WaitNFCHeld(context.Background(), 1); err != nil {
				t.Fatal(err)
			}
			if err := c.end(env, lease); err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.err == nil || len(r.body) != 200_000 || len(r.body) >= len(served) {
				t.Fatalf("download survived the lease: %v, %d bytes", r.err, len(r.body))
			}
			rec, _ := env.Lease(lease.Reference())
			reqs := env.NFCRequests()
			if rec.Outcome != c.outcome || !reqs[len(reqs)-1].Aborted {
				t.Fatalf("outcome %s, last request %+v", rec.Outcome, reqs[len(reqs)-1])
			}
		})
	}
}
