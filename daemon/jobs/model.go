package jobs

import (
	"github.com/hypersdk/hypersdk/apitypes"
	"github.com/hypersdk/hypersdk/internal/errclass"
)

// Errors the API maps to problem types (apitypes.Problem…).
var (
	ErrNotFound = errclass.New(errclass.NotFound, apitypes.ProblemJobNotFound, "job not found")
	// ErrInvalid wraps a description of what is wrong with a request.
	ErrInvalid = errclass.New(errclass.Invalid, apitypes.ProblemInvalidJobRequest, "invalid job request")
	// ErrConflict: the job is in a state that does not allow the operation,
	// or an idempotency key was reused with a different request.
	ErrConflict = errclass.New(errclass.Conflict, apitypes.ProblemJobConflict, "conflict")
	// ErrStopping: the engine is shutting down and accepts no new work.
	ErrStopping = errclass.New(errclass.Unavailable, apitypes.ProblemShuttingDown, "job engine is shutting down")
)
