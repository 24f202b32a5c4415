//go:build !amd64 && !arm64

package memlock

type regs struct{}

const (
	syscallInsn     = 0
	syscallInsnMask = 0
)

func getRegs(pid int, r *regs) error                                   { return errArch }
func setRegs(pid int, r *regs) error                                   { return errArch }
func pc(r *regs) uintptr                                               { return 0 }
func setupSyscall(r *regs, addr uintptr, nr uintptr, args syscallArgs) {}
func syscallResult(r *regs) int64                                      { return -1 }
func cloneFlags(pid int) (uint64, error)                               { return 0, errArch }

func trapCode(nr uintptr) (uint64, bool) { return 0, false }

const trapLen = 0

func setupTrap(r *regs, addr uintptr, args syscallArgs) {}
func sp(r *regs) uintptr                                { return 0 }
func setExecReturn(r *regs)                             {}

const (
	auditArch    = 0
	nrExecve     = 1<<32 - 1
	nrExecveat   = 1<<32 - 1
	nrFork       = 1<<32 - 1
	nrClone      = 1<<32 - 1
	nrClone3     = 1<<32 - 1
	notifierArch = false
)

const (
	entryGadget     uint64 = 0
	entryGadgetArch        = false
)

func setupEntryCall(r *regs, addr uintptr, arg0 uintptr) (slot uintptr, ret uint64) { return 0, 0 }
