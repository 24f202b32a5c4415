# oomguard's killer (internal/action) against faults that need root and a
# kernel of our own: PID reuse between choosing and killing (forced with
# ns_last_pid), a frozen victim, a victim in D state, process_mrelease.
. /test/lib.sh
actiontest pid-reuse frozen dstate mrelease
