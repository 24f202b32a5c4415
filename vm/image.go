package vm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// guestModules are the modules the guest loads at boot, dependencies
// resolved from the modules' own .modinfo.
var guestModules = []string{"virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "zram"}

// busyboxPath is where vm/setup.sh unpacks busybox-static.
func busyboxPath(cacheDir string) string {
	return filepath.Join(cacheDir, "debs", "busybox-static", "bin", "busybox")
}

// bootImage returns the kernel image qemu boots: the uncompressed vmlinux,
// extracted once per kernel version into the cache, or the bzImage when
// extraction fails.
func bootImage(cacheDir string, k Kernel) (string, error) {
	out := filepath.Join(cacheDir, "vmlinux-"+k.Version)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := extractVmlinux(k.BzImage, out); err != nil {
		return k.BzImage, nil
	}
	return out, nil
}

// busyboxApplets lists busybox's applets with their install paths
// ("bin/sh", "usr/bin/timeout" …).
func busyboxApplets(bb string) ([]string, error) {
	out, err := exec.Command(bb, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets of %s: %w", bb, err)
	}
	return strings.Fields(string(out)), nil
}

// baseCPIO returns the cached base initramfs for kernel k: busybox with its
// applet links, the guest init and the modules the guest loads. It is built
// once per kernel version and init script.
func baseCPIO(cacheDir string, k Kernel) (string, error) {
	bb := busyboxPath(cacheDir)
	bbInfo, err := os.Stat(bb)
	if err != nil {
		return "", fmt.Errorf("vm: busybox-static not unpacked (run vm/setup.sh): %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%s\x00", k.Version, guestInit, bbInfo.Size(), strings.Join(guestModules, ","))
	key := hex.EncodeToString(h.Sum(nil))[:12]
	out := filepath.Join(cacheDir, fmt.Sprintf("base-%s-%s.cpio", k.Version, key))
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	mods, err := resolveModules(k.ModulesDir, guestModules)
	if err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	applets, err := busyboxApplets(bb)
	if err != nil {
		return "", err
	}
	bbData, err := os.ReadFile(bb)
	if err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	tmp, err := os.CreateTemp(cacheDir, "base-*.tmp")
	if err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	defer os.Remove(tmp.Name())
	w := newCPIOWriter(tmp)
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "etc/vm", "newroot", "test", "root"} {
		w.Dir(d)
	}
	w.File("bin/busybox", 0o755, bbData)
	for _, a := range applets {
		if a != "bin/busybox" {
			w.Symlink(a, "/bin/busybox")
		}
	}
	w.File("init", 0o755, guestInit)
	w.Symlink("sbin/vm-stage2", "/init")
	var list bytes.Buffer
	for _, m := range mods {
		data, err := os.ReadFile(filepath.Join(k.ModulesDir, m))
		if err != nil {
			return "", fmt.Errorf("vm: %w", err)
		}
		w.File(path.Join("lib/modules", m), 0o644, data)
		list.WriteString(m + "\n")
	}
	w.File("etc/vm/modules", 0o644, list.Bytes())
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("vm: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	return out, nil
}

// envFile renders the guest's /etc/vm/env.
func envFile(cfg Config) []byte {
	var b bytes.Buffer
	root := "ram"
	if cfg.Root == RootDisk {
		root = "disk"
	}
	fmt.Fprintf(&b, "VM_ROOT=%s\nVM_ZRAM_MB=%d\n", root, cfg.ZramMiB)
	if cfg.ScratchMiB > 0 {
		dev := "/dev/vda"
		if cfg.Root == RootDisk {
			dev = "/dev/vdb"
		}
		fmt.Fprintf(&b, "export SCRATCH_DEV=%s\n", dev)
	}
	for _, k := range sortedKeys(cfg.Env) {
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(cfg.Env[k]))
	}
	return b.Bytes()
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (f File) content() ([]byte, error) {
	if f.Data != nil {
		return f.Data, nil
	}
	b, err := os.ReadFile(f.Source)
	if err != nil {
		return nil, fmt.Errorf("vm: guest file %s: %w", f.Path, err)
	}
	return b, nil
}

func (f File) mode() os.FileMode {
	if f.Mode == 0 {
		return 0o755
	}
	return f.Mode
}

// writeInitrd writes the base cpio followed by the payload cpio: the env
// file and, for an initramfs root, the script and the test's files.
func writeInitrd(out, base string, cfg Config) error {
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	defer f.Close()
	b, err := os.Open(base)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	defer b.Close()
	if _, err := io.Copy(f, b); err != nil {
		return fmt.Errorf("vm: copy base cpio: %w", err)
	}
	w := newCPIOWriter(f)
	w.File("etc/vm/env", 0o644, envFile(cfg))
	if cfg.Root == RootRAM {
		w.File("test/run.sh", 0o755, []byte(cfg.Script))
		for _, file := range cfg.Files {
			data, err := file.content()
			if err != nil {
				return err
			}
			w.File(file.Path, file.mode(), data)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("vm: write %s: %w", out, err)
	}
	return f.Close()
}

// buildDisk makes the ext4 root image for RootDisk with mke2fs -d: busybox,
// the guest init as /sbin/vm-stage2, the env, the script and the files.
func buildDisk(img string, cfg Config, k Kernel) error {
	dir := img + ".d"
	defer os.RemoveAll(dir)
	put := func(p string, data []byte, mode os.FileMode) error {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		return os.WriteFile(full, data, mode)
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "root", "test", "sbin", "usr/bin", "usr/sbin"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("vm: disk tree: %w", err)
		}
	}
	bb := busyboxPath(cfg.CacheDir)
	bbData, err := os.ReadFile(bb)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	applets, err := busyboxApplets(bb)
	if err != nil {
		return err
	}
	if err := put("bin/busybox", bbData, 0o755); err != nil {
		return fmt.Errorf("vm: disk tree: %w", err)
	}
	for _, a := range applets {
		if a == "bin/busybox" {
			continue
		}
		full := filepath.Join(dir, a)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.Symlink("/bin/busybox", full); err != nil && !os.IsExist(err) {
			return fmt.Errorf("vm: disk tree: %w", err)
		}
	}
	files := []File{
		{Path: "/sbin/vm-stage2", Data: guestInit, Mode: 0o755},
		{Path: "/etc/vm/env", Data: envFile(cfg), Mode: 0o644},
		{Path: "/test/run.sh", Data: []byte(cfg.Script), Mode: 0o755},
	}
	for _, f := range append(files, cfg.Files...) {
		data, err := f.content()
		if err != nil {
			return err
		}
		if err := put(f.Path, data, f.mode()); err != nil {
			return fmt.Errorf("vm: disk tree: %w", err)
		}
	}
	cmd := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-E", "root_owner=0:0", "-d", dir, img, strconv.Itoa(cfg.DiskMiB)+"M")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("vm: mke2fs %s: %w\n%s", img, err, out)
	}
	return nil
}
