// Package formats knows every disk image format the product reads and
// writes (disk.Raw, disk.VMDK, disk.QCOW2, disk.VHD, disk.VHDX): it names
// them, detects them by their magic numbers rather than by file names,
// opens and converts between them, inspects and checks them. It is what
// `hyperctl disk` and the export pipeline's --disk-format switch call; each
// format's own package does the reading and writing.
package formats
