package ovf

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// ParseByteUnits returns the number of bytes one unit of s stands for. s is
// a DSP0004 programmatic unit as used in ovf:capacityAllocationUnits and
// rasd:AllocationUnits ("byte", "byte * 2^30", "byte*10^9", "byte * 1024"),
// or one of the legacy names older producers write ("KB", "MegaBytes",
// "GigaBytes"; binary multiples, as those producers meant them).
func ParseByteUnits(s string) (int64, error) {
	t := strings.TrimSpace(s)
	switch strings.ToLower(t) {
	case "", "byte", "bytes", "b":
		return 1, nil
	case "kb", "kilobytes", "kib":
		return 1 << 10, nil
	case "mb", "megabytes", "mib":
		return 1 << 20, nil
	case "gb", "gigabytes", "gib":
		return 1 << 30, nil
	case "tb", "terabytes", "tib":
		return 1 << 40, nil
	}
	parts := strings.Split(t, "*")
	base := strings.ToLower(strings.TrimSpace(parts[0]))
	if base != "byte" && base != "bytes" {
		return 0, fmt.Errorf("allocation units %q: not a byte unit", s)
	}
	mult := int64(1)
	for _, p := range parts[1:] {
		p = strings.TrimSpace(p)
		var f int64
		if b, e, ok := strings.Cut(p, "^"); ok {
			bn, err1 := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
			en, err2 := strconv.ParseInt(strings.TrimSpace(e), 10, 64)
			if err1 != nil || err2 != nil || bn < 2 || en < 0 || en > 62 {
				return 0, fmt.Errorf("allocation units %q: bad factor %q", s, p)
			}
			f = 1
			for range en {
				var ok bool
				if f, ok = mulInt64(f, bn); !ok {
					return 0, fmt.Errorf("allocation units %q: overflow", s)
				}
			}
		} else {
			n, err := strconv.ParseInt(p, 10, 64)
			if err != nil || n < 1 {
				return 0, fmt.Errorf("allocation units %q: bad factor %q", s, p)
			}
			f = n
		}
		var ok bool
		if mult, ok = mulInt64(mult, f); !ok {
			return 0, fmt.Errorf("allocation units %q: overflow", s)
		}
	}
	return mult, nil
}

func mulInt64(a, b int64) (int64, bool) {
	if a < 0 || b < 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	return int64(lo), true
}

// capacityUnits picks the largest binary unit that divides n exactly, so a
// generated descriptor says "16" and "byte * 2^30" rather than 17179869184.
func capacityUnits(n int64) (value int64, units string) {
	for _, e := range []int{40, 30, 20, 10} {
		u := int64(1) << e
		if n >= u && n%u == 0 {
			return n / u, fmt.Sprintf("byte * 2^%d", e)
		}
	}
	return n, "byte"
}
