package azblobfake_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/hypersdk/hypersdk/providers/azure/azblobfake"
	"github.com/hypersdk/hypersdk/providers/azure/azuritetest"
)

// target is a Blob endpoint the conformance suite runs against.
type target struct {
	name    string
	url     string // account endpoint
	azurite bool
}

// TestConformance runs one suite, through the real azblob SDK, against the
// real emulator (Azurite) and against azblobfake, so the fake is held to
// what the emulator does — and, where Azurite departs from Azure's REST
// reference, to Azure (each such case is marked).
func TestConformance(t *testing.T) {
	fake := azblobfake.New(azblobfake.Options{})
	t.Cleanup(fake.Close)
	az := azuritetest.Start(t)
	for _, tg := range []target{{name: "azurite", url: az.URL, azurite: true}, {name: "azblobfake", url: fake.URL()}} {
		t.Run(tg.name, func(t *testing.T) { runConformance(t, tg) })
	}
}

// noRetry keeps refusals from being retried (the SDK retries 5xx and
// timeouts by default; the suite wants to see each answer once).
var noRetry = &azblob.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}}

func sharedKey(t *testing.T) *azblob.SharedKeyCredential {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(azblobfake.AccountName, azblobfake.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// respErr returns the status and error code of an SDK error.
func respErr(t *testing.T, err error) (int, string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want a service error, got %v", err)
	}
	return re.StatusCode, re.ErrorCode
}

func wantErr(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %d %s", what, status, code)
	}
	gotStatus, gotCode := respErr(t, err)
	if gotStatus != status || gotCode != code {
		t.Fatalf("%s: got %d %s, want %d %s", what, gotStatus, gotCode, status, code)
	}
}

// layout is the test disk: a model of its pages next to the bytes.
type layout struct {
	size    int64
	data    []byte
	written []bool // by page
}

func (l *layout) write(off int64, b []byte) {
	copy(l.data[off:], b)
	for p := off / 512; p < (off+int64(len(b)))/512; p++ {
		l.written[p] = true
	}
}

func (l *layout) clear(off, n int64) {
	clear(l.data[off : off+n])
	for p := off / 512; p < (off+n)/512; p++ {
		l.written[p] = false
	}
}

