// Package apitypes holds the REST API's wire types: the request and
// response bodies, enumerations, paths and problem types shared by the
// daemon's handlers (daemon/api) and the Go client (client).
//
// It is a leaf: it imports only the standard library and the providers
// types that appear in bodies, so that a program importing the client does
// not compile the daemon's database engines, job queue or HTTP framework
// (client's TestLightDependencies keeps that true).
package apitypes
