// Package actionlog keeps the daemon's recent actions, each with its reason
// and the numbers behind it, for `oomguard status` and for metrics.
package actionlog

import (
	"sync"
	"time"
)

// Action is one thing the daemon did (or, in dry-run, would have done).
type Action struct {
	Time time.Time `json:"time"`
	// Kind names what was done: "kill", "term", "skip", "contain-forkbomb",
	// "kmem-breach", "dry-run-kill", …
	Kind string `json:"kind"`
	// Trigger names what set it off: "memavail", "psi", "scope", "thrash",
	// "forkbomb", "kmem-budget", …
	Trigger string `json:"trigger"`
	// Reason is a sentence a person can read.
	Reason string `json:"reason"`
	// PIDs are the processes acted on.
	PIDs []int `json:"pids,omitempty"`
	// Cgroup is the cgroup acted on, if any.
	Cgroup string `json:"cgroup,omitempty"`
	// Comm is the main victim's command name, if any.
	Comm string `json:"comm,omitempty"`
	// UIDs are the owners of the processes acted on, where known.
	UIDs []int `json:"uids,omitempty"`
	// Numbers are the values that led to the action, by name, in base units
	// (bytes, seconds, percent).
	Numbers map[string]float64 `json:"numbers,omitempty"`
	// DryRun is true when nothing was actually done.
	DryRun bool `json:"dry_run,omitempty"`
}

// Log is a bounded ring of recent actions plus running counts by kind and
// trigger. The zero value is not usable; use New. It is safe for concurrent use.
type Log struct {
	mu     sync.Mutex
	ring   []Action
	next   int
	full   bool
	counts map[[2]string]uint64
	subs   []func(Action)
}

// New returns a log that keeps the last size actions.
func New(size int) *Log {
	if size < 1 {
		size = 1
	}
	return &Log{ring: make([]Action, size), counts: map[[2]string]uint64{}}
}

// Subscribe calls fn, synchronously, for every action recorded from now on.
// fn must not block: hooks and notifiers hand off to their own goroutines.
func (l *Log) Subscribe(fn func(Action)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.subs = append(l.subs, fn)
}

// Record appends a. A zero Time is set to now.
func (l *Log) Record(a Action) {
	if a.Time.IsZero() {
		a.Time = time.Now()
	}
	l.mu.Lock()
	l.ring[l.next] = a
	l.next = (l.next + 1) % len(l.ring)
	if l.next == 0 {
		l.full = true
	}
	l.counts[[2]string{a.Kind, a.Trigger}]++
	subs := l.subs
	l.mu.Unlock()
	for _, fn := range subs {
		fn(a)
	}
}

// Recent returns the kept actions, oldest first.
func (l *Log) Recent() []Action {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Action
	if l.full {
		out = append(out, l.ring[l.next:]...)
	}
	return append(out, l.ring[:l.next]...)
}

// Count returns how many actions of kind with trigger were ever recorded;
// an empty trigger counts every trigger.
func (l *Log) Count(kind, trigger string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if trigger != "" {
		return l.counts[[2]string{kind, trigger}]
	}
	var n uint64
	for k, v := range l.counts {
		if k[0] == kind {
			n += v
		}
	}
	return n
}

// Counts returns a copy of every (kind, trigger) count.
func (l *Log) Counts() map[[2]string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[[2]string]uint64, len(l.counts))
	for k, v := range l.counts {
		out[k] = v
	}
	return out
}
