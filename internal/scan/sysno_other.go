//go:build !amd64

package scan

// sysVfork is vfork(2)'s system call number; this arch has none.
const sysVfork = -1
