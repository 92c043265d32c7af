// Package ovf models OVF descriptors and manifests as defined by DMTF
// DSP0243 (OVF 1.x and 2.x).
//
// A Descriptor is parsed from an .ovf file (Parse, ReadFile) or generated
// from a simple VM description (Build). It keeps the complete XML tree, so
// sections and extension namespaces it does not model (vmw:, vbox:,
// ProductSection properties, …) survive Marshal; typed accessors (Files,
// Disks, Networks, VirtualSystems, Summary) read that tree and the few
// mutations exporters need (SetFileSize, RenameFile) edit it in place.
//
// A Manifest is the .mf file: `SHA256(name)= hex` lines. ParseManifest
// reads SHA1, SHA256 and SHA512 lines; Marshal writes lines GNU
// `sha256sum -c` accepts as they are; VerifyDir checks a directory and names
// every file that does not match.
//
// CheckPath is the one definition of a safe package-relative name, used for
// descriptor hrefs, manifest names and OVA member names alike.
package ovf
