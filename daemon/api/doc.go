// Package api is the daemon's HTTP interface: the REST API under /api/v1
// (jobs, providers and VMs, status, the live event stream and the stats
// history), health and readiness probes, the Prometheus endpoint, and the
// web dashboard (daemon/webui) for every other path. Operations are declared once with huma, which
// validates requests against their schemas (unknown JSON fields are
// refused, naming the field) and generates the OpenAPI 3.1 document served
// at /api/v1/openapi.json, so the document cannot drift from the routes.
//
// Every /api route requires a bearer token with a role (viewer, operator,
// admin); errors are RFC 9457 problem+json with a stable "type" URN.
package api
