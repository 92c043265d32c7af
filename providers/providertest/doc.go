// Package providertest is the conformance suite every provider package runs
// against its own test target (a simulator, an emulator or a wire-faithful
// fake server), in the spirit of restic's backend tests: one set of
// behavioural checks — discovery, lookup by every identifier, export bytes
// against the manifest, cancellation and error classification — that every
// provider must pass.
//
// It also holds Fake, an in-memory provider for testing the job engine and
// the API. Fake is never registered by hypervisord; it passes the same suite.
package providertest
