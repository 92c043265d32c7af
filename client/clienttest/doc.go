// Package clienttest runs the real hypervisord API in process for tests of
// API clients: the job engine on a fresh SQLite store, a fake provider
// named "lab" (providertest.Fake, whose exports write real files), the
// webhook service (delivering to loopback receivers, with a retry schedule
// of milliseconds), the scheduler (with an injectable clock; its loop is not
// started) and tokens for every role, served by httptest. Only the provider
// is fake; routing, authentication, validation, problem documents, the job
// engine, schedules and webhook delivery are the daemon's own.
package clienttest
