//go:build race

package proxmox

// raceEnabled: the race detector's shadow memory multiplies a process's
// resident set; memory bounds are the product's in normal builds.
const raceEnabled = true
