// Package ps holds the PowerShell scripts of the Hyper-V provider and the
// one way their input travels: JSON, base64-encoded, assigned to $b64 in
// front of a constant script (Command), and taken apart again by the test
// server (Parse). Nothing else is ever added to a script's text.
package ps
