// Package errclass is the one set of error classes the daemon's packages
// (jobs, scheduler, webhooks, providers) declare their request errors with.
// Each sentinel carries its class and the stable problem slug the REST API
// reports, so daemon/api maps every error to problem+json in one place
// instead of one switch per package.
package errclass
