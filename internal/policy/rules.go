package policy

import (
	"regexp"
	"strings"
)

// Rules are the user's victim-choice rules. The zero value applies none: only
// the built-in protections (PID 1, kernel threads, oomguard itself,
// oom_score_adj -1000) and badness decide.
type Rules struct {
	// Prefer moves a group to the front of the ranking (before every group
	// that is not preferred, whatever its badness) when any member that may
	// be chosen (not a vfork child) matches on comm or on cmdline. This is
	// stricter than earlyoom's +300 so that a rule means what it says.
	Prefer []*regexp.Regexp
	// Avoid moves a group to the back of the eligible groups when any member
	// matches on comm or cmdline. An avoided group is still killed when it is
	// the only eligible one.
	Avoid []*regexp.Regexp
	// Ignore removes a group from consideration when any member matches on
	// comm or cmdline: killing a group kills every member, so one ignored
	// member shields its sharers. Ignored groups are listed as skipped.
	Ignore []*regexp.Regexp
	// Protected are process names that are never killed, nor is any group or
	// (with KillCgroup) cgroup holding one. A name matches a process whose
	// comm equals it exactly, or whose argv[0] base name equals it (this
	// covers names longer than comm's 15 bytes). Names are exact, not
	// regular expressions, so a protection cannot match more than intended.
	Protected []string
	// KillCgroup makes a decision kill the victim's whole cgroup (through
	// cgroup.kill or a freeze-and-kill) after the victim's mm group. A
	// group is then protected when its cgroup holds any protected process.
	KillCgroup bool
}

// ruleLine is what the rules' expressions match besides the comm: the
// command line, or, when it could not be read, the executable's path
// (Process.Exe).
func ruleLine(m *Member) string {
	if m.Cmdline == "" && m.CmdlineUnread {
		return m.Exe
	}
	return m.Cmdline
}

// matchAny returns the first regexp of res matching comm or cmdline, or nil.
func matchAny(res []*regexp.Regexp, comm, cmdline string) *regexp.Regexp {
	for _, re := range res {
		if re.MatchString(comm) || (cmdline != "" && re.MatchString(cmdline)) {
			return re
		}
	}
	return nil
}

// protectedName reports whether p matches one of names (see Rules.Protected).
func protectedName(names []string, p *Process) (string, bool) {
	if len(names) == 0 {
		return "", false
	}
	argv0 := p.Cmdline
	if argv0 == "" && p.CmdlineUnread {
		argv0 = p.Exe // its command line could not be read (see Process.Exe)
	} else if i := strings.IndexByte(argv0, ' '); i >= 0 {
		argv0 = argv0[:i]
	}
	if i := strings.LastIndexByte(argv0, '/'); i >= 0 {
		argv0 = argv0[i+1:]
	}
	for _, n := range names {
		if n == "" {
			continue
		}
		if p.Comm == n || argv0 == n {
			return n, true
		}
	}
	return "", false
}

// ProtectedExe reports which of r.Protected names the process with this
// comm and executable path matches, its command line unread: argv[0] is
// taken to be the executable's base name (see Process.Exe).
func (r Rules) ProtectedExe(comm, exe string) (string, bool) {
	return protectedName(r.Protected, &Process{Comm: comm, CmdlineUnread: true, Exe: exe})
}

// ProtectedName reports which of r.Protected names the process with this
// comm and command line (arguments joined by spaces) matches, for
// actuators that meet processes the snapshot did not hold.
func (r Rules) ProtectedName(comm, cmdline string) (string, bool) {
	return protectedName(r.Protected, &Process{Comm: comm, Cmdline: cmdline})
}
