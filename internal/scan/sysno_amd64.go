package scan

// sysVfork is vfork(2)'s system call number; arches without vfork use -1.
const sysVfork = 58
