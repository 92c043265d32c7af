package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hypersdk/hypersdk/disk"
	"github.com/hypersdk/hypersdk/disk/formats"
)

// The `disk` commands work on local image files with disk/formats: no
// daemon, server or token, like `ova`.

func (a *app) diskCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "disk",
		Short: "Inspect, check and convert disk images: raw, VMDK, qcow2, VHD, VHDX (local files, no daemon)",
		Long: `Work with disk image files on this machine, as qemu-img does. These
commands need no daemon, server or token.

  info FILE               format, variant, virtual size, file and data sizes
  check FILE              structural checks, and every data block read back
  convert IN OUT --to F   convert between formats in one streaming pass

Formats are recognised by their magic numbers, not by file names (-f forces
one; a file with no known magic is raw). Holes stay holes: unallocated and
all-zero clusters are neither read nor written as data.`,
		RunE: groupRunE,
	}
	cmd.AddCommand(a.diskInfoCommand(), a.diskCheckCommand(), a.diskConvertCommand())
	return cmd
}

func (a *app) diskInfoCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info FILE [-f FORMAT]",
		Short: "Show a disk image's format, virtual size and allocation",
		Example: `  hyperctl disk info web01-disk1.vmdk
  hyperctl disk info disk.qcow2 -o json`,
		Args: exactArgs("FILE"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			r, err := formats.Inspect(args[0], format)
			if err != nil {
				return err
			}
			return a.show(r, func(w io.Writer) error {
				row := func(k, v string) { fmt.Fprintf(w, "%s:\t%s\n", k, v) }
				row("file", r.File)
				f := string(r.Format)
				if r.Subformat != "" {
					f += " (" + r.Subformat + ")"
				}
				row("format", f)
				row("virtual size", sizeAndBytes(r.VirtualSize))
				row("file size", sizeAndBytes(r.FileSize))
				row("allocated", sizeAndBytes(r.AllocatedSize))
				row("data", sizeAndBytes(r.DataSize))
				if r.ClusterSize > 0 {
					row("cluster size", humanBytes(r.ClusterSize))
				}
				if r.Compressed {
					row("compressed", "yes")
				}
				if r.Parent != "" {
					row("parent", r.Parent)
				}
				return nil
			})
		}),
	}
	addFormatFlag(cmd, &format)
	return cmd
}

func (a *app) diskCheckCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "check FILE [-f FORMAT]",
		Short: "Check a disk image's structure and read back all its data",
		Long: `Check FILE: that its headers and tables are sound (checksums, reference
counts, entries in range and not overlapping, as the format has them), and
that every data block can be read and decompressed. Exits 1 when a problem
is found, listing every one.`,
		Args: exactArgs("FILE"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			res, err := formats.Check(cmd.Context(), args[0], format)
			if err != nil {
				return err
			}
			if err := a.show(res, func(w io.Writer) error {
				if res.OK {
					fmt.Fprintf(w, "%s: %s image is clean; %s of data read back\n", res.File, res.Format, humanBytes(res.DataChecked))
				}
				return nil
			}); err != nil {
				return err
			}
			if !res.OK {
				return fmt.Errorf("%s: %d problem(s):\n  %s", res.File, len(res.Problems), strings.Join(res.Problems, "\n  "))
			}
			return nil
		}),
	}
	addFormatFlag(cmd, &format)
	return cmd
}

type diskConvertFlags struct {
	from, to, subformat, vhdType, clusterSize string
	force                                     bool
}

