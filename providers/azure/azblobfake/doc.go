// Package azblobfake is an in-process Azure Blob service endpoint speaking
// the REST subset the real azblob SDK (github.com/Azure/azure-sdk-for-go/
// sdk/storage/azblob) uses for page blobs, so the unmodified SDK — and any
// plain HTTP client holding a SAS URL — runs against it. It is the blob side
// of the Azure provider's demo backend (no Node.js at run time) and a test
// target held, by a conformance suite run through the SDK, to what the
// Azurite emulator does (see conformance_test.go), and to Azure's REST
// reference where the two differ.
//
// New starts it on a loopback port. URL is the account endpoint,
// path-style as Azurite serves it: http://127.0.0.1:PORT/devstoreaccount1,
// containers and blobs below it. The account is the emulator's well-known
// development account (AccountName, AccountKey), so the same credentials
// work against Azurite.
//
// # Faithful to Azure
//
//   - Authorization. Shared Key ("Authorization: SharedKey account:sig"),
//     as "Authorize with Shared Key" defines it for the Blob service from
//     version 2009-09-19: the string-to-sign is the verb, Content-Encoding,
//     Content-Language, Content-Length (empty when zero from 2015-02-21),
//     Content-MD5, Content-Type, Date (empty when x-ms-date is sent),
//     If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since, Range,
//     the x-ms- headers (lowercased, values trimmed, sorted the way the
//     service's culture-aware comparison sorts them) and the canonicalized
//     resource ("/devstoreaccount1" + the path as sent — so the account
//     appears twice, as with the emulator — + the query parameters,
//     lowercased and sorted, values decoded, sorted and comma-joined);
//     HMAC-SHA256 with the account key, compared in constant time. x-ms-
//     version is required and must be a valid version from 2009-09-19, the
//     date within 15 minutes of the real clock.
//   - Service SAS, as "Create a service SAS" defines it: sv (2012-02-12 and
//     later), sr=b or sr=c, sp, optional st, se, spr, sip, the rscc/rscd/
//     rsce/rscl/rsct response overrides (applied to Get Blob) and sig; the
//     string-to-sign of the signed version (ses from 2020-12-06, sr and the
//     snapshot time from 2018-11-09, sip and spr from 2015-04-05, the
//     overrides from 2013-08-15, the "/blob/" resource prefix from
//     2015-02-21). A signature that does not match (tampered, or made for
//     another blob), a time outside st–se by the service clock, or a SAS
//     expired by ExpireSAS or Options.ExpireSASAfter is refused with 403
//     AuthenticationFailed and an XML error body with
//     AuthenticationErrorDetail. Permissions are checked per operation
//     (AuthorizationPermissionMismatch), spr=https over HTTP is
//     AuthorizationProtocolMismatch, sip AuthorizationSourceIPMismatch, a
//     blob SAS on a container operation AuthorizationResourceTypeMismatch.
//     Requests with no authorization get 404 ResourceNotFound: no container
//     is public.
//   - Operations: Create Container (201; 409 ContainerAlreadyExists; public
//     access 409 PublicAccessNotPermitted), Delete Container (202), Get
//     Container Properties, List Containers and List Blobs (prefix, marker,
//     maxresults 1–5000, delimiter), Put Blob (page blob: Content-Length 0,
//     x-ms-blob-content-length a multiple of 512 up to 8 TiB, sequence
//     number, content type, metadata; block blob: the body in one request,
//     Content-MD5 verified and stored), Put Page (update: up to 4 MiB,
//     Content-Length equal to the range, Content-MD5 verified; clear; the
//     range on the 512-byte grid and within the blob, else 416
//     InvalidPageRange; sequence-number conditions), Get Page Ranges (whole
//     blob or the Range/x-ms-range window, ranges overlapping it clipped to
//     it, adjacent ranges coalesced, maxresults and NextMarker paging), Get
//     Blob (whole: 200; ranged: 206 with Content-Range; Range and x-ms-range,
//     x-ms-range winning; a range starting at or after the end: 416
//     InvalidRange with Content-Range "bytes */size"; an end past the blob
//     is clipped; x-ms-range-get-content-md5: true returns the range's
//     Content-MD5 up to 4 MiB and 400 InvalidHeaderValue beyond, or without
//     a range), Get Blob Properties (HEAD) and Delete Blob (202).
//     If-Match, If-None-Match, If-Modified-Since and If-Unmodified-Since
//     apply (304 on reads, 412 ConditionNotMet on writes); If-Range is not
//     a Blob service header and is ignored, as Azure ignores it.
//   - Answers carry x-ms-request-id, x-ms-version, Date, ETag and
//     Last-Modified; errors carry x-ms-error-code and the
//     <Error><Code/><Message/>…</Error> body (with a byte order mark, as
//     Azure sends it) with the codes, statuses and messages of the Blob
//     service error tables.
//   - Sparse storage: a page blob holds only the pages written, as
//     extents; holes read as zeros and cost nothing, so a 1 TiB blob with a
//     few MiB written costs a few MiB. A page written with zeros is
//     written: it is listed by Get Page Ranges until cleared.
//
// # Where Azurite differs (the fake follows Azure)
//
// Azurite 3.35.0 lists adjacent writes as separate page ranges, serves a
// range above 4 MiB without an MD5 instead of refusing it, serves a range
// starting exactly at the end of the blob, answers an unaligned Put Page
// with 400, does not check a Put Page's Content-MD5, and refuses bad or
// expired SAS with AuthorizationFailure instead of AuthenticationFailed.
// The conformance suite pins each of these, so a change in either shows.
//
// # Not implemented
//
// Leases, snapshots and versions (a snapshot= or versionid= query names a
// blob that does not exist: 404 BlobNotFound), page range diffs
// (prevsnapshot), incremental copy, Put Page From URL, block lists, append
// blobs, tags, stored access policies (si: every identifier is unknown),
// account and user delegation SAS, Shared Key Lite and bearer tokens, CRC64
// (x-ms-content-crc64 is not checked), the container soft-delete delay, and
// TLS (spr=https is therefore always refused).
//
// # Tests and the demo
//
// Options inject faults (a share of requests answered 503 ServerBusy or 500
// InternalError, per-request latency, a per-request Fault hook that can also
// cut a Get Blob body mid-stream), pace each Get Blob body (StreamRate: one
// Azure connection is slow, which is why parallel ranged GETs pay), make
// SAS expire after a number of uses, and observe requests (Inspect). Stats counts operations, ranged GETs,
// bytes served and stored, faults, refusals and concurrent GETs; Blobs,
// PageRanges and ReadBlob show what is stored. CreateContainer,
// PutPageBlob, PutPageBlobFrom (content read lazily from an io.ReaderAt:
// no memory for large demo disks) and WritePages seed content without
// HTTP; SASURL mints a read SAS as a disk grant would, and ExpireSAS
// revokes SAS for a blob the way a revoked grant stops working.
package azblobfake
