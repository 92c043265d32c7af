package fielderr

import (
	"errors"
	"fmt"
	"strings"
)

// Error is one problem with a request: the field's JSON path within the
// body ("output", "job.compression_level"; empty for a problem of the
// request as a whole) and what is wrong with it.
type Error struct {
	Field   string
	Message string
}

// List is every problem found with one request. Its text is
// "field: message; field: message", the form the daemon has always
// reported.
type List []Error

// Addf records a problem with field.
func (l *List) Addf(field, format string, args ...any) {
	*l = append(*l, Error{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Nest records the problems of a nested object (a schedule's job
// template) under prefix.
func (l *List) Nest(prefix string, inner List) {
	for _, e := range inner {
		f := prefix
		if e.Field != "" {
			f += "." + e.Field
		}
		*l = append(*l, Error{Field: f, Message: e.Message})
	}
}

func (l List) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Message
		if e.Field != "" {
			parts[i] = e.Field + ": " + e.Message
		}
	}
	return strings.Join(parts, "; ")
}

// Err returns nil without problems, else an error that is kind (for
// errors.Is) and carries the list (for errors.As with *List).
func (l List) Err(kind error) error {
	if len(l) == 0 {
		return nil
	}
	return &wrapped{kind: kind, list: l}
}

// Of returns the problems carried by err, if it carries any.
func Of(err error) (List, bool) {
	var w *wrapped
	if errors.As(err, &w) {
		return w.list, true
	}
	return nil, false
}

type wrapped struct {
	kind error
	list List
}

func (w *wrapped) Error() string { return w.kind.Error() + ": " + w.list.Error() }
func (w *wrapped) Unwrap() error { return w.kind }
