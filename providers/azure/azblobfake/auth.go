package azblobfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

func (s *Server) sign(stringToSign string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func equalSig(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// authorize authenticates the request (Shared Key header, service SAS in the
// query, or nothing) and checks that its authorization covers rc.op.
func (s *Server) authorize(r *http.Request, rc *reqCtx) *storageError {
	if a := r.Header.Get("Authorization"); a != "" {
		rc.auth = AuthSharedKey
		return s.sharedKey(r, rc, a)
	}
	if q := r.URL.Query(); q.Has("sig") {
		rc.auth = AuthSAS
		return s.serviceSAS(r, rc, q)
	}
	// No container is public here: Azure answers an anonymous request for
	// a private resource as if the resource did not exist.
	rc.auth = AuthAnonymous
	return errResourceNotFound()
}

// maxClockSkew is how far a Shared Key request's date may be from the
// service's clock.
const maxClockSkew = 15 * time.Minute

// sharedKey verifies "Authorization: SharedKey account:signature" as the
// "Authorize with Shared Key" reference defines it for the Blob service
// (versions 2009-09-19 and later).
func (s *Server) sharedKey(r *http.Request, rc *reqCtx, authz string) *storageError {
	scheme, cred, ok := strings.Cut(authz, " ")
	if !ok || scheme != "SharedKey" {
		// Shared Key Lite and bearer tokens are not implemented.
		return errInvalidAuthInfo()
	}
	account, sig, ok := strings.Cut(cred, ":")
	if !ok || sig == "" {
		return errInvalidAuthInfo()
	}
	if account != AccountName {
		return errAuthFailed("The account " + account + " is not served here.")
	}
	if rc.version == "" {
		return errMissingHeader("x-ms-version")
	}
	date := r.Header.Get("x-ms-date")
	if date == "" {
		date = r.Header.Get("Date")
	}
	if date == "" {
		return errAuthFailed("Request date header not specified.")
	}
	t, err := http.ParseTime(date)
	if err != nil {
		return errInvalidHeader("x-ms-date", date)
	}
	if d := time.Since(t); d > maxClockSkew || d < -maxClockSkew {
		return errAuthFailed("Request date header too old: '" + date + "'")
	}
	sts := sharedKeyStringToSign(r, rc.version)
	if !equalSig(sig, s.sign(sts)) {
		return errAuthFailed("The MAC signature found in the HTTP request is not the same as any computed signature. Server used following string to sign: '" + sts + "'.")
	}
	return nil
}

// sharedKeyStringToSign builds the Blob service's Shared Key string-to-sign:
// verb, the standard headers in their fixed order, the canonicalized x-ms-
// headers and the canonicalized resource.
func sharedKeyStringToSign(r *http.Request, version string) string {
	h := r.Header
	contentLength := h.Get("Content-Length")
	if contentLength == "" && r.ContentLength > 0 {
		contentLength = strconv.FormatInt(r.ContentLength, 10)
	}
	// From 2015-02-21 a zero Content-Length is signed as the empty string.
	if contentLength == "0" && version >= "2015-02-21" {
		contentLength = ""
	}
	// The Date slot is empty when x-ms-date carries the date.
	date := h.Get("Date")
	if h.Get("x-ms-date") != "" {
		date = ""
	}
	return strings.Join([]string{
		r.Method,
		h.Get("Content-Encoding"),
		h.Get("Content-Language"),
		contentLength,
		h.Get("Content-MD5"),
		h.Get("Content-Type"),
		date,
		h.Get("If-Modified-Since"),
		h.Get("If-Match"),
		h.Get("If-None-Match"),
		h.Get("If-Unmodified-Since"),
		h.Get("Range"),
		canonicalizedHeaders(h),
		canonicalizedResource(r.URL),
	}, "\n")
}

// canonicalizedHeaders lists the x-ms- headers as "name:value" lines, names
// lowercased, repeated values joined with commas, values trimmed, in the
// order the service sorts them (see headerLess).
func canonicalizedHeaders(h http.Header) string {
	var names []string
	vals := map[string][]string{}
	for k, v := range h {
		n := strings.ToLower(strings.TrimSpace(k))
		if !strings.HasPrefix(n, "x-ms-") {
			continue
		}
		if _, dup := vals[n]; !dup {
			names = append(names, n)
		}
		for _, x := range v {
			vals[n] = append(vals[n], strings.TrimSpace(x))
		}
	}
	slices.SortFunc(names, headerCompare)
	lines := make([]string, len(names))
	for i, n := range names {
		lines[i] = n + ":" + strings.Join(vals[n], ",")
	}
	return strings.Join(lines, "\n")
}

// headerCompare orders header names the way the service's culture-aware
// string comparison does, which is what the Azure SDKs reproduce: first by
// the primary weights of the characters with hyphens and apostrophes
// ignored (digits before letters, letters case-insensitively, the other
// token characters before digits), a name that is a prefix of the other
// first; on a tie, walking both names together, at the first position where
// exactly one of them holds a hyphen or apostrophe the other name sorts
// first (an apostrophe before a hyphen), and a name that ends first sorts
// first. For the lowercase letters and hyphens of real x-ms- headers this is
// plain byte order with hyphens skipped.
func headerCompare(a, b string) int {
	i, j := 0, 0
	for {
		for i < len(a) && primaryWeight(a[i]) == 0 {
			i++
		}
		for j < len(b) && primaryWeight(b[j]) == 0 {
			j++
		}
		switch {
		case i == len(a) && j == len(b):
			return secondaryCompare(a, b)
		case i == len(a):
			return -1
		case j == len(b):
			return 1
		}
		if wa, wb := primaryWeight(a[i]), primaryWeight(b[j]); wa != wb {
			if wa < wb {
				return -1
			}
			return 1
		}
		i++
		j++
	}
}

func secondaryCompare(a, b string) int {
	for k := 0; ; k++ {
		ea, eb := k >= len(a), k >= len(b)
		switch {
		case ea && eb:
			return 0
		case ea:
			return -1
		case eb:
			return 1
		}
		sa, sb := secondaryWeight(a[k]), secondaryWeight(b[k])
		switch {
		case sa == sb:
		case sa == 0:
			return -1
		case sb == 0:
			return 1
		case sa < sb:
			return -1
		default:
			return 1
		}
	}
}

func secondaryWeight(c byte) int {
	switch c {
	case '\'':
		return 1
	case '-':
		return 2
	}
	return 0
}

// primaryWeight ranks the characters a header name can hold; 0 means
// ignored at the first level.
func primaryWeight(c byte) int {
	switch {
	case c >= 'a' && c <= 'z':
		return 100 + int(c-'a')
	case c >= 'A' && c <= 'Z':
		return 100 + int(c-'A')
	case c >= '0' && c <= '9':
		return 50 + int(c-'0')
	}
	// The remaining token characters, in the service's order.
	if k := strings.IndexByte("!#$%&*.^_`|~+", c); k >= 0 {
		return 1 + k
	}
	return 0
}

// canonicalizedResource is "/account" + the URI path as sent + one
// "\nname:value[,value…]" line per query parameter, names lowercased and
// sorted, values decoded and sorted.
func canonicalizedResource(u *url.URL) string {
	var b strings.Builder
	b.WriteString("/" + AccountName)
	if p := u.EscapedPath(); p != "" {
		b.WriteString(p)
	} else {
		b.WriteString("/")
	}
	q, _ := url.ParseQuery(u.RawQuery)
	merged := map[string][]string{}
	for k, v := range q {
		lk := strings.ToLower(k)
		merged[lk] = append(merged[lk], v...)
	}
	names := make([]string, 0, len(merged))
	for k := range merged {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, n := range names {
		v := merged[n]
		slices.Sort(v)
		b.WriteString("\n" + n + ":" + strings.Join(v, ","))
	}
	return b.String()
}

// sasParams is a verified service SAS.
type sasParams struct {
	sig         string
	resource    string // "b" or "c"
	permissions string
	expiry      time.Time
	overrides   map[string]string // response header → value (rscc…)
}

// sasTimeLayouts are the ISO 8601 UTC forms st and se may take.
var sasTimeLayouts = []string{"2006-01-02T15:04:05.9999999Z", "2006-01-02T15:04:05Z", "2006-01-02T15:04Z", "2006-01-02"}

func parseSASTime(v string) (time.Time, bool) {
	for _, l := range sasTimeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// Permission letters a service SAS may grant, by signed resource, in the
// order the reference lists them.
const (
	blobPermissions      = "racwdxytmeopi"
	containerPermissions = "racwdxyltfmeopi"
)

// required is the SAS permission each operation needs; any one of the
// letters suffices.
var required = map[string]string{
	OpGetBlob:                "r",
	OpGetBlobProperties:      "r",
	OpGetPageRanges:          "r",
	OpGetContainerProperties: "r",
	OpPutPage:                "w",
	OpPutBlob:                "cw",
	OpDeleteBlob:             "d",
	OpListBlobs:              "l",
}

// serviceSAS verifies a service SAS (sr=b or sr=c) signed with the account
// key, following "Create a service SAS": the string-to-sign of the signed
// version, the validity interval by the service clock, the protocol, the
// IP range and the permissions the operation needs.
func (s *Server) serviceSAS(r *http.Request, rc *reqCtx, q url.Values) *storageError {
	get := func(k string) string { return q.Get(k) }
	sv, sr, sp, se, sig := get("sv"), get("sr"), get("sp"), get("se"), get("sig")
	for _, k := range []string{"sv", "sr", "sp", "se"} {
		if get(k) == "" {
			if k == "se" && get("si") != "" {
				continue
			}
			return errAuthFailed(k + " is mandatory. Cannot be empty")
		}
	}
	if !validVersion(sv) || sv < "2012-02-12" {
		return errAuthFailed("sv is not a supported version: " + sv)
	}
	if q.Has("skoid") || q.Has("sktid") {
		return errAuthFailed("User delegation SAS is not supported here.")
	}
	if rc.version == "" {
		rc.version = sv
	}
	if si := get("si"); si != "" {
		// No stored access policies exist here (Set Container ACL is not
		// implemented), so every identifier is unknown.
		return errAuthFailed("Access policy " + si + " not found on the container.")
	}
	var canon string
	if sv >= "2015-02-21" {
		canon = "/blob"
	}
	canon += "/" + AccountName + "/" + rc.container
	switch sr {
	case "b":
		if rc.blob == "" {
			return errResourceTypeMismatch()
		}
		canon += "/" + rc.blob
	case "c":
		if rc.container == "" {
			return errResourceTypeMismatch()
		}
	default:
		return errAuthFailed("Signed resource " + sr + " is not supported here.")
	}
	fields := []string{sp, get("st"), se, canon, get("si")}
	if sv >= "2015-04-05" {
		fields = append(fields, get("sip"), get("spr"))
	}
	fields = append(fields, sv)
	if sv >= "2018-11-09" {
		fields = append(fields, sr, "") // signed snapshot time: only for sr=bs
	}
	if sv >= "2020-12-06" {
		fields = append(fields, get("ses"))
	}
	if sv >= "2013-08-15" {
		fields = append(fields, get("rscc"), get("rscd"), get("rsce"), get("rscl"), get("rsct"))
	}
	sts := strings.Join(fields, "\n")
	if !equalSig(sig, s.sign(sts)) {
		return errAuthFailed("Signature did not match. String to sign used was " + strings.ReplaceAll(sts, "\n", "\\n"))
	}

	now := rc.start
	expiry, ok := parseSASTime(se)
	if !ok {
		return errAuthFailed("se is not in an ISO 8601 UTC format: " + se)
	}
	start := time.Time{}
	if st := get("st"); st != "" {
		if start, ok = parseSASTime(st); !ok {
			return errAuthFailed("st is not in an ISO 8601 UTC format: " + st)
		}
	}
	outOfTime := func() *storageError {
		return errAuthFailed("Signature not valid in the specified time frame: Start [" + fmtSASDetailTime(start) +
			"] - Expiry [" + fmtSASDetailTime(expiry) + "] - Current [" + fmtSASDetailTime(now) + "]")
	}
	if now.After(expiry) || (!start.IsZero() && now.Before(start)) {
		return outOfTime()
	}
	s.mu.Lock()
	st := s.sas[sig]
	if st == nil {
		st = &sasState{container: rc.container}
		if sr == "b" {
			st.blob = rc.blob
		}
		s.sas[sig] = st
	}
	st.uses++
	expired := st.expired || (s.opts.ExpireSASAfter > 0 && st.uses > s.opts.ExpireSASAfter)
	s.mu.Unlock()
	if expired {
		return outOfTime()
	}

	switch spr := get("spr"); spr {
	case "", "https,http":
	case "https":
		if r.TLS == nil {
			return errProtocolMismatch()
		}
	default:
		return errAuthFailed("spr is not a valid protocol: " + spr)
	}
	if sip := get("sip"); sip != "" && !ipAllowed(sip, r.RemoteAddr) {
		return errSourceIPMismatch()
	}

	allowed := blobPermissions
	if sr == "c" {
		allowed = containerPermissions
	}
	for _, c := range sp {
		if !strings.ContainsRune(allowed, c) {
			return errAuthFailed("sp has a permission that is not valid for sr=" + sr + ": " + string(c))
		}
	}
	need, ok := required[rc.op]
	if !ok {
		// Container creation and deletion, and account listings, take
		// the account key.
		return errPermissionMismatch()
	}
	if rc.op == OpListBlobs && sr != "c" {
		return errResourceTypeMismatch()
	}
	if !strings.ContainsAny(sp, need) {
		return errPermissionMismatch()
	}
	rc.sas = &sasParams{sig: sig, resource: sr, permissions: sp, expiry: expiry, overrides: map[string]string{}}
	for k, h := range map[string]string{"rscc": "Cache-Control", "rscd": "Content-Disposition", "rsce": "Content-Encoding", "rscl": "Content-Language", "rsct": "Content-Type"} {
		if v := get(k); v != "" {
			rc.sas.overrides[h] = v
		}
	}
	return nil
}

func fmtSASDetailTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")
}

// ipAllowed checks the client address against sip: one address or an
// inclusive "from-to" range.
func ipAllowed(sip, remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	from, to, isRange := strings.Cut(sip, "-")
	lo, err := netip.ParseAddr(from)
	if err != nil {
		return false
	}
	hi := lo
	if isRange {
		if hi, err = netip.ParseAddr(to); err != nil {
			return false
		}
	}
	return ip.Compare(lo) >= 0 && ip.Compare(hi) <= 0
}

// ExpireSAS makes every SAS seen so far (or minted with SASURL) for the
// given blob expire: later requests with it are refused with 403
// AuthenticationFailed as if its expiry had passed, as a revoked grant is.
// An empty blob matches every blob of the container, an empty container
// every SAS. A SAS first presented afterwards is judged normally.
func (s *Server) ExpireSAS(container, blob string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.sas {
		if (container == "" || st.container == container) && (blob == "" || st.blob == blob) {
			st.expired = true
		}
	}
}
