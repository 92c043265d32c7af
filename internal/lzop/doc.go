// Package lzop reads lzop files (what `lzop` and `vzdump --compress lzo`
// write): the lzop container — its header, then blocks of at most 64 MiB,
// each LZO1X-compressed or stored, with Adler-32 or CRC-32 checksums — and
// the LZO1X bitstream inside (methods LZO1X-1, LZO1X-1(15) and LZO1X-999
// all decode with the one LZO1X decompressor).
//
// Nothing is trusted: every length is checked before it is used, a block
// may not claim more output than LZO1X can produce from its input (about
// 255 bytes per input byte) nor more than lzop's 64 MiB block limit, every
// checksum the file carries is verified, and the decompressor checks each
// literal and match against the input it has and the output it may write.
// Malformed input is refused with an error naming the block and what was
// wrong; it never panics and never allocates more than two block buffers
// of the sizes the input justifies.
//
// Only decompression is implemented: nothing in HyperSDK writes LZO. The
// Debian `lzop` tool is the test oracle.
package lzop
