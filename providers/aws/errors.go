package aws

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/hypersdk/hypersdk/providers"
)

// authCodes are the error codes with which EC2 and the EBS direct APIs
// refuse a caller's credentials or signature (EC2 API reference "Common
// client error codes"; EBS API reference "Common errors").
var authCodes = map[string]bool{
	// EC2
	"AuthFailure":                true,
	"InvalidClientTokenId":       true,
	"SignatureDoesNotMatch":      true,
	"MissingAuthenticationToken": true,
	"UnauthorizedOperation":      true,
	"OptInRequired":              true,
	"Blocked":                    true,
	"ExpiredToken":               true,
	// EBS direct
	"UnrecognizedClientException":         true,
	"InvalidSignatureException":           true,
	"MissingAuthenticationTokenException": true,
	"AccessDeniedException":               true,
	"ExpiredTokenException":               true,
}

// throttleCodes are the refusals that say "slower", never "no": retrying
// later succeeds.
var throttleCodes = map[string]bool{
	"RequestLimitExceeded":             true, // EC2
	"ThrottlingException":              true, // EBS ListSnapshotBlocks
	"RequestThrottledException":        true, // EBS GetSnapshotBlock
	"ConcurrentLimitExceededException": true, // EBS: too many requests on one snapshot
	"ServiceUnavailable":               true,
	"InternalError":                    true,
	"InternalServerException":          true,
}

// apiCode returns the AWS error code of err, "" when it has none.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// httpStatus returns the HTTP status of the answer that failed err, 0 when
// no answer came.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// apiError wraps a failed call with what was being done, marking rejected
// credentials with providers.ErrAuth.
func (p *Provider) apiError(what string, err error) error {
	if authCodes[apiCode(err)] || httpStatus(err) == http.StatusUnauthorized {
		return fmt.Errorf("aws %s: %s: %w: %w", p.name, what, providers.ErrAuth, err)
	}
	return fmt.Errorf("aws %s: %s: %w", p.name, what, err)
}

// retryable reports whether a block request that failed with err (after
// the SDK's own retries) may succeed when made again: throttling, server
// errors, a body cut short or corrupted, a connection that broke. Requests
// the service refused for what they are (a bad token, a missing snapshot,
// credentials) are not, nor is the caller's cancellation.
func retryable(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, errChecksum), errors.Is(err, errShortBlock), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	if code := apiCode(err); code != "" {
		if throttleCodes[code] {
			return true
		}
		return httpStatus(err) >= 500
	}
	if s := httpStatus(err); s != 0 {
		return s >= 500 || s == http.StatusTooManyRequests
	}
	return true // no answer: the network failed
}

// classify marks err permanent (providers.Permanent) when retrying the
// request cannot help, so the download engine can tell with
// providers.IsPermanent.
func classify(err error) error {
	if err == nil || retryable(err) || errors.Is(err, context.Canceled) {
		return err
	}
	return providers.Permanent(err)
}
