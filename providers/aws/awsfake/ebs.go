package awsfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// tokenLifetime is how long AWS says block tokens stay valid (ExpiryTime).
const tokenLifetime = 7 * 24 * time.Hour

// ebsError is the EBS direct APIs' JSON error body; the error type travels
// in the x-amzn-ErrorType header.
type ebsError struct {
	Message string `json:"Message"`
	Reason  string `json:"Reason,omitempty"`
}

func writeEBSError(w http.ResponseWriter, requestID string, status int, errType, reason, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-amzn-ErrorType", errType)
	w.Header().Set("x-amzn-RequestId", requestID)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ebsError{Message: message, Reason: reason})
}

func (s *Server) serveEBS(w http.ResponseWriter, r *http.Request, body []byte, requestID string) {
	if fail := s.verifySignature(r, body, "ebs"); fail != nil {
		s.countRefused()
		s.log.Warn("awsfake: EBS request refused", "reason", fail.message, "request_id", requestID)
		switch fail.kind {
		case authMissing:
			writeEBSError(w, requestID, http.StatusForbidden, "MissingAuthenticationTokenException", "", "Missing Authentication Token")
		case authBadKey:
			writeEBSError(w, requestID, http.StatusForbidden, "UnrecognizedClientException", "", "The security token included in the request is invalid.")
		default:
			writeEBSError(w, requestID, http.StatusForbidden, "InvalidSignatureException", "", fail.message)
		}
		return
	}
	// /snapshots/{id}/blocks or /snapshots/{id}/blocks/{index}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/snapshots/"), "/")
	if r.Method != http.MethodGet || len(parts) < 2 || len(parts) > 3 || parts[1] != "blocks" {
		writeEBSError(w, requestID, http.StatusNotFound, "UnknownOperationException", "", "The requested operation is not supported by this fake EBS endpoint.")
		return
	}
	action := "ListSnapshotBlocks"
	if len(parts) == 3 {
		action = "GetSnapshotBlock"
	}
	throttled := s.throttle(s.currentFaults().ThrottleEBS)
	s.count(action, throttled)
	if throttled {
		s.log.Info("awsfake: EBS request throttled", "action", action, "request_id", requestID)
		if action == "GetSnapshotBlock" {
			writeEBSError(w, requestID, http.StatusBadRequest, "RequestThrottledException", "RESOURCE_LEVEL_THROTTLE",
				"The number of API requests has exceeded the maximum allowed API request throttling limit for the snapshot.")
		} else {
			writeEBSError(w, requestID, http.StatusBadRequest, "ThrottlingException", "",
				"The number of API requests has exceeded the maximum allowed API request throttling limit for the account.")
		}
		return
	}
	var err error
	if action == "ListSnapshotBlocks" {
		err = s.listSnapshotBlocks(w, r, parts[0], requestID)
	} else {
		err = s.getSnapshotBlock(w, r, parts[0], parts[2], requestID)
	}
	if err != nil {
		ae, ok := err.(*ebsAPIError)
		if !ok {
			ae = &ebsAPIError{http.StatusInternalServerError, "InternalServerException", "", "An internal error has occurred."}
		}
		writeEBSError(w, requestID, ae.status, ae.errType, ae.reason, ae.message)
	}
}

type ebsAPIError struct {
	status                   int
	errType, reason, message string
}

func (e *ebsAPIError) Error() string { return e.errType + ": " + e.message }

func ebsValidation(reason, message string) error {
	return &ebsAPIError{http.StatusBadRequest, "ValidationException", reason, message}
}

// readableSnapshot returns a completed, live snapshot; callers hold s.mu.
func (s *Server) readableSnapshot(id string) (*snapshot, error) {
	sn := s.snapshots[id]
	if sn == nil || sn.deleted {
		return nil, &ebsAPIError{http.StatusNotFound, "ResourceNotFoundException", "SNAPSHOT_NOT_FOUND", fmt.Sprintf("The snapshot %s does not exist.", id)}
	}
	if !sn.completed {
		return nil, ebsValidation("INVALID_SNAPSHOT_ID", fmt.Sprintf("The snapshot %s is not in the completed state.", id))
	}
	return sn, nil
}

