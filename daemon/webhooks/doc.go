// Package webhooks tells other systems what happened, following the
// Standard Webhooks specification (github.com/standard-webhooks): every
// delivery carries webhook-id (stable across retries, for deduplication),
// webhook-timestamp and webhook-signature ("v1,<base64 HMAC-SHA256 of
// id.timestamp.body>"), so receivers verify it with the specification's
// official libraries.
//
// Delivery is durable and never on the caller's path. Emit writes the event
// and one delivery row per subscribed endpoint inside the caller's
// transaction (an outbox): the event exists exactly when the job change
// that caused it committed. Background workers then claim due deliveries
// under a lease (so several daemons sharing PostgreSQL never send one
// twice at once), POST them with a per-attempt timeout, and retry failures
// on the specification's schedule with jitter, honouring Retry-After. A
// daemon killed mid-delivery leaves a lease that expires; a restarted
// daemon releases its own at once. 410 Gone disables the endpoint;
// redirects are failures and are not followed.
//
// Targets go through the project's SSRF guard (internal/netguard) when an
// endpoint is added and again on the address actually dialled (so DNS
// rebinding cannot bypass it): loopback, link-local and private addresses
// are refused unless webhook_delivery.allow_private_targets; zone ids
// always.
//
// River is not used here although the job engine runs on it: River's
// rescue of orphaned jobs is one interval for every job kind, and exports
// need hours where deliveries need seconds.
package webhooks
