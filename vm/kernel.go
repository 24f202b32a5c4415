package vm

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Kernel is a guest kernel unpacked from Debian's linux-image package by
// vm/setup.sh: the compressed image and its module tree.
type Kernel struct {
	// Version is the kernel release, for example "6.1.0-56-amd64".
	Version string
	// BzImage is the path of the packaged, compressed kernel (vmlinuz).
	BzImage string
	// ModulesDir is the directory holding the release's modules
	// (…/lib/modules/VERSION).
	ModulesDir string
}

// ErrNoKernel is returned by FindKernel when no guest kernel is unpacked in
// the cache. vm/setup.sh (run by scripts/setup.sh) provides one.
var ErrNoKernel = errors.New("no guest kernel unpacked; run vm/setup.sh")

// FindKernel returns the kernel that vm/setup.sh unpacked under
// cacheDir/debs/kernel.
func FindKernel(cacheDir string) (Kernel, error) {
	root := filepath.Join(cacheDir, "debs", "kernel")
	images, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(images) == 0 {
		return Kernel{}, fmt.Errorf("find kernel under %s: %w", root, ErrNoKernel)
	}
	img := images[len(images)-1]
	ver := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
	mods := filepath.Join(root, "lib", "modules", ver)
	if _, err := os.Stat(mods); err != nil {
		return Kernel{}, fmt.Errorf("find kernel modules of %s: %w", ver, err)
	}
	return Kernel{Version: ver, BzImage: img, ModulesDir: mods}, nil
}

// Config returns the value of option name (for example "CONFIG_ZRAM") in
// the kernel's packaged config, or "" when unset or unknown.
func (k Kernel) Config(name string) string {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(k.BzImage), "config-"+k.Version))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// decompressors are the payload formats a bzImage may hold, by magic, with
// the host command that decompresses them from stdin.
var decompressors = []struct {
	magic []byte
	cmd   []string
}{
	{[]byte("\xfd7zXZ\x00"), []string{"xz", "-dc"}},
	{[]byte("\x28\xb5\x2f\xfd"), []string{"zstd", "-dc"}},
	{[]byte("\x1f\x8b\x08"), []string{"gzip", "-dc"}},
}

// extractVmlinux finds the compressed payload inside a bzImage and
// decompresses it, as the kernel's scripts/extract-vmlinux does. Booting the
// uncompressed ELF (through its PVH entry point) skips the slow in-guest
// decompression under emulation. Trailing data after the payload makes the
// decompressors complain; the output counts when it is a valid ELF.
func extractVmlinux(bzImage, out string) error {
	img, err := os.ReadFile(bzImage)
	if err != nil {
		return fmt.Errorf("extract vmlinux: %w", err)
	}
	for _, d := range decompressors {
		pos := bytes.Index(img, d.magic)
		for pos >= 0 {
			if _, err := exec.LookPath(d.cmd[0]); err != nil {
				break
			}
			cmd := exec.Command(d.cmd[0], d.cmd[1:]...)
			cmd.Stdin = bytes.NewReader(img[pos:])
			var buf bytes.Buffer
			cmd.Stdout = &buf
			_ = cmd.Run() // trailing garbage makes it fail after the payload
			if f, err := elf.NewFile(bytes.NewReader(buf.Bytes())); err == nil && hasPVHNote(f) {
				tmp := out + ".tmp"
				if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
					return fmt.Errorf("extract vmlinux: %w", err)
				}
				return os.Rename(tmp, out)
			}
			next := bytes.Index(img[pos+1:], d.magic)
			if next < 0 {
				break
			}
			pos += 1 + next
		}
	}
	return fmt.Errorf("extract vmlinux from %s: no decompressible ELF payload with a PVH entry", bzImage)
}

// hasPVHNote reports whether the ELF kernel has the Xen PVH entry note
// (type 18) that qemu needs to boot it directly.
func hasPVHNote(f *elf.File) bool {
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			continue
		}
		for len(b) >= 12 {
			nsz := int(f.ByteOrder.Uint32(b[0:]))
			dsz := int(f.ByteOrder.Uint32(b[4:]))
			typ := f.ByteOrder.Uint32(b[8:])
			name := b[12:]
			if len(name) < nsz {
				break
			}
			if typ == 18 && strings.HasPrefix(string(name[:nsz]), "Xen") {
				return true
			}
			adv := 12 + (nsz+3)&^3 + (dsz+3)&^3
			if adv > len(b) {
				break
			}
			b = b[adv:]
		}
	}
	return false
}

// moduleIndex maps module names (with '-' spelled '_') to their .ko paths
// relative to the modules directory.
func moduleIndex(modDir string) (map[string]string, error) {
	idx := map[string]string{}
	err := filepath.WalkDir(filepath.Join(modDir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".ko") {
			return nil
		}
		rel, _ := filepath.Rel(modDir, p)
		idx[modName(strings.TrimSuffix(d.Name(), ".ko"))] = rel
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index modules under %s: %w", modDir, err)
	}
	return idx, nil
}

func modName(s string) string { return strings.ReplaceAll(s, "-", "_") }

// moduleDepends reads the "depends=" entry of a module's .modinfo section.
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, nil
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read .modinfo of %s: %w", path, err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}

// resolveModules returns the .ko paths (relative to modDir) of the named
// modules and their dependencies, dependencies first, each once. Names that
// are built into the kernel (listed in modules.builtin) are skipped.
func resolveModules(modDir string, names []string) ([]string, error) {
	idx, err := moduleIndex(modDir)
	if err != nil {
		return nil, err
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(modDir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[modName(strings.TrimSuffix(filepath.Base(l), ".ko"))] = true
		}
	}
	var order []string
	seen := map[string]bool{}
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		name = modName(name)
		if seen[name] || builtin[name] {
			return nil
		}
		rel, ok := idx[name]
		if !ok {
			return fmt.Errorf("module %s (needed by %v) not found under %s", name, chain, modDir)
		}
		seen[name] = true
		deps, err := moduleDepends(filepath.Join(modDir, rel))
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, append(chain, name)); err != nil {
				return err
			}
		}
		order = append(order, rel)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}
