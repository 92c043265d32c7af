package lzop

import (
	"errors"
	"strconv"
)

// Errors of the LZO1X decompressor. Decompress1X wraps them with the
// position where the stream went wrong.
var (
	errInputOverrun   = errors.New("input ends inside an instruction")
	errOutputOverrun  = errors.New("output longer than declared")
	errLookBehind     = errors.New("match reaches before the start of the output")
	errNotConsumed    = errors.New("input continues after the end-of-stream marker")
	errOutputUnderrun = errors.New("output shorter than declared")
)

// Decompress1X decodes the LZO1X stream src into dst, which must be exactly
// as long as the decoded data: anything else (a stream that ends early or
// late, input past the end marker, a match reaching before the output's
// start) is an error. The encoding is the one the LZO library's
// lzo1x_decompress_safe reads: instructions whose meaning depends on how
// many literals the previous one copied (state), lengths extended by runs
// of zero bytes, and an end marker that is a far match of distance 16384.
func Decompress1X(dst, src []byte) error {
	d := decoder{dst: dst, src: src}
	return d.run()
}

type decoder struct {
	dst, src []byte
	ip, op   int
}

func (d *decoder) fail(err error) error {
	return &DecodeError{InputOffset: d.ip, OutputOffset: d.op, Err: err}
}

// DecodeError is a malformed LZO1X stream: where decoding stopped (input
// and output offsets) and why.
type DecodeError struct {
	InputOffset, OutputOffset int
	Err                       error
}

func (e *DecodeError) Error() string {
	return "lzo1x: " + e.Err.Error() + " (input offset " + strconv.Itoa(e.InputOffset) + ", output offset " + strconv.Itoa(e.OutputOffset) + ")"
}

func (e *DecodeError) Unwrap() error { return e.Err }

// byte1 reads one operand byte.
func (d *decoder) byte1() (int, error) {
	if d.ip >= len(d.src) {
		return 0, d.fail(errInputOverrun)
	}
	b := int(d.src[d.ip])
	d.ip++
	return b, nil
}

// le16 reads a two-byte little-endian operand.
func (d *decoder) le16() (int, error) {
	if d.ip+2 > len(d.src) {
		return 0, d.fail(errInputOverrun)
	}
	v := int(d.src[d.ip]) | int(d.src[d.ip+1])<<8
	d.ip += 2
	return v, nil
}

// extend reads the rest of a length whose bits in the instruction were
// all zero: base plus 255 for every zero byte, plus the first non-zero
// byte. The total is bounded by the output still to write, so a hostile run
// of zeros cannot overflow it.
func (d *decoder) extend(base int) (int, error) {
	n := base
	for {
		if d.ip >= len(d.src) {
			return 0, d.fail(errInputOverrun)
		}
		b := d.src[d.ip]
		d.ip++
		if b != 0 {
			n += int(b)
			break
		}
		n += 255
		if n > len(d.dst) {
			return 0, d.fail(errOutputOverrun)
		}
	}
	return n, nil
}

// literals copies n bytes from the input to the output.
func (d *decoder) literals(n int) error {
	if d.ip+n > len(d.src) {
		return d.fail(errInputOverrun)
	}
	if d.op+n > len(d.dst) {
		return d.fail(errOutputOverrun)
	}
	copy(d.dst[d.op:], d.src[d.ip:d.ip+n])
	d.ip += n
	d.op += n
	return nil
}

// match copies n bytes from dist bytes back in the output; the two ranges
// overlap when dist < n, which repeats the last dist bytes.
func (d *decoder) match(dist, n int) error {
	if dist <= 0 || dist > d.op {
		return d.fail(errLookBehind)
	}
	if d.op+n > len(d.dst) {
		return d.fail(errOutputOverrun)
	}
	// Each copy takes what lies between from and the output's end, which
	// doubles while an overlapping match (a run: distance 1 repeats one
	// byte) is written, so long runs cost a few copies, not a byte loop.
	from := d.op - dist
	for n > 0 {
		k := copy(d.dst[d.op:d.op+n], d.dst[from:d.op])
		d.op += k
		n -= k
	}
	return nil
}

func (d *decoder) run() error {
	if len(d.src) == 0 {
		return d.fail(errInputOverrun)
	}
	// state is how many literals the last instruction copied: 0, 1-3, or
	// 4 for a literal run of four or more. It decides what a 0000xxxx
	// instruction means.
	state := 0
	if first := int(d.src[0]); first > 17 {
		// A first byte above 17 is a literal run with no instruction
		// before it.
		d.ip = 1
		n := first - 17
		if err := d.literals(n); err != nil {
			return err
		}
		state = min(n, 4)
	}
	for {
		inst, err := d.byte1()
		if err != nil {
			return err
		}
		var length, dist, next int
		switch {
		case inst >= 64: // 1LLDDDSS: 5-8 bytes, or 01LDDDSS: 3-4 bytes; within 2 KiB
			if inst >= 128 {
				length = 5 + (inst>>5)&3
			} else {
				length = 3 + (inst>>5)&1
			}
			h, err := d.byte1()
			if err != nil {
				return err
			}
			dist = h<<3 + (inst>>2)&7 + 1
			next = inst & 3
		case inst >= 32: // 001LLLLL: within 16 KiB
			length = inst & 31
			if length == 0 {
				if length, err = d.extend(31); err != nil {
					return err
				}
			}
			length += 2
			v, err := d.le16()
			if err != nil {
				return err
			}
			dist = v>>2 + 1
			next = v & 3
		case inst >= 16: // 0001HLLL: 16-48 KiB back; distance 16384 ends the stream
			length = inst & 7
			if length == 0 {
				if length, err = d.extend(7); err != nil {
					return err
				}
			}
			length += 2
			v, err := d.le16()
			if err != nil {
				return err
			}
			dist = 16384 + (inst&8)<<11 + v>>2
			if dist == 16384 {
				switch {
				case d.ip != len(d.src):
					return d.fail(errNotConsumed)
				case d.op != len(d.dst):
					return d.fail(errOutputUnderrun)
				}
				return nil
			}
			next = v & 3
		default: // 0000xxxx: its meaning depends on state
			switch state {
			case 0: // a literal run of 4 or more
				length = inst
				if length == 0 {
					if length, err = d.extend(15); err != nil {
						return err
					}
				}
				if err := d.literals(length + 3); err != nil {
					return err
				}
				state = 4
				continue
			case 4: // 3 bytes from 2-3 KiB back, right after a literal run
				h, err := d.byte1()
				if err != nil {
					return err
				}
				length, dist = 3, h<<2+(inst>>2)&3+2049
			default: // 2 bytes from within 1 KiB, after 1-3 literals
				h, err := d.byte1()
				if err != nil {
					return err
				}
				length, dist = 2, h<<2+(inst>>2)&3+1
			}
			next = inst & 3
		}
		if err := d.match(dist, length); err != nil {
			return err
		}
		if err := d.literals(next); err != nil {
			return err
		}
		state = next
	}
}
