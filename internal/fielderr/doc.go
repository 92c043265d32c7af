// Package fielderr collects what is wrong with a request, field by field,
// so that the API can report each problem's location (problem+json
// errors[].location) and a client can name what its user typed for that
// field: hyperctl names the flag.
package fielderr