// ranges is the expected Get Page Ranges answer: written pages, adjacent
// ones coalesced.
func (l *layout) ranges() [][2]int64 {
	var out [][2]int64
	for p := range l.written {
		if !l.written[p] {
			continue
		}
		start, end := int64(p)*512, int64(p)*512+511
		if k := len(out); k > 0 && out[k-1][1]+1 == start {
			out[k-1][1] = end
			continue
		}
		out = append(out, [2]int64{start, end})
	}
	return out
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func runConformance(t *testing.T, tg target) {
	ctx := context.Background()
	cred := sharedKey(t)
	svc, err := azblob.NewClientWithSharedKeyCredential(tg.url, cred, noRetry)
	if err != nil {
		t.Fatal(err)
	}
	const cname = "conformance"
	if _, err := svc.CreateContainer(ctx, cname, nil); err != nil {
		t.Fatalf("create container: %v", err)
	}
	_, err = svc.CreateContainer(ctx, cname, nil)
	wantErr(t, "create container twice", err, 409, "ContainerAlreadyExists")

	const bname = "disks/os disk.vhd" // a slash and a space: escaping is signed
	blobURL := tg.url + "/" + cname + "/disks/os%20disk.vhd"
	pb, err := pageblob.NewClientWithSharedKeyCredential(blobURL, cred, &pageblob.ClientOptions{ClientOptions: noRetry.ClientOptions})
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	if _, err := pb.Create(ctx, size, nil); err != nil {
		t.Fatalf("create page blob: %v", err)
	}

	// The layout: data at page but not 4 KiB boundaries, a 4 MiB write
	// with a cleared hole inside, an explicitly written zero page (written:
	// listed), two adjacent writes (coalesced), and the blob's last page.
	rng := rand.New(rand.NewPCG(1, 2))
	l := &layout{size: size, data: make([]byte, size), written: make([]bool, size/512)}
	put := func(off int64, b []byte) {
		t.Helper()
		if _, err := pb.UploadPages(ctx, body(b), blob.HTTPRange{Offset: off, Count: int64(len(b))}, nil); err != nil {
			t.Fatalf("put page %d+%d: %v", off, len(b), err)
		}
		l.write(off, b)
	}
	put(0, randomBytes(rng, 4096))
	put(1<<20+512, randomBytes(rng, 3*512))
	put(8<<20, make([]byte, 512))
	put(20<<20, randomBytes(rng, 4<<20))
	put(30<<20, randomBytes(rng, 1<<20))
	put(31<<20, randomBytes(rng, 1<<20))
	put(size-512, randomBytes(rng, 512))
	if _, err := pb.ClearPages(ctx, blob.HTTPRange{Offset: 21<<20 + 1024, Count: 8192}, nil); err != nil {
		t.Fatalf("clear pages: %v", err)
	}
	l.clear(21<<20+1024, 8192)

	t.Run("page ranges", func(t *testing.T) {
		// Azure keeps a blob's pages as one set and reports adjacent
		// writes as one range, as the fake does; Azurite lists each write
		// it kept: compare Azurite after coalescing.
		got := pageRanges(t, pb, nil)
		if tg.azurite {
			got = coalesce(got)
		}
		if want := l.ranges(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("page ranges\n got %v\nwant %v", got, want)
		}
		// Within a range (x-ms-range form from the SDK's Range option):
		// ranges overlapping it, clipped to it.
		got = pageRanges(t, pb, &pageblob.GetPageRangesOptions{Range: blob.HTTPRange{Offset: 20 << 20, Count: 12 << 20}})
		if tg.azurite {
			got = coalesce(got)
		}
		want := [][2]int64{{20 << 20, 21<<20 + 1023}, {21<<20 + 1024 + 8192, 24<<20 - 1}, {30 << 20, 32<<20 - 1}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("page ranges in 20-32 MiB\n got %v\nwant %v", got, want)
		}
	})

	t.Run("x-ms-range form", func(t *testing.T) {
		// The SDK sends Range; the service takes x-ms-range as well (and
		// prefers it). A per-call policy, which runs before signing, moves
		// the header.
		xpb, err := pageblob.NewClientWithSharedKeyCredential(blobURL, cred, &pageblob.ClientOptions{ClientOptions: policy.ClientOptions{
			Retry: policy.RetryOptions{MaxRetries: -1}, PerCallPolicies: []policy.Policy{xmsRange{}}}})
		if err != nil {
			t.Fatal(err)
		}
		got := pageRanges(t, xpb, &pageblob.GetPageRangesOptions{Range: blob.HTTPRange{Offset: 1 << 20, Count: 8 << 20}})
		if tg.azurite {
			got = coalesce(got)
		}
		if want := [][2]int64{{1<<20 + 512, 1<<20 + 2047}, {8 << 20, 8<<20 + 511}}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("page ranges in 1-9 MiB by x-ms-range\n got %v\nwant %v", got, want)
		}
		r := blob.HTTPRange{Offset: 20<<20 + 333, Count: 100000}
		if got := download(t, xpb.BlobClient(), &blob.DownloadStreamOptions{Range: r}); !bytes.Equal(got, l.data[r.Offset:r.Offset+r.Count]) {
			t.Fatal("x-ms-range read: content differs")
		}
	})

	t.Run("page ranges paged", func(t *testing.T) {
		got := pageRanges(t, pb, &pageblob.GetPageRangesOptions{MaxResults: to.Ptr[int32](2)})
		if tg.azurite {
			got = coalesce(got)
		}
		if want := l.ranges(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("page ranges 2 at a time\n got %v\nwant %v", got, want)
		}
	})

	t.Run("conditions and checksums", func(t *testing.T) {
		props, err := pb.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		stale := azcore.ETag(`"0x1"`)
		_, err = pb.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: 0, Count: 512},
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &stale}}})
		wantErr(t, "read with a stale If-Match", err, 412, "ConditionNotMet")
		if _, err := pb.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: 0, Count: 512},
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: props.ETag}}}); err != nil {
			t.Fatalf("read with the current If-Match: %v", err)
		}
		// Azure checks a Put Page's Content-MD5 (400 Md5Mismatch);
		// Azurite ignores it and writes.
		bad := md5.Sum([]byte("not these bytes"))
		_, err = pb.UploadPages(ctx, body(make([]byte, 512)), blob.HTTPRange{Offset: 0, Count: 512},
			&pageblob.UploadPagesOptions{TransactionalValidation: blob.TransferValidationTypeMD5(bad[:])})
		if tg.azurite {
			if err != nil {
				t.Fatalf("azurite now refuses a wrong Content-MD5 (%v): update the fake's note", err)
			}
			l.write(0, make([]byte, 512))
		} else {
			wantErr(t, "put page with a wrong Content-MD5", err, 400, "Md5Mismatch")
		}
		if got := download(t, pb.BlobClient(), &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: 0, Count: 4096}}); !bytes.Equal(got, l.data[:4096]) {
			t.Fatal("a refused put page changed the blob")
		}
	})

	t.Run("block blob", func(t *testing.T) {
		data := randomBytes(rng, 300000)
		bb := svc.ServiceClient().NewContainerClient(cname).NewBlockBlobClient("notes/readme.txt")
		if _, err := bb.Upload(ctx, body(data), nil); err != nil {
			t.Fatalf("put blob: %v", err)
		}
		r := blob.HTTPRange{Offset: 1234, Count: 5678}
		if got := download(t, bb.BlobClient(), &blob.DownloadStreamOptions{Range: r}); !bytes.Equal(got, data[1234:1234+5678]) {
			t.Fatal("block blob range: content differs")
		}
		props, err := bb.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if sum := md5.Sum(data); *props.BlobType != blob.BlobTypeBlockBlob || !bytes.Equal(props.ContentMD5, sum[:]) {
			t.Fatalf("block blob properties: %s, MD5 %x", *props.BlobType, props.ContentMD5)
		}
		_, err = pageblob.NewClientWithSharedKeyCredential(bb.URL(), cred, nil)
		if err != nil {
			t.Fatal(err)
		}
		asPage, _ := pageblob.NewClientWithSharedKeyCredential(bb.URL(), cred, &pageblob.ClientOptions{ClientOptions: noRetry.ClientOptions})
		pager := asPage.NewGetPageRangesPager(nil)
		_, err = pager.NextPage(ctx)
		wantErr(t, "page ranges of a block blob", err, 409, "InvalidBlobType")
		if _, err := bb.Delete(ctx, nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("whole blob", func(t *testing.T) {
		got := download(t, pb.BlobClient(), nil)
		if sha256.Sum256(got) != sha256.Sum256(l.data) {
			t.Fatal("whole-blob content differs from what was written")
		}
		props, err := pb.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *props.ContentLength != size || *props.BlobType != blob.BlobTypePageBlob {
			t.Fatalf("properties: length %d type %s", *props.ContentLength, *props.BlobType)
		}
	})

	t.Run("ranged reads with MD5", func(t *testing.T) {
		for _, r := range []blob.HTTPRange{
			{Offset: 1000, Count: 5000},          // unaligned, data into a hole
			{Offset: 1<<20 + 100, Count: 2048},   // around the 3-page write
			{Offset: 21 << 20, Count: 4 << 20},   // exactly 4 MiB, across the cleared hole
			{Offset: size - 700, Count: 700},     // the unaligned end
			{Offset: 40 << 20, Count: 1 << 20},   // all hole
			{Offset: size - 100, Count: 1 << 20}, // past the end: clipped
		} {
			resp, err := pb.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: r, RangeGetContentMD5: to.Ptr(true)})
			if err != nil {
				t.Fatalf("range %+v: %v", r, err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			end := min(r.Offset+r.Count, size)
			want := l.data[r.Offset:end]
			if !bytes.Equal(got, want) {
				t.Fatalf("range %+v: content differs", r)
			}
			sum := md5.Sum(want)
			if !bytes.Equal(resp.ContentMD5, sum[:]) {
				t.Fatalf("range %+v: Content-MD5 %x, want %x", r, resp.ContentMD5, sum)
			}
			if wantCR := fmt.Sprintf("bytes %d-%d/%d", r.Offset, end-1, size); resp.ContentRange == nil || *resp.ContentRange != wantCR {
				t.Fatalf("range %+v: Content-Range %v, want %s", r, resp.ContentRange, wantCR)
			}
		}
		// Beyond 4 MiB Azure refuses the MD5 request (400
		// InvalidHeaderValue); Azurite serves the range without an MD5.
		resp, err := pb.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: 0, Count: 4<<20 + 512}, RangeGetContentMD5: to.Ptr(true)})
		if tg.azurite {
			if err != nil {
				t.Fatalf("azurite, 4 MiB + 512 with MD5: %v", err)
			}
			resp.Body.Close()
			if resp.ContentMD5 != nil {
				t.Fatal("azurite now returns an MD5 beyond 4 MiB: update the fake's note")
			}
		} else {
			wantErr(t, "MD5 of 4 MiB + 512", err, 400, "InvalidHeaderValue")
		}
		// A range starting at the end: Azure answers 416 InvalidRange;
		// Azurite only refuses ranges starting after the end.
		_, err = pb.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: size + 512, Count: 512}})
		wantErr(t, "range after the end", err, 416, "InvalidRange")
		if !tg.azurite {
			_, err = pb.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: size, Count: 512}})
			wantErr(t, "range at the end", err, 416, "InvalidRange")
		}
	})

	t.Run("service SAS", func(t *testing.T) {
		now := time.Now().UTC()
		sign := func(v sas.BlobSignatureValues) string {
			t.Helper()
			qp, err := v.SignWithSharedKey(cred)
			if err != nil {
				t.Fatal(err)
			}
			return qp.Encode()
		}
		readSAS := func(blobName string, start, expiry time.Time) string {
			return sign(sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, StartTime: start, ExpiryTime: expiry,
				Permissions: (&sas.BlobPermissions{Read: true}).String(), ContainerName: cname, BlobName: blobName})
		}
		anon := func(query string) *pageblob.Client {
			c, err := pageblob.NewClientWithNoCredential(blobURL+"?"+query, &pageblob.ClientOptions{ClientOptions: noRetry.ClientOptions})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}

		good := anon(readSAS(bname, now.Add(-time.Hour), now.Add(time.Hour)))
		r := blob.HTTPRange{Offset: 20<<20 + 4096, Count: 1 << 20}
		if got := download(t, good.BlobClient(), &blob.DownloadStreamOptions{Range: r}); !bytes.Equal(got, l.data[r.Offset:r.Offset+r.Count]) {
			t.Fatal("SAS range read: content differs")
		}
		if got := coalesce(pageRanges(t, good, nil)); fmt.Sprint(got) != fmt.Sprint(l.ranges()) {
			t.Fatalf("SAS page ranges: %v", got)
		}
		// A container SAS with read reaches the blob too.
		csas := sign(sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: now.Add(time.Hour),
			Permissions: (&sas.ContainerPermissions{Read: true, List: true}).String(), ContainerName: cname})
		if got := download(t, anon(csas).BlobClient(), &blob.DownloadStreamOptions{Range: r}); !bytes.Equal(got, l.data[r.Offset:r.Offset+r.Count]) {
			t.Fatal("container SAS range read: content differs")
		}

		// Refusals. Azure answers a SAS whose signature does not match or
		// whose time is out with 403 AuthenticationFailed; Azurite with 403
		// AuthorizationFailure.
		refused := "AuthenticationFailed"
		if tg.azurite {
			refused = "AuthorizationFailure"
		}
		_, err := anon(readSAS(bname, now.Add(-2*time.Hour), now.Add(-time.Hour))).DownloadStream(ctx, &blob.DownloadStreamOptions{Range: r})
		wantErr(t, "expired SAS", err, 403, refused)
		_, err = anon(readSAS(bname, now.Add(time.Hour), now.Add(2*time.Hour))).DownloadStream(ctx, &blob.DownloadStreamOptions{Range: r})
		wantErr(t, "not yet valid SAS", err, 403, refused)

		q, _ := url.ParseQuery(readSAS(bname, time.Time{}, now.Add(time.Hour)))
		sig := []byte(q.Get("sig"))
		sig[3] ^= 1
		q.Set("sig", string(sig))
		_, err = anon(q.Encode()).DownloadStream(ctx, &blob.DownloadStreamOptions{Range: r})
		wantErr(t, "tampered signature", err, 403, refused)

		q, _ = url.ParseQuery(readSAS(bname, time.Time{}, now.Add(time.Hour)))
		q.Set("se", now.Add(48*time.Hour).Format(time.RFC3339)) // extended by hand
		_, err = anon(q.Encode()).DownloadStream(ctx, &blob.DownloadStreamOptions{Range: r})
		wantErr(t, "tampered expiry", err, 403, refused)

		_, err = anon(readSAS("disks/other.vhd", time.Time{}, now.Add(time.Hour))).DownloadStream(ctx, &blob.DownloadStreamOptions{Range: r})
		wantErr(t, "SAS of another blob", err, 403, refused)

		wsas := sign(sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: now.Add(time.Hour),
			Permissions: (&sas.BlobPermissions{Write: true}).String(), ContainerName: cname, BlobName: bname})
		_, err = anon(wsas).DownloadStream(ctx, &blob.DownloadStreamOptions{Range: r})
		wantErr(t, "write-only SAS reading", err, 403, "AuthorizationPermissionMismatch")
		_, err = anon(readSAS(bname, time.Time{}, now.Add(time.Hour))).UploadPages(ctx, body(make([]byte, 512)), blob.HTTPRange{Offset: 0, Count: 512}, nil)
		wantErr(t, "read-only SAS writing", err, 403, "AuthorizationPermissionMismatch")
	})

	t.Run("bad requests", func(t *testing.T) {
		// Azure refuses a page range off the 512-byte grid with 416
		// InvalidPageRange; Azurite with a 400.
		_, err := pb.UploadPages(ctx, body(make([]byte, 1000)), blob.HTTPRange{Offset: 0, Count: 1000}, nil)
		if tg.azurite {
			if st, _ := respErr(t, err); st != 400 {
				t.Fatalf("unaligned put page: status %d", st)
			}
		} else {
			wantErr(t, "unaligned put page", err, 416, "InvalidPageRange")
		}
		_, err = pb.UploadPages(ctx, body(make([]byte, 512)), blob.HTTPRange{Offset: size, Count: 512}, nil)
		if tg.azurite {
			if st, _ := respErr(t, err); st != 416 {
				t.Fatalf("put page past the end: status %d", st)
			}
		} else {
			wantErr(t, "put page past the end", err, 416, "InvalidPageRange")
		}
		_, err = pb.Create(ctx, 1000, nil)
		if st, _ := respErr(t, err); st != 400 {
			t.Fatalf("unaligned page blob size: status %d", st)
		}
	})

	t.Run("list and delete", func(t *testing.T) {
		cc := svc.ServiceClient().NewContainerClient(cname)
		var names []string
		pager := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{MaxResults: to.Ptr[int32](1)})
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range page.Segment.BlobItems {
				names = append(names, *b.Name)
				if *b.Properties.ContentLength != size || *b.Properties.BlobType != blob.BlobTypePageBlob {
					t.Fatalf("listed %s: %d bytes, %s", *b.Name, *b.Properties.ContentLength, *b.Properties.BlobType)
				}
			}
		}
		if strings.Join(names, ",") != bname {
			t.Fatalf("listed %q", names)
		}
		if _, err := pb.Delete(ctx, nil); err != nil {
			t.Fatal(err)
		}
		_, err := pb.GetProperties(ctx, nil)
		wantErr(t, "properties of a deleted blob", err, 404, "BlobNotFound")
		_, err = pb.DownloadStream(ctx, nil)
		wantErr(t, "get of a deleted blob", err, 404, "BlobNotFound")
		if _, err := svc.DeleteContainer(ctx, cname, nil); err != nil {
			t.Fatal(err)
		}
		_, err = pb.GetProperties(ctx, nil)
		wantErr(t, "blob of a deleted container", err, 404, "ContainerNotFound")
	})
}

