package pvefake

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/hypersdk/hypersdk/vma"
	"github.com/hypersdk/hypersdk/vma/vmatest"
)

// StateEnv names the environment variable that tells Main where the
// state directory is; sshd's forced command script sets it.
const StateEnv = "PVEFAKE_STATE"

// Main runs the command sshd was asked for ($SSH_ORIGINAL_COMMAND) against
// the state in $PVEFAKE_STATE and exits with its status: a test binary
// calls it from TestMain when it is re-executed as sshd's forced command.
func Main() {
	dir := os.Getenv(StateEnv)
	if dir == "" {
		fmt.Fprintln(os.Stderr, "pvefake: "+StateEnv+" is not set")
		os.Exit(2)
	}
	os.Exit(Run(context.Background(), OpenState(dir), os.Getenv("SSH_ORIGINAL_COMMAND"), os.Stdout, os.Stderr))
}

// Run plays one node command line against the state, as a PVE node runs
// it, and returns its exit status:
//
//	vzdump VMID --stdout [--mode snapshot|suspend|stop] [--compress zstd|gzip|0|none]
//	pvesm export VOLID raw+size - [--snapshot NAME]
//	qm snapshot VMID NAME [--description TEXT] [--vmstate 0]
//	qm delsnapshot VMID NAME
//
// vzdump writes a VMA archive of the VM's disks (vma-writer.c's layout,
// by vmatest; clusters shuffled as a snapshot-mode backup sends them) and
// its configuration with vzdump's "#qmdump#map" lines; pvesm writes
// pve-storage's raw+size stream: the size as 8 bytes little-endian, then
// the raw bytes. Everything is logged in the state's command log.
func Run(ctx context.Context, st *State, cmdline string, stdout, stderr io.Writer) int {
	st.logCommand(cmdline)
	args, err := splitWords(cmdline)
	if err != nil || len(args) == 0 {
		fmt.Fprintf(stderr, "pvefake: cannot parse command %q: %v\n", cmdline, err)
		return 2
	}
	switch {
	case args[0] == "vzdump":
		err = runVzdump(ctx, st, args[1:], stdout, stderr)
	case args[0] == "pvesm" && len(args) > 1 && args[1] == "export":
		err = runPvesmExport(ctx, st, args[2:], stdout)
	case args[0] == "qm" && len(args) > 1 && args[1] == "snapshot":
		err = runSnapshot(st, args[2:])
	case args[0] == "qm" && len(args) > 1 && args[1] == "delsnapshot":
		err = runDelSnapshot(st, args[2:])
	default:
		fmt.Fprintf(stderr, "%s: command not found\n", args[0])
		return 127
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 255
	}
	return 0
}

// options splits "--key value" pairs (and lone flags) from positional
// arguments.
func options(args []string, flags ...string) (pos []string, opts map[string]string, err error) {
	opts = map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		k, ok := strings.CutPrefix(a, "--")
		if !ok || a == "-" {
			pos = append(pos, a)
			continue
		}
		if k2, v, has := strings.Cut(k, "="); has {
			opts[k2] = v
			continue
		}
		if slices.Contains(flags, k) && (i+1 == len(args) || strings.HasPrefix(args[i+1], "--")) {
			opts[k] = "1"
			continue
		}
		if i+1 == len(args) {
			return nil, nil, fmt.Errorf("400 Parameter verification failed.\n%s: missing value", k)
		}
		opts[k] = args[i+1]
		i++
	}
	return pos, opts, nil
}

func runVzdump(ctx context.Context, st *State, args []string, stdout, stderr io.Writer) error {
	pos, opts, err := options(args, "stdout", "quiet")
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("vzdump: exactly one VMID (this fake backs up one guest at a time)")
	}
	if opts["stdout"] != "1" {
		return errors.New("vzdump: this fake only writes to --stdout")
	}
	for k := range opts {
		switch k {
		case "stdout", "mode", "compress", "quiet":
		default:
			return fmt.Errorf("400 Parameter verification failed.\n%s: property is not defined in schema", k)
		}
	}
	switch opts["mode"] {
	case "", "snapshot", "suspend", "stop":
	default:
		return fmt.Errorf("400 Parameter verification failed.\nmode: value '%s' does not have a value in the enumeration 'snapshot, suspend, stop'", opts["mode"])
	}
	vmid, err := strconv.Atoi(pos[0])
	if err != nil {
		return fmt.Errorf("400 Parameter verification failed.\nvmid: invalid format - value does not look like a valid VM ID")
	}
	inv, err := st.Read()
	if err != nil {
		return err
	}
	vm := inv.VM(vmid)
	if vm == nil {
		return fmt.Errorf("unable to find VM %d", vmid)
	}
	if vm.Type != "qemu" {
		return fmt.Errorf("this fake backs up QEMU VMs only (%d is %s)", vmid, vm.Type)
	}
	fmt.Fprintf(stderr, "INFO: starting new backup job: vzdump %s\n", strings.Join(args, " "))
	fmt.Fprintf(stderr, "INFO: Starting Backup of VM %d (qemu)\n", vmid)
	fmt.Fprintln(stderr, "INFO: sending archive to stdout")
	out := &faultWriter{ctx: ctx, w: stdout, faults: inv.Faults}
	return WriteArchive(out, inv, vm, opts["compress"])
}

