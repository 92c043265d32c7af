// Package providertest is the conformance suite every provider package runs
// against its own test target (a simulator, an emulator or a wire-faithful
// fake server), in the spirit of restic's backend tests: one set of
// behavioural checks that every provider must pass: discovery, lookup by
// every identifier, and exports run through the pipeline (pipeline.Export)
// in each output format (ovf, ova, disks with vmdk and raw disks) whose
// bytes match the source and the manifest, with honest progress totals,
// cancellation mid-transfer, error classification, and clean-up proven by
// asking the backend what an export left behind (Target.Leftovers).
//
// It also holds Fake, an in-memory provider for testing the job engine and
// the API. Fake is never registered by hypervisord; it passes the same suite.
package providertest
