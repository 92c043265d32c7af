// Package progress holds HyperSDK's one progress value, Report, and the
// callback type that carries it, Func. transfer (per-file downloads), ova
// (archive packing), the export pipeline, the providers and the daemon's
// job engine all speak it, so a report travels from the byte loop to a
// progress bar or the API without being translated on the way.
//
// The package imports nothing: the Go client (apitypes) may depend on it
// without compiling anything else. Rates and ETAs are not part of a Report;
// consumers derive them from successive reports (transfer.Meter), and the
// API's wire type apitypes.JobProgress is built from a Report in one place
// (apitypes.NewJobProgress).
package progress