func (a *app) diskConvertCommand() *cobra.Command {
	f := &diskConvertFlags{}
	cmd := &cobra.Command{
		Use:   "convert IN OUT --to FORMAT [-f FORMAT] [--vhd-type fixed|dynamic] [--cluster-size SIZE]",
		Short: "Convert a disk image to another format",
		Long: `Convert IN to OUT in the format --to names, in one pass over IN's data:
holes and all-zero clusters are skipped, so a sparse disk stays sparse.

  raw     sparse raw image (holes seeked over)
  vmdk    streamOptimized VMDK (grains deflated on every CPU), as vSphere and
          OVF tools import
  qcow2   qcow2 v3, 64 KiB clusters (KVM, Proxmox, OpenStack)
  vhd     VHD, --vhd-type dynamic (default) or fixed; a fixed VHD's size is
          rounded up to a whole MiB, as Azure requires
  vhdx    dynamic VHDX, 32 MiB blocks as Hyper-V makes them

OUT is written as OUT.part, synced, and renamed into place when complete;
an existing OUT is replaced only with --force.`,
		Example: `  hyperctl disk convert web01-disk1.vmdk web01.qcow2 --to qcow2
  hyperctl disk convert disk.raw disk.vhd --to vhd --vhd-type fixed
  hyperctl disk convert disk.img disk.vhdx --to vhdx -f raw -o json`,
		Args: exactArgs("IN", "OUT"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return a.diskConvert(cmd, args[0], args[1], f)
		}),
	}
	fl := cmd.Flags()
	addFormatFlag(cmd, &f.from)
	fl.StringVar(&f.to, "to", "", "output format: "+strings.Join(formats.Names(), ", ")+" (required)")
	fl.StringVar(&f.vhdType, "vhd-type", "", "VHD variant: dynamic (default) or fixed")
	fl.StringVar(&f.clusterSize, "cluster-size", "", "allocation unit: qcow2 cluster, VHD/VHDX block (e.g. 64K, 2M; default: the format's)")
	fl.BoolVar(&f.force, "force", false, "replace OUT if it exists")
	_ = cmd.RegisterFlagCompletionFunc("to", cobra.FixedCompletions(formats.Names(), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("vhd-type", cobra.FixedCompletions([]string{"dynamic", "fixed"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (a *app) diskConvert(cmd *cobra.Command, in, out string, f *diskConvertFlags) error {
	if f.to == "" {
		return usageErrorf("--to is required: one of %s", strings.Join(formats.Names(), ", "))
	}
	to, err := formats.Lookup(f.to)
	if err != nil {
		return usageErrorf("--to: %v", err)
	}
	o := formats.ConvertOptions{To: to, Force: f.force}
	if f.vhdType != "" {
		if to.Format != disk.VHD {
			return usageErrorf("--vhd-type is for --to vhd (converting to %s)", to.Format)
		}
		o.Write.Subformat = f.vhdType
	}
	if f.clusterSize != "" {
		n, err := parseSize(f.clusterSize)
		if err != nil {
			return usageErrorf("--cluster-size: %v", err)
		}
		o.Write.ClusterSize = n
	}
	if same, _ := sameFile(in, out); same {
		return usageErrorf("IN and OUT are the same file (%s)", in)
	}
	img, file, err := formats.Open(in, f.from)
	if err != nil {
		return err
	}
	defer file.Close()
	defer img.Close()
	bar := a.newByteBar("converting", img.Info().VirtualSize)
	o.Progress = bar.update
	res, err := formats.Convert(cmd.Context(), img, out, o)
	bar.done(err == nil)
	if err != nil {
		return err
	}
	return a.show(res, func(w io.Writer) error {
		fmt.Fprintf(w, "%s: %s", res.Output, res.Format)
		if res.Subformat != "" {
			fmt.Fprintf(w, " (%s)", res.Subformat)
		}
		fmt.Fprintf(w, ", virtual size %s, file %s (%s allocated), %s of data read in %s\n",
			humanBytes(res.VirtualSize), humanBytes(res.FileSize), humanBytes(res.Allocated), humanBytes(res.DataRead), humanDuration(res.Duration))
		return nil
	})
}

func addFormatFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVarP(p, "format", "f", "", "input format, instead of detecting it: "+strings.Join(formats.Names(), ", ")+" (vpc is vhd)")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(formats.Names(), cobra.ShellCompDirectiveNoFileComp))
}

// sizeAndBytes is "1.0 GiB (1073741824 bytes)".
func sizeAndBytes(n int64) string {
	if n < 1024 {
		return humanBytes(n)
	}
	return fmt.Sprintf("%s (%d bytes)", humanBytes(n), n)
}

// parseSize reads 65536, 64K, 64KiB, 2M, 1G.
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "IB"), "B")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a size (e.g. 65536, 64K, 2M)", s)
	}
	return n * mult, nil
}

// sameFile reports whether a and b name the same existing file.
func sameFile(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(fa, fb), nil
}
