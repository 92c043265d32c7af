// Package safepath creates directories and files beneath a trusted root
// directory without following symbolic links, so that a link planted inside
// an export root, an extraction target or the data directory can never
// redirect a write outside it.
//
// The root itself (an *os.Root, typically opened on a configured directory
// such as an entry of export.allowed_roots) is trusted as the administrator
// set it up, links included. Everything below it is not: every existing
// component of a relative path must be a real directory, and a file about to
// be written must be absent or a regular file with no other hard links.
// Anything else is refused with an *UnsafeError that names the offending
// component, and nothing is created past it. The os.Root underneath contains
// whatever a concurrent attacker swaps in between the check and the write
// (os.Root never resolves a path outside its directory), so a race can at
// worst land a write elsewhere inside the root, never outside it.
//
// This is the one way output paths are created in the project: the job
// engine opens an export's output directory with OpenDir, the transfer
// package creates its ".part" files with OpenFile, the OVA writer, the OVA
// extractor and the daemon's data directory go through the same functions.
package safepath