// WriteArchive writes what `vzdump --stdout --compress compress` writes for
// vm: its disks as a VMA archive (clusters shuffled as a snapshot-mode
// backup sends them), compressed with compress ("zstd", "gzip", "0" or
// "none"; "" is none, as vzdump's default).
func WriteArchive(w io.Writer, inv *Inventory, vm *VM, compress string) (err error) {
	var cw io.WriteCloser
	switch compress {
	case "", "0", "none":
		cw = nopWriteCloser{w}
	case "zstd", "1":
		zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return err
		}
		cw = zw
	case "gzip":
		cw = gzip.NewWriter(w)
	default:
		return fmt.Errorf("400 Parameter verification failed.\ncompress: this fake writes zstd, gzip or none, not %q", compress)
	}
	bw := bufio.NewWriterSize(cw, 1<<20)
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d/%s", vm.VMID, vm.Name)))
	a := vmatest.Archive{
		Created: time.Unix(1700000000, 0),
		Configs: []vma.Config{{Name: vma.VMConfigName, Data: []byte(QemuServerConf(inv, vm))}},
		Order:   vmatest.Shuffled,
		Seed:    uint64(vm.VMID),
		// A read past a device's end may return garbage: the writer
		// keeps it out, as vma-writer.c does.
		TailGarbage: true,
	}
	copy(a.UUID[:], sum[:16])
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, d := range inv.Drives(vm) {
		f, err := os.Open(d.Volume.File)
		if err != nil {
			return err
		}
		files = append(files, f)
		a.Disks = append(a.Disks, vmatest.Disk{Name: "drive-" + d.Key, Size: d.Volume.Size, Data: f})
	}
	if err := vmatest.Write(bw, a); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return cw.Close()
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// QemuServerConf is the VM's configuration as vzdump stores it in the
// archive: the "#qmdump#map" lines that name each backed-up drive's
// archive device, then the options (digest left out), sorted.
func QemuServerConf(inv *Inventory, vm *VM) string {
	var b strings.Builder
	for _, d := range inv.Drives(vm) {
		storage, _, _ := strings.Cut(d.Volume.ID, ":")
		fmt.Fprintf(&b, "#qmdump#map:%s:drive-%s:%s:raw:\n", d.Key, d.Key, storage)
	}
	for _, k := range slices.Sorted(maps.Keys(vm.Config)) {
		switch k {
		case "digest":
			continue
		case "description":
			for _, line := range strings.Split(vm.Config[k], "\n") {
				fmt.Fprintf(&b, "#%s\n", line)
			}
			continue
		}
		fmt.Fprintf(&b, "%s: %s\n", k, vm.Config[k])
	}
	return b.String()
}

// faultWriter writes a stream with the state's faults: a delay after
// every MiB, a failure after some bytes, and the end of ctx.
type faultWriter struct {
	ctx    context.Context
	w      io.Writer
	faults Faults
	n      int64
	paced  int64
}

var errStreamFault = errors.New("pvefake: stream failed on purpose (Faults.FailStreamAfter)")

func (f *faultWriter) Write(p []byte) (int, error) {
	if err := f.ctx.Err(); err != nil {
		return 0, err
	}
	if lim := f.faults.FailStreamAfter; lim > 0 && f.n+int64(len(p)) > lim {
		k := max(0, lim-f.n)
		n, _ := f.w.Write(p[:k])
		f.n += int64(n)
		return n, errStreamFault
	}
	n, err := f.w.Write(p)
	f.n += int64(n)
	if d := f.faults.StreamDelay; d > 0 {
		for f.n-f.paced >= 1<<20 {
			f.paced += 1 << 20
			select {
			case <-time.After(d):
			case <-f.ctx.Done():
				return n, f.ctx.Err()
			}
		}
	}
	return n, err
}

// volumeOwner returns the VM whose configuration names volume id.
func (inv *Inventory) volumeOwner(id string) *VM {
	for i := range inv.VMs {
		for _, d := range inv.Drives(&inv.VMs[i]) {
			if d.Volume.ID == id {
				return &inv.VMs[i]
			}
		}
	}
	return nil
}

