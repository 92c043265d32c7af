// Package benchcmd is what the benchmarks that time real commands share
// (make bench): a scratch directory on tmpfs, the real hyperctl built
// once, and a command timed with its CPU time and peak RSS. Benchmarks
// compare hyperctl with the anchor tool (govc, qemu-img, curl) run the
// same way in the same benchmark, alternating, by medians; Compare does
// that for in-process candidates and commands alike (transfer/sftp against
// scp and sftp, transfer/smb against smbclient).
package benchcmd
