package errclass

import "errors"

// Class is a kind of failure. The API maps each class to one HTTP status.
type Class int

// Error classes.
const (
	// NotFound: the named object does not exist (404).
	NotFound Class = iota + 1
	// Invalid: the request itself is wrong (422). Errors wrapping an
	// Invalid sentinel describe what is wrong after "<sentinel>: ".
	Invalid
	// Conflict: the object's state or another request does not allow the
	// operation (409). Described like Invalid.
	Conflict
	// Unavailable: the service cannot take the request now (503).
	Unavailable
	// Upstream: the platform behind a provider refused us (502).
	Upstream
)

// Error is a sentinel error of a class with its stable problem slug.
type Error struct {
	Class Class
	// Slug is the suffix of the problem type the API reports, e.g.
	// "job-not-found" (apitypes declares the slugs clients switch on).
	Slug string
	msg  string
}

// New returns a sentinel error; wrap it with fmt.Errorf("%w: …").
func New(class Class, slug, msg string) *Error {
	return &Error{Class: class, Slug: slug, msg: msg}
}

func (e *Error) Error() string { return e.msg }

// Of returns the first classed sentinel in err's chain, or nil.
func Of(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
