// Command hyperctl is the command-line client of hypervisord. It submits
// and follows export jobs, manages schedules and webhooks and browses
// providers and VMs through the REST API (package client), and works on
// OVA files and exports from a vCenter without any daemon.
//
//	hyperctl jobs submit|list|get|watch|cancel|retry|logs|delete
//	hyperctl export --provider P --vm V [--output DIR] [--wait]
//	hyperctl export --local --url https://user@vc/sdk --vm PATH --output DIR
//	hyperctl schedules create|list|get|update|enable|disable|delete|run|history|next
//	hyperctl webhooks add|list|get|remove|enable|disable|rotate-secret|test|deliveries|delivery|redeliver
//	hyperctl ova pack|verify|inspect|extract
//	hyperctl disk info|check|convert
//	hyperctl vma info|verify|extract
//	hyperctl providers list
//	hyperctl vms list|get --provider P
//	hyperctl status
//	hyperctl completion bash|zsh|fish|powershell
//
// On the daemon's host it needs no configuration: the daemon records its
// URL in <data-dir>/endpoint and, when no API tokens are configured, an
// admin token in <data-dir>/admin.token, and hyperctl reads both from the
// daemon's default data directory (or --data-dir / HYPERSDK_DATA_DIR).
// Elsewhere, HYPERSDK_SERVER and HYPERSDK_TOKEN (or --token-file) say
// where and who. The local admin token is only ever sent to the daemon
// recorded next to it, or to a server the user paired with --data-dir.
//
// Output is a table by default; -o json and -o yaml print the API's
// objects as the API sends them. Exit codes: 0 success, 1 the operation
// failed (an API error, or a watched job that failed or was cancelled),
// 2 the command line is wrong.
//
// `export --local` runs the vSphere provider's export in process, reading
// govc's environment (GOVC_URL, GOVC_USERNAME, GOVC_PASSWORD,
// GOVC_INSECURE); see local.go. `ova`, `disk` and `vma` (Proxmox vzdump
// archives) commands read and write local files.
package main
