// Package sys holds oomguard's raw system calls, named after the kernel's and
// taking arguments in man-page order, and the owned file-descriptor types
// built on them.
package sys
