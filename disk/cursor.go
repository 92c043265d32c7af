package disk

import "io"

// Cursor writes to a Target front to back, seeking only where a write does
// not start where the last one ended: the skipped bytes become a hole (or
// keep what was written there before). Writers use it to leave zeros out.
type Cursor struct {
	T   Target
	pos int64 // T's offset
}

// Put writes b at off.
func (c *Cursor) Put(b []byte, off int64) error {
	if off != c.pos {
		if _, err := c.T.Seek(off, io.SeekStart); err != nil {
			return err
		}
	}
	if _, err := c.T.Write(b); err != nil {
		return err
	}
	c.pos = off + int64(len(b))
	return nil
}