// blockToken binds a block index to its snapshot; it is an HMAC under a key
// of this server, so only tokens this server listed are accepted, and the
// same block always gets the same token (what a resume journal relies on).
func (s *Server) blockToken(snapshotID string, index int64) string {
	m := hmac.New(sha256.New, s.tokKey)
	fmt.Fprintf(m, "%s/%d", snapshotID, index)
	return "AAUB" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

type listSnapshotBlocksResponse struct {
	Blocks     []jsonBlock `json:"Blocks"`
	ExpiryTime float64     `json:"ExpiryTime"`
	VolumeSize int64       `json:"VolumeSize"`
	BlockSize  int32       `json:"BlockSize"`
	NextToken  *string     `json:"NextToken,omitempty"`
}

type jsonBlock struct {
	BlockIndex int32  `json:"BlockIndex"`
	BlockToken string `json:"BlockToken"`
}

// listSnapshotBlocks answers GET /snapshots/{id}/blocks: the blocks that
// held data when the snapshot was taken, from startingBlockIndex or the page
// token on, at most maxResults (100–10000) of them.
func (s *Server) listSnapshotBlocks(w http.ResponseWriter, r *http.Request, id, requestID string) error {
	qs := r.URL.Query()
	maxResults := 10000
	if v := qs.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 || n > 10000 {
			return ebsValidation("INVALID_PARAMETER_VALUE", "maxResults must be between 100 and 10000.")
		}
		maxResults = n
	}
	if s.opts.MaxBlocksPerPage > 0 {
		maxResults = min(maxResults, s.opts.MaxBlocksPerPage)
	}
	start := int64(0)
	if v := qs.Get("startingBlockIndex"); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 0 {
			return ebsValidation("INVALID_PARAMETER_VALUE", "startingBlockIndex must be a non-negative integer.")
		}
		start = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, err := s.readableSnapshot(id)
	if err != nil {
		return err
	}
	if tok := qs.Get("pageToken"); tok != "" {
		n, ok := s.parsePageToken(id, tok)
		if !ok {
			return ebsValidation("INVALID_PAGE_TOKEN", "The pagination token is not valid.")
		}
		start = max(start, n)
	}
	from, _ := slices.BinarySearch(sn.indexes, start)
	to := min(len(sn.indexes), from+maxResults)
	resp := listSnapshotBlocksResponse{
		Blocks:     []jsonBlock{},
		ExpiryTime: float64(time.Now().Add(tokenLifetime).Unix()),
		VolumeSize: int64(sn.volumeSize),
		BlockSize:  BlockSize,
	}
	for _, idx := range sn.indexes[from:to] {
		resp.Blocks = append(resp.Blocks, jsonBlock{BlockIndex: int32(idx), BlockToken: s.blockToken(id, idx)})
	}
	if to < len(sn.indexes) {
		tok := s.pageToken(id, sn.indexes[to])
		resp.NextToken = &tok
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-amzn-RequestId", requestID)
	return json.NewEncoder(w).Encode(resp)
}

// pageToken encodes the next block index, authenticated like block tokens
// so that a forged token is refused rather than trusted.
func (s *Server) pageToken(snapshotID string, next int64) string {
	n := strconv.FormatInt(next, 10)
	return n + "." + s.blockToken(snapshotID+"/page", next)
}

func (s *Server) parsePageToken(snapshotID, tok string) (int64, bool) {
	n, mac, ok := strings.Cut(tok, ".")
	next, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || next < 0 {
		return 0, false
	}
	return next, hmac.Equal([]byte(mac), []byte(s.blockToken(snapshotID+"/page", next)))
}

// zeroBlock is what an unwritten block reads as.
var zeroBlock = newBlock(make([]byte, BlockSize))

// getSnapshotBlock answers GET /snapshots/{id}/blocks/{index}?blockToken=…
// with the block's bytes as they were at snapshot time.
func (s *Server) getSnapshotBlock(w http.ResponseWriter, r *http.Request, id, indexStr, requestID string) error {
	index, err := strconv.ParseInt(indexStr, 10, 32)
	if err != nil || index < 0 {
		return ebsValidation("INVALID_BLOCK", fmt.Sprintf("The block index %q is not valid.", indexStr))
	}
	token := r.URL.Query().Get("blockToken")
	s.mu.Lock()
	sn, err := s.readableSnapshot(id)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if index >= int64(sn.volumeSize)*gib/BlockSize {
		s.mu.Unlock()
		return ebsValidation("INVALID_BLOCK", fmt.Sprintf("The block index %d is beyond the end of the snapshot.", index))
	}
	if !hmac.Equal([]byte(token), []byte(s.blockToken(id, index))) {
		s.mu.Unlock()
		return ebsValidation("INVALID_BLOCK_TOKEN", "The block token is not valid.")
	}
	b, ok := sn.blocks[index]
	if !ok {
		b = zeroBlock // a valid token for an unwritten block: zeros
	}
	key := blockKey{id, index}
	corrupt := !s.stats.corrupted[key] && chosenForCorruption(s.currentFaults(), id, index)
	if corrupt {
		s.stats.corrupted[key] = true
	}
	if s.stats.fetches[id] == nil {
		s.stats.fetches[id] = map[int64]int{}
	}
	s.stats.fetches[id][index]++
	s.mu.Unlock()
	// Stored blocks are immutable (writes replace them) and carry their
	// checksum: a corrupted copy is made outside the server's lock.
	data, sum := b.data, b.sum
	if corrupt {
		data = slices.Clone(data)
		data[len(data)/2] ^= 0xff
		s.log.Info("awsfake: corrupted block body", "snapshot", id, "block", index, "request_id", requestID)
	}

	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("x-amz-Data-Length", strconv.Itoa(len(data)))
	h.Set("x-amz-Checksum", base64.StdEncoding.EncodeToString(sum[:]))
	h.Set("x-amz-Checksum-Algorithm", "SHA256")
	h.Set("x-amzn-RequestId", requestID)
	_, _ = w.Write(data)
	return nil
}
