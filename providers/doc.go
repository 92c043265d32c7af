// Package providers defines what every virtualization platform adapter
// implements (Provider), the shared data types that cross that boundary
// (VMInfo, VMFilter, ExportOptions, ExportResult, Progress), the error
// classification the job engine relies on (permanent versus transient), and
// the Registry that turns configured provider instances into live Providers.
//
// Provider packages (providers/vsphere, providers/aws, …) depend on this
// package; this package and the provider packages never depend on the daemon.
package providers