func runPvesmExport(ctx context.Context, st *State, args []string, stdout io.Writer) error {
	pos, opts, err := options(args, "with-snapshots")
	if err != nil {
		return err
	}
	if len(pos) != 3 {
		return errors.New("400 not enough arguments\npvesm export <volume> <format> <filename> [OPTIONS]")
	}
	volid, format, filename := pos[0], pos[1], pos[2]
	for k := range opts {
		if k != "snapshot" {
			return fmt.Errorf("this fake exports without --%s", k)
		}
	}
	if format != "raw+size" {
		return fmt.Errorf("volume export format %s not available for this fake's storage", format)
	}
	if filename != "-" {
		return errors.New("this fake exports to stdout only (filename -)")
	}
	inv, err := st.Read()
	if err != nil {
		return err
	}
	vol := inv.Volume(volid)
	if vol == nil {
		storage, _, _ := strings.Cut(volid, ":")
		if _, ok := inv.Storages[storage]; !ok && storage != "" {
			return fmt.Errorf("storage '%s' does not exist", storage)
		}
		return fmt.Errorf("no such volume '%s'", volid)
	}
	if snap, ok := opts["snapshot"]; ok {
		vm := inv.volumeOwner(volid)
		found := false
		if vm != nil {
			for _, s := range inv.SnapshotsOf(vm.VMID) {
				found = found || s.Name == snap
			}
		}
		if !found {
			return fmt.Errorf("snapshot '%s' does not exist on volume '%s'", snap, volid)
		}
	}
	f, err := os.Open(vol.File)
	if err != nil {
		return err
	}
	defer f.Close()
	out := &faultWriter{ctx: ctx, w: stdout, faults: inv.Faults}
	bw := bufio.NewWriterSize(out, 1<<20)
	var head [8]byte
	binary.LittleEndian.PutUint64(head[:], uint64(vol.Size))
	if _, err := bw.Write(head[:]); err != nil {
		return err
	}
	// dd if=FILE bs=4k: the image's bytes, holes as zeros.
	if _, err := io.Copy(bw, io.NewSectionReader(f, 0, vol.Size)); err != nil {
		return err
	}
	return bw.Flush()
}

// snapName is PVE's snapshot name format (pve-configid, at most 40).
var snapName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_\-]{1,39}$`)

func runSnapshot(st *State, args []string) error {
	pos, opts, err := options(args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return errors.New("400 not enough arguments\nqm snapshot <vmid> <snapname> [OPTIONS]")
	}
	vmid, err := strconv.Atoi(pos[0])
	if err != nil {
		return errors.New("400 Parameter verification failed.\nvmid: invalid format")
	}
	name := pos[1]
	if !snapName.MatchString(name) {
		return fmt.Errorf("400 Parameter verification failed.\nsnapname: invalid format - invalid configuration ID '%s'", name)
	}
	var fail bool
	err = st.Update(func(inv *Inventory) error {
		vm := inv.VM(vmid)
		if vm == nil || vm.Type != "qemu" {
			return fmt.Errorf("Configuration file 'nodes/pve/qemu-server/%d.conf' does not exist", vmid)
		}
		for _, s := range inv.SnapshotsOf(vmid) {
			if s.Name == name {
				return fmt.Errorf("snapshot name '%s' already used", name)
			}
		}
		inv.Snapshots = append(inv.Snapshots, Snapshot{VMID: vmid, Name: name, Description: opts["description"], Time: time.Now().Unix()})
		fail = inv.Faults.FailSnapshot
		return nil
	})
	if err != nil {
		return err
	}
	if fail {
		return errors.New("got timeout (Faults.FailSnapshot: the snapshot was taken)")
	}
	return nil
}

func runDelSnapshot(st *State, args []string) error {
	pos, _, err := options(args, "force")
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return errors.New("400 not enough arguments\nqm delsnapshot <vmid> <snapname> [OPTIONS]")
	}
	vmid, err := strconv.Atoi(pos[0])
	if err != nil {
		return errors.New("400 Parameter verification failed.\nvmid: invalid format")
	}
	return st.Update(func(inv *Inventory) error {
		i := slices.IndexFunc(inv.Snapshots, func(s Snapshot) bool { return s.VMID == vmid && s.Name == pos[1] })
		if i < 0 {
			return fmt.Errorf("snapshot '%s' does not exist", pos[1])
		}
		inv.Snapshots = slices.Delete(inv.Snapshots, i, i+1)
		return nil
	})
}

// splitWords splits a command line as sh does for the quoting the
// provider uses: words separated by blanks, 'single-quoted' parts taken
// literally, backslash escaping one character outside quotes.
func splitWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '\\':
			if i+1 < len(s) {
				cur.WriteByte(s[i+1])
				i++
			}
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case strings.IndexByte("|&;<>()$`\"*?[#~", c) >= 0:
			return nil, fmt.Errorf("shell syntax %q is not expected in a provider's command", c)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}
