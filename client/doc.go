// Package client is a Go client for the hypervisord REST API (/api/v1).
//
// It covers jobs, providers and VMs, schedules and webhooks, and speaks the
// API's wire types from package apitypes — apitypes.JobRequest,
// apitypes.Job, apitypes.JobList, providers.VMInfo, apitypes.Schedule,
// apitypes.Endpoint… — the same types the daemon's handlers use, so a field
// added to the API reaches every client at once. apitypes is a leaf: a
// program importing the client compiles no database engine, job queue or
// HTTP framework.
//
//	c, err := client.New("http://127.0.0.1:8080", client.Options{Token: token})
//	sub, err := c.SubmitJob(ctx, apitypes.JobRequest{Provider: "vc1", VM: "/DC0/vm/web01"}, "")
//	job, err := c.WatchJob(ctx, sub.Job.ID, 0, func(j *apitypes.Job) { fmt.Println(j.Progress.Percent) })
//
// Errors the API reports (RFC 9457 problem+json) come back as *Problem,
// whose Slug is the stable suffix of the problem type
// (urn:hypersdk:problem:<slug>), e.g. "job-not-found" or "validation-failed".
// Transport failures come back as the net/http errors that caused them.
//
// Submissions are safe to retry: SubmitJob sends an Idempotency-Key (a
// random one when the caller gives none) and repeats the POST with the same
// key when the connection fails or the server answers 5xx, so a response
// lost on the way back never creates a second job. Retry delays come from
// internal/backoff, the project's one backoff helper.
//
// ReadEndpoint and ReadToken read what a local hypervisord leaves in its
// data directory (the API's base URL and the generated admin token), so a
// tool on the daemon's host can find it without being told.
//
// Package clienttest runs the real API in process for tests of API clients.
package client
