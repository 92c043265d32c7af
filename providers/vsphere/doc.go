// Package vsphere is the VMware vSphere provider: pooled API sessions
// (pool.go), discovery through the PropertyCollector, and export over NFC
// leases with parallel, resumable disk downloads through package transfer.
//
// Every call to vCenter goes through the session Pool. The vcsim
// subpackage extends govmomi's simulator so that tests and
// `hypervisord --demo` can export VMs with real disk bytes.
package vsphere