func pageRanges(t *testing.T, pb *pageblob.Client, o *pageblob.GetPageRangesOptions) [][2]int64 {
	t.Helper()
	var out [][2]int64
	pager := pb.NewGetPageRangesPager(o)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatalf("get page ranges: %v", err)
		}
		for _, r := range page.PageRange {
			out = append(out, [2]int64{*r.Start, *r.End})
		}
	}
	return out
}

// xmsRange moves the Range header to x-ms-range.
type xmsRange struct{}

func (xmsRange) Do(req *policy.Request) (*http.Response, error) {
	h := req.Raw().Header
	if v := h.Get("Range"); v != "" {
		h.Del("Range")
		h.Set("x-ms-range", v)
	}
	return req.Next()
}

// coalesce merges adjacent ranges.
func coalesce(in [][2]int64) [][2]int64 {
	var out [][2]int64
	for _, r := range in {
		if k := len(out); k > 0 && out[k-1][1]+1 == r[0] {
			out[k-1][1] = r[1]
			continue
		}
		out = append(out, r)
	}
	return out
}

func download(t *testing.T, b *blob.Client, o *blob.DownloadStreamOptions) []byte {
	t.Helper()
	resp, err := b.DownloadStream(context.Background(), o)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("download body: %v", err)
	}
	return got
}

// body wraps bytes as the io.ReadSeekCloser UploadPages takes.
func body(b []byte) io.ReadSeekCloser { return streaming.NopCloser(bytes.NewReader(b)) }
