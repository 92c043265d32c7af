package providers

import (
	"errors"

	"github.com/hypersdk/hypersdk/internal/errclass"
	"github.com/hypersdk/hypersdk/internal/safepath"
	"github.com/hypersdk/hypersdk/transfer"
)

// Error classes. The slugs are apitypes.Problem… (which imports this
// package, so they are spelled out here; daemon/api's tests compare them).
// Providers wrap these (fmt.Errorf("...: %w", ErrNotFound)) so
// that the job engine can tell a request that can never succeed from a
// failure worth retrying.
var (
	// ErrNotFound: the VM (or other named object) does not exist.
	ErrNotFound = errclass.New(errclass.NotFound, "vm-not-found", "not found")
	// ErrAmbiguous: an identifier matched more than one VM.
	ErrAmbiguous = errclass.New(errclass.Conflict, "vm-ambiguous", "ambiguous identifier")
	// ErrAuth: the platform rejected the credentials.
	ErrAuth = errclass.New(errclass.Upstream, "provider-auth-failed", "authentication failed")
	// ErrNotConnected: the daemon has not (yet) connected to the
	// provider's platform; it keeps trying in the background. Transient.
	ErrNotConnected = errclass.New(errclass.Unavailable, "provider-not-connected", "not connected yet")
	// ErrInvalidArgument: the request itself is wrong (bad option, a
	// powered-on VM without snapshot or power_off…).
	ErrInvalidArgument = errclass.New(errclass.Invalid, "invalid-argument", "invalid argument")
	// ErrUnsupported: the provider cannot do what was asked.
	ErrUnsupported = errors.New("unsupported")
	// ErrThrottled: the platform asked us to slow down (HTTP 429/503,
	// EBS RequestThrottledException, ConcurrentLimitExceededException).
	// Transient: retried after a backoff, with less concurrency.
	ErrThrottled = errors.New("throttled by the platform")
	// ErrExpired: a grant, token or signed URL the platform issued has
	// expired (Azure SAS, EBS block token). Transient once renewed.
	ErrExpired = errors.New("grant expired")
	// ErrAbandoned is the cancellation cause (context.Cause) with which a
	// job engine stops an export that no attempt will follow (a user's
	// cancel, the last attempt timing out): the export then removes its
	// resume state too, as after a permanent failure.
	ErrAbandoned = errors.New("export abandoned: no attempt follows")
)

// permanentError marks an error as not worth retrying.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: retrying the same request cannot succeed.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether retrying the operation that returned err is
// pointless: the error is marked Permanent or wraps one of the request error
// classes above. Context cancellation is not permanent (the job engine
// handles it separately); everything else is treated as transient.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var p *permanentError
	if errors.As(err, &p) {
		return true
	}
	// An output path through a link stays one until someone looks at it;
	// transfer (and the SSH client) mark what no retry can fix (a 404, a
	// refused certificate or host key, a wrong password).
	for _, target := range []error{ErrNotFound, ErrAmbiguous, ErrAuth, ErrInvalidArgument, ErrUnsupported, safepath.ErrUnsafe, transfer.ErrPermanent} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
