package actionlog

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRingKeepsLastActionsInOrder(t *testing.T) {
	l := New(3)
	var seen []string
	l.Subscribe(func(a Action) { seen = append(seen, a.Reason) })
	for _, r := range []string{"a", "b", "c", "d", "e"} {
		l.Record(Action{Kind: "kill", Trigger: "psi", Reason: r})
	}
	l.Record(Action{Kind: "kill", Trigger: "memavail", Reason: "f"})
	var got []string
	for _, a := range l.Recent() {
		got = append(got, a.Reason)
		if a.Time.IsZero() {
			t.Errorf("action %q has no time", a.Reason)
		}
	}
	if d := cmp.Diff([]string{"d", "e", "f"}, got); d != "" {
		t.Errorf("Recent (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"a", "b", "c", "d", "e", "f"}, seen); d != "" {
		t.Errorf("subscriber saw (-want +got):\n%s", d)
	}
	if n := l.Count("kill", "psi"); n != 5 {
		t.Errorf("Count(kill, psi) = %d, want 5", n)
	}
	if n := l.Count("kill", ""); n != 6 {
		t.Errorf("Count(kill, any) = %d, want 6", n)
	}
}
