//go:build !race

package proxmox

const raceEnabled = false
